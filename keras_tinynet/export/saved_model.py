"""TF Serving SavedModel: `<export_dir>/<name>/<version>/`, signatures serving_default and serving_bytes.

The SavedModel tracks variables and TensorFlow functions only, so it loads with TensorFlow alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import tensorflow as tf

from keras_tinynet.export.exportable import Exportable
from keras_tinynet.export.image_decoding import MAX_PIXELS, assert_with_message, decode_and_preprocess
from keras_tinynet.files import DISK_ERRORS, exclusive_lock, remove_stale_staging, staged_directory

TOP_K = 5


@dataclasses.dataclass(frozen=True)
class _Served:
    """What the signatures run: the inference model, its input size, the eval crop and the labels."""

    model: object
    size: int
    crop_pct: float
    max_pixels: int
    labels: tuple[str, ...]


class ServingModule(tf.Module):
    """The TF Serving SavedModel: the model's variables and the two signatures (TensorFlow ops only)."""

    def __init__(self, exportable: Exportable, max_pixels: int = MAX_PIXELS):
        super().__init__(name="serving")
        model = exportable.inference_model
        # Track the variables, not the Keras model: the SavedModel must load without keras_tinynet. The
        # model is held by a plain object (`_Served`), which tf.Module does not track.
        self.model_variables = [variable.value for variable in model.variables]
        self._served = _Served(model, exportable.image_size, exportable.crop_pct, max_pixels, exportable.labels)
        self.serving_default = tf.function(
            self._serve_images,
            autograph=False,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        )
        self.serving_bytes = tf.function(
            self._serve_bytes, autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default, "serving_bytes": self.serving_bytes}

    def _predict(self, images) -> dict:
        # An empty batch skips the model: TensorFlow's oneDNN convolutions reject batch 0.
        served, classes = self._served, len(self._served.labels)
        probabilities = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(served.model(images, training=False), tf.float32),
            lambda: tf.zeros([0, classes], tf.float32),
        )
        top = tf.math.top_k(probabilities, k=min(TOP_K, classes))
        return {
            "probabilities": probabilities,
            "top_k_ids": top.indices,
            "top_k_probabilities": top.values,
            "top_k_labels": tf.gather(tf.constant(served.labels, dtype=tf.string), top.indices),
        }

    def _serve_images(self, images) -> dict:
        """serving_default: float32 RGB in [0, 255] of any size, checked, resized to the model's."""
        images = _checked_finite(_checked_image_batch(_hide_static_shape(images)))
        size, shape = self._served.size, tf.shape(images)
        same = tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size))
        resized = tf.cond(
            same,
            lambda: images,
            lambda: tf.clip_by_value(
                tf.image.resize(images, [size, size], method="bicubic", antialias=True), 0.0, 255.0
            ),
        )
        return self._predict(tf.ensure_shape(resized, [None, size, size, 3]))

    def _serve_bytes(self, image_bytes) -> dict:
        """serving_bytes: a vector of encoded images, decoded and preprocessed as at evaluation."""
        shape = tf.shape(image_bytes := _hide_static_shape(image_bytes))
        check = assert_with_message(
            tf.equal(tf.size(shape), 1),
            "serving_bytes: `image_bytes` must be a string vector [batch] of encoded images; received shape {}",
            [shape],
        )
        with tf.control_dependencies([check]):
            image_bytes = tf.ensure_shape(tf.identity(image_bytes), [None])
        served, size = self._served, self._served.size
        images = tf.map_fn(
            lambda args: decode_and_preprocess(args[0], args[1], size, served.crop_pct, served.max_pixels),
            (image_bytes, tf.range(tf.shape(image_bytes)[0])),
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        return self._predict(tf.ensure_shape(images, [None, size, size, 3]))


def _checked_image_batch(images):
    """`images` once a [batch, height, width, 3] shape with height and width >= 1 is asserted."""
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)
    valid = tf.logical_and(
        tf.equal(tf.size(shape), 4),
        tf.reduce_all(tf.stack([padded[3] == 3, padded[1] > 0, padded[2] > 0])),
    )
    check = assert_with_message(
        valid,
        "serving_default: `images` must be float32 [batch, height, width, 3] (RGB in [0, 255], "
        "height and width >= 1); received shape {}",
        [shape],
    )
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(images), [None, None, None, 3])


def _checked_finite(images):
    """`images` once every value is asserted finite.

    A NaN or infinite pixel would come out as the probabilities of a black image (the resize and the
    ReLUs turn it into zeros), a wrong answer that looks right. Checked after the shape check, which it
    depends on: a tensor of another rank gets the shape message.
    """
    finite = assert_with_message(
        tf.reduce_all(tf.math.is_finite(images)),
        "serving_default: `images` must hold finite values (RGB in [0, 255]); received {} NaN or infinite value(s)",
        [tf.size(images) - tf.math.count_nonzero(tf.math.is_finite(images), dtype=tf.int32)],
    )
    with tf.control_dependencies([finite]):
        return tf.identity(images)


def _hide_static_shape(tensor):
    """The same tensor with an unknown static shape, so that shape checks run on what a caller feeds.

    A signature's input placeholder declares its shape, and graph optimization folds checks against it;
    but a restored signature, or TF Serving, feeds tensors of any shape without checking.
    """
    return tf.compat.v1.placeholder_with_default(tensor, shape=None)


def next_version(model_dir: str) -> int:
    """One more than the largest numeric version directory in `model_dir` (1 for none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(entry) for entry in os.listdir(model_dir) if entry.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(
    exportable: Exportable,
    export_dir: str | os.PathLike,
    version: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> str:
    """Writes the TF Serving SavedModel to `<export_dir>/<name>/<version>/` and returns that path.

    Atomic: the SavedModel is written into a hidden temporary directory next to the version directory,
    synced, and renamed into place. An export that fails or is killed leaves no numeric directory, so TF
    Serving (which loads only numeric version directories) never sees a half-written model. `version`
    defaults to one more than the largest existing version; an existing version is never overwritten.
    Exports into one model directory take turns (a lock on it), so each removes what a killed export left
    staged there and picks a version no other export is writing.
    """
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(
            f"`version` must be a positive integer (TF Serving version directory); received version={version!r}."
        )
    model_dir = os.path.join(os.fspath(export_dir), exportable.name)
    os.makedirs(model_dir, exist_ok=True)
    with exclusive_lock(model_dir, wait=True):
        remove_stale_staging(model_dir)
        version = next_version(model_dir) if version is None else version
        final = os.path.join(model_dir, str(version))
        if os.path.exists(final):
            raise ValueError(
                f"`version`={version}: {final} already exists; TF Serving versions are immutable, "
                f"pass a new version (next free: {next_version(model_dir)})."
            )
        with staged_directory(final) as staging:
            module = ServingModule(exportable, max_pixels=max_pixels)
            write_saved_model(module, staging, module.signatures())
            _write_labels_asset(staging, exportable.labels)
    return final


def write_saved_model(module, path: str, signatures) -> None:
    try:
        tf.saved_model.save(module, path, signatures=signatures)
    except tf.errors.OpError as error:
        # TensorFlow reports a full disk as a ResourceExhaustedError; raised as the OSError it was, the
        # staged directory being written turns it into a one-line WriteError.
        code = next((code for code in DISK_ERRORS if os.strerror(code) in error.message), None)
        if code is None:
            raise
        raise OSError(code, os.strerror(code), path) from error


def _write_labels_asset(saved_model_dir: str, labels: Sequence[str]) -> None:
    # The labels are constants in the graph; this copy is for people and clients reading the directory.
    extra = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "labels.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(labels) + "\n")
