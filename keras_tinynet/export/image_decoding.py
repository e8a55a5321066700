"""Encoded image bytes -> eval-preprocessed images, in TensorFlow ops (serving_bytes, int8 calibration).

Headers are read before decoding, so a decompression bomb is refused before it can exhaust memory.
"""

from __future__ import annotations

import tensorflow as tf

from keras_tinynet.data import eval_preprocess, resize_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # the formats of _MAGIC, as file names end
MAX_PIXELS = 64 * 2**20  # largest decoded or resized image serving_bytes accepts (64 megapixels)

_MAGIC = {
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF8",
    "bmp": b"BM",
}


def _declared_pixels(data):
    """Width x height an encoded image declares in its header (0 where unknown), before decoding it."""
    head = tf.io.decode_raw(tf.strings.substr(data + b"\x00" * 32, 0, 32), tf.uint8)
    b = tf.cast(head, tf.int64)

    def big_endian(offset, size):
        return sum(b[offset + i] * 256 ** (size - 1 - i) for i in range(size))

    def little_endian(offset, size):
        return sum(b[offset + i] * 256**i for i in range(size))

    def starts(magic):
        return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def bmp():
        h = little_endian(22, 4)
        h = tf.where(h >= 2**31, 2**32 - h, h)  # negative heights mean top-down rows
        return little_endian(18, 4) * h

    return tf.case(
        [
            (starts(_MAGIC["png"]), lambda: big_endian(16, 4) * big_endian(20, 4)),
            (starts(_MAGIC["jpeg"]), jpeg),
            (starts(_MAGIC["gif"]), lambda: little_endian(6, 2) * little_endian(8, 2)),
            (starts(_MAGIC["bmp"]), bmp),
        ],
        default=lambda: tf.constant(0, tf.int64),
        exclusive=False,
    )


def decode_and_preprocess(data, index, image_size: int, crop_pct: float, max_pixels: int = MAX_PIXELS):
    """One encoded JPEG/PNG (also GIF, BMP) -> the eval-preprocessed float32 [size, size, 3] image.

    Raises InvalidArgumentError naming `image_bytes[index]` for empty or non-image bytes, and for images
    whose decoded or resized size would exceed `max_pixels` (a decompression bomb must not exhaust memory).
    """
    is_image = tf.reduce_any(
        tf.stack([tf.equal(tf.strings.substr(data, 0, len(magic)), magic) for magic in _MAGIC.values()])
    )
    check = assert_with_message(
        is_image,
        "serving_bytes: image_bytes[{}] is not an encoded JPEG, PNG, GIF or BMP image ({} bytes, first bytes {})",
        [index, tf.strings.length(data), tf.io.decode_raw(tf.strings.substr(data, 0, 8), tf.uint8)],
    )
    with tf.control_dependencies([check]):
        declared = _declared_pixels(data)
    check = assert_with_message(
        declared <= max_pixels,
        f"serving_bytes: image_bytes[{{}}] declares {{}} pixels; at most {max_pixels} are accepted",
        [index, declared],
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    shape = tf.shape(image)
    new_h, new_w = resize_size(shape[0], shape[1], image_size, crop_pct)
    resized_pixels = tf.cast(new_h, tf.int64) * tf.cast(new_w, tf.int64)
    check = assert_with_message(
        tf.logical_and(resized_pixels <= max_pixels, tf.reduce_all(shape[:2] > 0)),
        f"serving_bytes: image_bytes[{{}}] of shape {{}} cannot be resized for a {image_size}x{image_size} crop "
        f"(an empty image, or an aspect ratio so extreme that the resize exceeds {max_pixels} pixels)",
        [index, shape],
    )
    with tf.control_dependencies([check]):
        return eval_preprocess(image, image_size, crop_pct)


def assert_with_message(condition, template: str, inputs: list):
    """tf.debugging.Assert with one readable message (`template` with {} placeholders for `inputs`)."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, inputs, summarize=-1)])
