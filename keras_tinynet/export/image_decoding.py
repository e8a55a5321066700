"""Encoded image bytes -> eval-preprocessed images, in TensorFlow ops (serving_bytes, int8 calibration).

Headers are read before decoding, so a decompression bomb is refused before it can exhaust memory, and of an
animated GIF only the first frame reaches the decoder (TensorFlow's decodes every frame, even to return one).
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


def first_gif_frame(data):
    """An encoded GIF cut after its first image (and closed with the trailer byte): the GIF of that frame.

    Walks the blocks (header, screen descriptor, global colour table, then extensions until the first image
    descriptor, its local colour table and its data, each a chain of sub-blocks of at most 255 bytes) in
    tf.while_loops, so serving graphs need no Python. Bytes past the end read as 0, which ends any walk.
    """
    b = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
    n = tf.size(b)
    padded = tf.concat([b, [0]], 0)

    def byte(i):
        return tf.gather(padded, tf.minimum(i, n))

    def colour_table(packed):  # bytes of the colour table a packed field announces
        return tf.where(packed >= 0x80, 3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(packed, 7)), 0)

    def after_sub_blocks(position):
        (position,) = tf.while_loop(lambda p: byte(p) > 0, lambda p: (p + 1 + byte(p),), (position,))
        return position + 1

    def block(position, _):
        is_image = tf.equal(byte(position), 0x2C)
        # an image: descriptor (10 bytes), local colour table, LZW code size; an extension: introducer, label
        start = tf.where(is_image, position + 11 + colour_table(byte(position + 9)), position + 2)
        return after_sub_blocks(start), is_image

    def more_blocks(position, image_done):
        return tf.logical_and(~image_done, tf.logical_or(byte(position) == 0x21, byte(position) == 0x2C))

    position, _ = tf.while_loop(more_blocks, block, (13 + colour_table(byte(10)), tf.constant(False)))
    return tf.strings.substr(data, 0, tf.minimum(position, n)) + b"\x3b"


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
        is_gif = tf.equal(tf.strings.substr(data, 0, len(_MAGIC["gif"])), _MAGIC["gif"])
        data = tf.cond(is_gif, lambda: first_gif_frame(data), lambda: data)
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
