"""Export of a trained GhostNet: TF Serving SavedModel, TFLite, ONNX and TF Hub reusable SavedModels.

One entry point builds the model to export (`load_exportable`: a variant, a FLOPs budget or a spec file,
plus a weights file such as the EMA weights the training script writes), and one function per format
writes it:

- `export_saved_model`: `<export_dir>/<name>/<version>/` for TF Serving, written atomically, with the
  signatures `serving_default` (float32 RGB images in [0, 255], any size) and `serving_bytes` (encoded
  images, decoded and eval-preprocessed inside); both return probabilities and the top-k ids and labels.
  The SavedModel needs TensorFlow alone.
- `export_tflite`: float32, float16 or full-integer int8 TFLite; `tflite_details`, `tflite_predict` and
  `benchmark_tflite` (interpreter with XNNPACK) read it back.
- `export_onnx`: ONNX through tf2onnx.
- `publish_hub`: reusable SavedModels (`classification`, `feature_vector`) with a model card and a
  tar.gz, for TF Hub / Kaggle Models.

TensorFlow backend only (SavedModel, TFLite and tf2onnx all trace TensorFlow graphs).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

import keras

from keras_tinynet import __version__
from keras_tinynet.files import fsync_dir, fsync_tree, make_publishable, staged_file, write_atomically
from keras_tinynet import models
from keras_tinynet import weights as weights_io
from keras_tinynet.counting import count
from keras_tinynet.data import eval_preprocess, resize_size
from keras_tinynet.formula import parse_flops, tiny_formula
from keras_tinynet.imagenet import class_names
from keras_tinynet.inference import fold_batch_norm
from keras_tinynet.spec import IMAGENET_PREPROCESSING, PRESETS, NetworkSpec, get_spec

TOP_K = 5
MAX_PIXELS = 64 * 2**20  # largest decoded or resized image serving_bytes accepts (64 megapixels)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TFLITE_QUANTIZATIONS = ("float32", "float16", "int8")
INT8_IO_TYPES = ("uint8", "int8")
HUB_FORMS = ("classification", "feature_vector")
ACTIVATIONS = ("relu", "hard_swish")

CITATION = """\
@inproceedings{han2020model,
  title={Model Rubik's Cube: Twisting Resolution, Depth and Width for TinyNets},
  author={Han, Kai and Wang, Yunhe and Zhang, Qiulin and Zhang, Wei and Xu, Chunjing and Zhang, Tong},
  booktitle={Advances in Neural Information Processing Systems},
  year={2020}
}
@inproceedings{han2020ghostnet,
  title={GhostNet: More Features from Cheap Operations},
  author={Han, Kai and Wang, Yunhe and Tian, Qi and Guo, Jianyuan and Xu, Chunjing and Xu, Chang},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  year={2020}
}"""


# ---------------------------------------------------------------------------------------------------
# The model to export
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exportable:
    """A GhostNet ready to export: the Keras model (softmax top) and what the exports describe."""

    model: keras.Model
    spec: NetworkSpec
    image_size: int
    labels: tuple[str, ...]
    activation: str = "relu"
    weights: str | None = None
    crop_pct: float = IMAGENET_PREPROCESSING.crop_pct

    @property
    def name(self) -> str:
        return self.model.name

    @functools.cached_property
    def inference_model(self) -> keras.Model:
        """The model with BN folded into its convolutions: what SavedModel, TFLite and ONNX run."""
        return fold_batch_norm(self.model)

    @property
    def classes(self) -> int:
        return len(self.labels)


def resolve_spec(variant: str | None = None, flops: float | None = None, spec=None) -> NetworkSpec:
    """The NetworkSpec of exactly one of: a variant name, a FLOPs budget, a spec (object, dict or JSON file)."""
    given = {k: v for k, v in (("variant", variant), ("flops", flops), ("spec", spec)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one of `variant`, `flops` and `spec`; received "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
            + f". Variants: {', '.join(PRESETS)}."
        )
    if variant is not None:
        if variant not in PRESETS:
            raise ValueError(f"`variant` must be one of {', '.join(PRESETS)}; received variant={variant!r}.")
        return get_spec(variant)
    if flops is not None:
        if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not flops > 0:
            raise ValueError(f"`flops` must be a positive number such as 200e6; received flops={flops!r}.")
        try:
            return tiny_formula(float(flops)).spec
        except ValueError as error:
            raise ValueError(f"`flops`={flops:g}: {error}") from None
    if isinstance(spec, NetworkSpec):
        return spec
    if isinstance(spec, dict):
        return NetworkSpec.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        if not os.path.isfile(path):
            raise ValueError(f"`spec` must be a NetworkSpec JSON file (NetworkSpec.to_dict()); received spec={path!r} (no such file).")
        try:
            with open(path) as handle:
                return NetworkSpec.from_dict(json.load(handle))
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"`spec`={path!r} is not a NetworkSpec JSON file: {error}.") from None
    raise ValueError(f"`spec` must be a NetworkSpec, a dict or a JSON file path; received spec={spec!r}.")


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Class labels from a text file: one label per line, in class-index order (blank lines are errors)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"`labels` must be a text file with one class label per line; received labels={path!r} (no such file).")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if not lines or blank:
        where = f"blank line(s) {blank[:5]}" if blank else "no labels"
        raise ValueError(f"`labels`={path!r} must list one non-empty label per line; found {where}.")
    return tuple(line.strip() for line in lines)


def load_exportable(
    variant: str | None = None,
    *,
    flops: float | None = None,
    spec=None,
    weights: str | os.PathLike | None = None,
    labels: str | os.PathLike | Sequence[str] | None = None,
    image_size: int | None = None,
    activation: str = "relu",
    name: str | None = None,
) -> Exportable:
    """Builds the GhostNet to export and loads `weights` into it.

    `weights` is any weights file the builders read (`.weights.h5`, e.g. the EMA weights the training
    script writes, `.keras`, Keras 2 `.h5`), loaded by layer name. The number of classes comes from
    `labels` (a file with one label per line, or a list) when given, else from the weights file's
    classifier; ImageNet's 1000 labels are built in. `image_size` defaults to the spec's size.
    """
    spec = resolve_spec(variant, flops, spec)
    size = spec.default_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < models.MIN_SIZE:
        raise ValueError(f"`image_size` must be an integer >= {models.MIN_SIZE}; received image_size={image_size!r}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; received activation={activation!r}.")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"`name` must be letters, digits, '_', '.' or '-' (a directory name); received name={name!r}.")
    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise ValueError(
                f"`weights` must be a weights file ({', '.join(weights_io.SUFFIXES)}); received weights={weights!r} (no such file)."
            )
    if labels is None:
        label_list = None
    elif isinstance(labels, (str, os.PathLike)):
        label_list = read_labels(labels)
    else:
        label_list = tuple(str(label) for label in labels)
        if not label_list:
            raise ValueError("`labels` must hold at least one label; received an empty list.")

    def build(classes: int) -> keras.Model:
        return models.GhostNet(
            spec, input_shape=(size, size, 3), classes=classes, activation=activation,
            name=name or (spec.name + ("_hswish" if activation == "hard_swish" else "")),
        )

    model = build(len(label_list) if label_list else 1000)
    if weights is not None:
        try:
            arrays = weights_io.read_weights(weights, model)
        except (OSError, KeyError) as error:
            raise ValueError(f"`weights`={weights!r} could not be read as a Keras weights file: {error}") from None
        file_classes = arrays["predictions"][0].shape[-1] if "predictions" in arrays else None
        if file_classes is not None and file_classes != model.output_shape[-1]:
            if label_list is not None:
                raise ValueError(
                    f"`labels` lists {len(label_list)} classes but the classifier in `weights`={weights!r} has "
                    f"{file_classes}; pass a labels file with {file_classes} lines."
                )
            model = build(file_classes)
        weights_io.assign_by_name(model, arrays, source=f"`weights`={weights!r}")
    classes = model.output_shape[-1]
    if label_list is None:
        label_list = tuple(class_names()) if classes == 1000 else tuple(str(i) for i in range(classes))
    return Exportable(model, spec, size, label_list, activation, weights)


# ---------------------------------------------------------------------------------------------------
# Eval preprocessing in TensorFlow ops (shared by serving_bytes and the representative datasets)
# ---------------------------------------------------------------------------------------------------


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
    check = _assert(
        is_image,
        "serving_bytes: image_bytes[{}] is not an encoded JPEG, PNG, GIF or BMP image ({} bytes, first bytes {})",
        [index, tf.strings.length(data), tf.io.decode_raw(tf.strings.substr(data, 0, 8), tf.uint8)],
    )
    with tf.control_dependencies([check]):
        declared = _declared_pixels(data)
    check = _assert(
        declared <= max_pixels,
        f"serving_bytes: image_bytes[{{}}] declares {{}} pixels; at most {max_pixels} are accepted",
        [index, declared],
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    shape = tf.shape(image)
    new_h, new_w = resize_size(shape[0], shape[1], image_size, crop_pct)
    resized_pixels = tf.cast(new_h, tf.int64) * tf.cast(new_w, tf.int64)
    check = _assert(
        tf.logical_and(resized_pixels <= max_pixels, tf.reduce_all(shape[:2] > 0)),
        f"serving_bytes: image_bytes[{{}}] of shape {{}} cannot be resized for a {image_size}x{image_size} crop "
        f"(an empty image, or an aspect ratio so extreme that the resize exceeds {max_pixels} pixels)",
        [index, shape],
    )
    with tf.control_dependencies([check]):
        return eval_preprocess(image, image_size, crop_pct)


def _assert(condition, template: str, inputs: list):
    """tf.debugging.Assert with one readable message (`template` with {} placeholders for `inputs`)."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, inputs, summarize=-1)])


# ---------------------------------------------------------------------------------------------------
# SavedModel for TF Serving
# ---------------------------------------------------------------------------------------------------


class ServingModule(tf.Module):
    """The TF Serving SavedModel: the model's variables and the two signatures (TensorFlow ops only)."""

    def __init__(self, exportable: Exportable, max_pixels: int = MAX_PIXELS):
        super().__init__(name="serving")
        model, size, crop_pct = exportable.inference_model, exportable.image_size, exportable.crop_pct
        # Track the variables, not the Keras model: the SavedModel must load without keras_tinynet.
        self.model_variables = [variable.value for variable in model.variables]
        labels = tf.constant(exportable.labels, dtype=tf.string)
        k = min(TOP_K, exportable.classes)

        def predict(images):
            # An empty batch skips the model: TensorFlow's oneDNN convolutions reject batch 0.
            probabilities = tf.cond(
                tf.shape(images)[0] > 0,
                lambda: tf.cast(model(images, training=False), tf.float32),
                lambda: tf.zeros([0, exportable.classes], tf.float32),
            )
            top = tf.math.top_k(probabilities, k=k)
            return {
                "probabilities": probabilities,
                "top_k_ids": top.indices,
                "top_k_probabilities": top.values,
                "top_k_labels": tf.gather(labels, top.indices),
            }

        def serving_default(images):
            shape = tf.shape(images := _hide_static_shape(images))
            padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)
            valid = tf.logical_and(
                tf.equal(tf.size(shape), 4),
                tf.reduce_all(tf.stack([padded[3] == 3, padded[1] > 0, padded[2] > 0])),
            )
            check = _assert(
                valid,
                "serving_default: `images` must be float32 [batch, height, width, 3] (RGB in [0, 255], "
                "height and width >= 1); received shape {}",
                [shape],
            )
            with tf.control_dependencies([check]):
                images = tf.ensure_shape(tf.identity(images), [None, None, None, 3])
                shape = tf.shape(images)
            same = tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size))
            resized = tf.cond(
                same,
                lambda: images,
                lambda: tf.clip_by_value(
                    tf.image.resize(images, [size, size], method="bicubic", antialias=True), 0.0, 255.0
                ),
            )
            return predict(tf.ensure_shape(resized, [None, size, size, 3]))

        def serving_bytes(image_bytes):
            shape = tf.shape(image_bytes := _hide_static_shape(image_bytes))
            check = _assert(
                tf.equal(tf.size(shape), 1),
                "serving_bytes: `image_bytes` must be a string vector [batch] of encoded images; received shape {}",
                [shape],
            )
            with tf.control_dependencies([check]):
                image_bytes = tf.ensure_shape(tf.identity(image_bytes), [None])
            n = tf.shape(image_bytes)[0]
            images = tf.map_fn(
                lambda args: decode_and_preprocess(args[0], args[1], size, crop_pct, max_pixels),
                (image_bytes, tf.range(n)),
                fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
            )
            return predict(tf.ensure_shape(images, [None, size, size, 3]))

        self.serving_default = tf.function(
            serving_default, autograph=False, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")]
        )
        self.serving_bytes = tf.function(
            serving_bytes, autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default, "serving_bytes": self.serving_bytes}


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
    """
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"`version` must be a positive integer (TF Serving version directory); received version={version!r}.")
    model_dir = os.path.join(os.fspath(export_dir), exportable.name)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir) if version is None else version
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise ValueError(
            f"`version`={version}: {final} already exists; TF Serving versions are immutable, "
            f"pass a new version (next free: {next_version(model_dir)})."
        )
    staging = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=model_dir)
    try:
        module = ServingModule(exportable, max_pixels=max_pixels)
        _write_saved_model(module, staging, module.signatures())
        _write_labels_asset(staging, exportable.labels)
        make_publishable(staging)
        fsync_tree(staging)
        os.rename(staging, final)
        fsync_dir(model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _write_saved_model(module, path: str, signatures) -> None:
    tf.saved_model.save(module, path, signatures=signatures)


def _write_labels_asset(saved_model_dir: str, labels: Sequence[str]) -> None:
    # The labels are constants in the graph; this copy is for people and clients reading the directory.
    extra = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "labels.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(labels) + "\n")


# ---------------------------------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------------------------------


def _inference_function(model: keras.Model, image_size: int, batch: int | None):
    """A tf.function of the model in inference mode and a tf.Module that tracks its variables."""
    holder = tf.Module(name="inference")
    holder.model_variables = [variable.value for variable in model.variables]

    def probabilities(images):
        return {"probabilities": tf.cast(model(images, training=False), tf.float32)}

    holder.function = tf.function(
        probabilities, autograph=False, input_signature=[tf.TensorSpec([batch, image_size, image_size, 3], tf.float32, name="images")]
    )
    return holder


def representative_images(
    source: str, image_size: int, count: int = 100, crop_pct: float = IMAGENET_PREPROCESSING.crop_pct
) -> np.ndarray:
    """Up to `count` eval-preprocessed images, float32 [n, size, size, 3] in [0, 255], from `source`.

    `source` is a folder of images (searched recursively for .jpg, .jpeg, .png, .bmp, .gif, in sorted
    order) or `tfds:<name>[:<split>]` (a tensorflow-datasets dataset with an `image` feature, split
    `train` by default; it must already be prepared, as no download is attempted). Grayscale images are
    repeated to RGB, an alpha channel is dropped.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`representative_count` must be a positive integer; received {count!r}.")
    if os.path.isdir(source):
        files = sorted(
            os.path.join(directory, file_name)
            for directory, _, names in os.walk(source)
            for file_name in names
            if file_name.lower().endswith(IMAGE_SUFFIXES)
        )[:count]
        if not files:
            raise ValueError(
                f"`representative_data`={source!r} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})."
            )
        images = []
        for index, path in enumerate(files):
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                images.append(decode_and_preprocess(tf.constant(data), index, image_size, crop_pct).numpy())
            except tf.errors.InvalidArgumentError as error:
                raise ValueError(f"`representative_data`: {path!r} is not a readable image ({error.message.splitlines()[0]}).") from None
        return np.stack(images)
    if source.startswith("tfds:"):
        parts = source[len("tfds:"):].split(":")
        if not parts[0] or len(parts) > 2:
            raise ValueError(f"`representative_data` must be a folder or tfds:<name>[:<split>]; received {source!r}.")
        name, split = parts[0], (parts[1] if len(parts) == 2 else "train")
        import tensorflow_datasets as tfds

        dataset = tfds.load(name, split=split, shuffle_files=False, download=False)
        images = []
        for example in dataset.take(count):
            if "image" not in example:
                raise ValueError(f"`representative_data`={source!r}: the dataset has no 'image' feature ({sorted(example)}).")
            image = example["image"]
            channels = image.shape[-1]
            if channels == 1:
                image = tf.repeat(image, 3, axis=-1)
            elif channels == 4:
                image = image[..., :3]
            elif channels != 3:
                raise ValueError(f"`representative_data`={source!r}: images have {channels} channels; 1, 3 or 4 are supported.")
            images.append(eval_preprocess(image, image_size, crop_pct).numpy())
        if not images:
            raise ValueError(f"`representative_data`={source!r} has no examples.")
        return np.stack(images)
    raise ValueError(
        f"`representative_data` must be a folder of images or tfds:<name>[:<split>]; received {source!r} "
        "(no such folder)."
    )


def export_tflite(
    exportable: Exportable,
    path: str | os.PathLike,
    quantization: str = "float32",
    representative_data: np.ndarray | Iterable | None = None,
    int8_io: str = "uint8",
    batch_size: int = 1,
) -> str:
    """Converts the model, BN folded and weights frozen, to TFLite and writes it atomically to `path`.

    The model takes float32 images [batch_size, size, size, 3], RGB in [0, 255], and returns the
    probabilities [batch_size, classes]. `quantization`:
    - "float32": no quantization;
    - "float16": float16 weights (computed in float32 where the hardware has no float16);
    - "int8": full-integer quantization of every op (TFLITE_BUILTINS_INT8), calibrated on
      `representative_data` (float32 images [n, size, size, 3] in [0, 255], e.g. `representative_images`),
      with `int8_io` ("uint8" or "int8") input and output tensors; feed them quantized with the scale and
      zero point of the input details (`tflite_predict` does).
    """
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {TFLITE_QUANTIZATIONS}; received quantization={quantization!r}.")
    if int8_io not in INT8_IO_TYPES:
        raise ValueError(f"`int8_io` must be one of {INT8_IO_TYPES}; received int8_io={int8_io!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; received batch_size={batch_size!r}.")
    size = exportable.image_size
    holder = _inference_function(exportable.inference_model, size, batch=batch_size)
    # Convert a frozen graph: given the variables, the converter keeps them as resource variables and
    # the interpreter re-reads and transposes every weight at each call (5x slower). The empty
    # trackable keeps a `serving_default` signature, and `named` its names (images -> probabilities).
    frozen = convert_variables_to_constants_v2(holder.function.get_concrete_function())
    named = tf.function(lambda images: {"probabilities": frozen(images)[0]}, input_signature=holder.function.input_signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()], tf.Module())
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative_data is None:
            raise ValueError("`representative_data` is required for quantization='int8' (images to calibrate on).")
        samples = [np.asarray(image, np.float32) for image in representative_data]
        if not samples or any(sample.shape != (size, size, 3) for sample in samples):
            shapes = sorted({sample.shape for sample in samples})
            raise ValueError(
                f"`representative_data` must hold images of shape ({size}, {size}, 3); received "
                f"{len(samples)} images of shapes {shapes[:3]}."
            )

        def dataset():  # batches of batch_size, the last one filled up from the start
            for start in range(0, len(samples), batch_size):
                yield [np.stack([samples[(start + i) % len(samples)] for i in range(batch_size)])]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, int8_io)
        converter.inference_output_type = getattr(tf, int8_io)
    path = os.fspath(path)
    write_atomically(path, converter.convert())
    return path


def _interpreter(path: str, num_threads: int | None = None, xnnpack: bool = True):
    """A TFLite interpreter: ai-edge-litert's where installed, else TensorFlow's (deprecated, same results)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=path, num_threads=num_threads, experimental_op_resolver_type=resolver)


def _ready_interpreter(path: str, num_threads: int | None = None):
    """Allocated interpreter with XNNPACK (the default delegate); without it where XNNPACK refuses the model."""
    interpreter = _interpreter(path, num_threads, xnnpack=True)
    try:
        interpreter.allocate_tensors()
        return interpreter, None
    except RuntimeError as error:
        interpreter = _interpreter(path, num_threads, xnnpack=False)
        interpreter.allocate_tensors()
        return interpreter, str(error).strip()


def _delegated(interpreter) -> bool | None:
    """Whether a delegate (XNNPACK, the only default one) took nodes; None where it cannot be told."""
    try:
        return any(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    except (AttributeError, KeyError, ValueError):
        return None


def tflite_details(path: str | os.PathLike) -> dict:
    """Input and output tensor details (name, shape, dtype, quantization) and the file size."""
    path = os.fspath(path)
    interpreter = _interpreter(path, xnnpack=False)
    interpreter.allocate_tensors()

    def describe(details):
        return [
            {
                "name": d["name"],
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])},
            }
            for d in details
        ]

    return {
        "path": path,
        "bytes": os.path.getsize(path),
        "inputs": describe(interpreter.get_input_details()),
        "outputs": describe(interpreter.get_output_details()),
    }


def format_tflite_details(details: dict) -> str:
    lines = [f"{details['path']} ({details['bytes'] / 1e6:.2f} MB)"]
    for kind in ("inputs", "outputs"):
        for d in details[kind]:
            q = d["quantization"]
            quant = f", quantization scale={q['scale']:.6g} zero_point={q['zero_point']}" if q["scale"] else ""
            lines.append(f"  {kind[:-1]:6} {d['name']}: shape={d['shape']} dtype={d['dtype']}{quant}")
    return "\n".join(lines)


def tflite_predict(path: str | os.PathLike, images, num_threads: int | None = None) -> np.ndarray:
    """Runs a TFLite model from `export_tflite` on float32 images [n, size, size, 3] in [0, 255].

    Quantizes the input and dequantizes the output of an int8 model; returns float32 probabilities.
    """
    interpreter, _ = _ready_interpreter(os.fspath(path), num_threads)
    (input_details,) = interpreter.get_input_details()
    (output_details,) = interpreter.get_output_details()
    images = np.asarray(images, np.float32)
    expected = tuple(input_details["shape"][1:])
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"`images` must have shape [n, {', '.join(map(str, expected))}]; received {images.shape}.")
    batch = int(input_details["shape"][0])
    outputs = []
    for start in range(0, len(images), batch):
        value = images[start : start + batch]
        count = len(value)
        if count < batch:  # a fixed-batch model: pad the last chunk, drop the padding's outputs
            value = np.concatenate([value, np.zeros((batch - count, *expected), np.float32)])
        scale, zero_point = input_details["quantization"]
        if scale:
            info = np.iinfo(input_details["dtype"])
            value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
        interpreter.set_tensor(input_details["index"], value.astype(input_details["dtype"]))
        interpreter.invoke()
        output = interpreter.get_tensor(output_details["index"]).astype(np.float32)
        scale, zero_point = output_details["quantization"]
        if scale:
            output = (output - zero_point) * scale
        outputs.append(output[:count])
    return np.concatenate(outputs)


def benchmark_tflite(path: str | os.PathLike, runs: int = 50, warmup: int = 5, num_threads: int | None = None) -> dict:
    """Latency of one inference with the TFLite interpreter and XNNPACK (its default CPU delegate).

    Returns milliseconds (median, mean, min, p90 over `runs` invocations after `warmup`), the thread
    count and the delegate that ran it ("XNNPACK", or "none" with the reason where XNNPACK refused).
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive integer; received runs={runs!r}.")
    num_threads = num_threads or os.cpu_count() or 1
    interpreter, xnnpack_error = _ready_interpreter(os.fspath(path), num_threads)
    (input_details,) = interpreter.get_input_details()
    rng = np.random.default_rng(0)
    dtype = np.dtype(input_details["dtype"])
    if dtype.kind == "f":
        value = rng.uniform(0, 255, input_details["shape"]).astype(dtype)
    else:
        info = np.iinfo(dtype)
        value = rng.integers(info.min, info.max, input_details["shape"], endpoint=True).astype(dtype)
    interpreter.set_tensor(input_details["index"], value)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    delegated = _delegated(interpreter)
    if xnnpack_error:
        delegate = f"none (XNNPACK refused the model: {xnnpack_error})"
    else:
        delegate = {True: "XNNPACK", False: "none (XNNPACK took no node)", None: "XNNPACK (default delegate)"}[delegated]
    return {
        "median_ms": float(np.median(times)),
        "mean_ms": float(np.mean(times)),
        "min_ms": float(np.min(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": runs,
        "num_threads": num_threads,
        "delegate": delegate,
    }


# ---------------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------------


def export_onnx(exportable: Exportable, path: str | os.PathLike, opset: int = 17) -> str:
    """Converts the model with tf2onnx: input `images` float32 [batch, size, size, 3] RGB in [0, 255]
    (NHWC, as in Keras), output `probabilities` [batch, classes]. Written atomically to `path`."""
    try:
        import tf2onnx
    except ImportError:
        raise ImportError("ONNX export needs tf2onnx (and onnxruntime to run the result): pip install tf2onnx onnxruntime") from None
    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset <= 18:
        raise ValueError(f"`opset` must be an integer from 13 to 18 (what tf2onnx 1.17 writes); received opset={opset!r}.")
    holder = _inference_function(exportable.inference_model, exportable.image_size, batch=None)
    # Freeze first: tf2onnx's from_function leaves captured constants (the Normalization layer's mean and
    # variance) as extra graph inputs that a caller would have to feed.
    frozen = convert_variables_to_constants_v2(holder.function.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    _vectorize_scalar_addends(graph_def)
    (input_name,), (output_name,) = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[input_name], output_names=[output_name], opset=opset)
    _rename_onnx_tensors(proto.graph, {input_name: "images", output_name: "probabilities"})
    for value in list(proto.graph.input) + list(proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = os.fspath(path)
    write_atomically(path, proto.SerializeToString())
    return path


def _vectorize_scalar_addends(graph_def) -> None:
    """Gives scalar float constants that only feed additions the shape [1] (same broadcast result).

    tf2onnx 1.17's transpose optimizer fails on a Conv followed by the addition of a scalar constant
    (`max(numpy_val.shape)` of a 0-d array) and then gives up the whole pass, leaving a Transpose around
    every convolution; a [1]-shaped constant takes its supported path.
    """
    from tensorflow.python.framework import tensor_util

    consumers: dict[str, set[str]] = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(name.split(":")[0].lstrip("^"), set()).add(node.op)
    for node in graph_def.node:
        if node.op != "Const" or not consumers.get(node.name) or not consumers[node.name] <= {"Add", "AddV2"}:
            continue
        value = tensor_util.MakeNdarray(node.attr["value"].tensor)
        if value.ndim == 0 and value.dtype.kind == "f":
            node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value.reshape([1])))


def _rename_onnx_tensors(graph, names: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = names.get(value.name, value.name)


# ---------------------------------------------------------------------------------------------------
# TF Hub / Kaggle Models
# ---------------------------------------------------------------------------------------------------


class ReusableSavedModel(tf.Module):
    """A TF2 reusable SavedModel (the TF Hub API): `__call__(images, training=False)`, `variables`,
    `trainable_variables` and `regularization_losses`, plus a `serving_default` signature.

    `images` are float32 [batch, height, width, 3], RGB in [0, 1] (the TF Hub image convention); the
    module scales them to the model's [0, 255] input. `training=True` runs batch normalization on batch
    statistics and updates its moving averages (and dropout in the classifier), for fine-tuning.
    """

    # tf.Module computes these as properties; the reusable SavedModel API stores them as attributes.
    variables = None
    trainable_variables = None
    regularization_losses = None

    def __init__(self, model: keras.Model, image_size: int | None, output_name: str):
        super().__init__(name=output_name)
        self.variables = [variable.value for variable in model.variables]
        self.trainable_variables = [variable.value for variable in model.trainable_variables]
        self.regularization_losses = []  # GhostNets use weight decay in the optimizer, no regularizer losses
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")

        def call(images, training=False):
            images = tf.convert_to_tensor(images, tf.float32)
            return tf.cast(model(images * 255.0, training=training), tf.float32)

        self.__call__ = tf.function(call, autograph=False)
        for training in (False, True):
            self.__call__.get_concrete_function(spec, training=training)
        self.serving_default = tf.function(
            lambda images: {output_name: call(images, training=False)}, autograph=False, input_signature=[spec]
        )


def _hub_model(exportable: Exportable, form: str) -> tuple[keras.Model, int | None, str]:
    """The Keras model of one form, with the exportable's weights: (model, input size, output name).

    classification: logits at the trained size; feature_vector: pooled features at any size.
    """
    common = dict(spec=exportable.spec, activation=exportable.activation, name=exportable.name)
    if form == "classification":
        size = exportable.image_size
        model = models.GhostNet(input_shape=(size, size, 3), classes=exportable.classes, classifier_activation=None, **common)
        output = (model, size, "logits")
    else:
        model = models.GhostNet(include_top=False, pooling="avg", input_shape=(None, None, 3), **common)
        output = (model, None, "feature_vector")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(exportable.model.get_layer(layer.name).get_weights())
    return output


def model_card(
    exportable: Exportable,
    form: str,
    license_name: str = "Apache-2.0",
    source: str | None = None,
    archive: str | None = None,
) -> str:
    """The Markdown model card of one published form (the metadata Kaggle Models shows)."""
    spec, size = exportable.spec, exportable.image_size
    include_top = form == "classification"
    counts = count(spec, size, include_top=include_top, classes=exportable.classes)
    scale_size = math.floor(size / exportable.crop_pct)
    title = f"{exportable.name} ({form.replace('_', ' ')})"
    weights = "random initialization (untrained)"
    if exportable.weights:
        weights = f"`{os.path.basename(exportable.weights)}` (sha256 `{_sha256(exportable.weights)[:16]}...`)"
    if include_top:
        io = (
            f"- Input: `images`, float32 `[batch, {size}, {size}, 3]`, RGB, values in [0, 1].\n"
            f"- Output: logits `[batch, {exportable.classes}]` (apply softmax for probabilities); "
            f"class labels in class-index order are listed below{' (ImageNet-1k)' if exportable.classes == 1000 else ''}."
        )
    else:
        io = (
            "- Input: `images`, float32 `[batch, height, width, 3]`, RGB, values in [0, 1]; any height and "
            f"width from 32 (trained at {size}x{size}).\n"
            f"- Output: the globally average-pooled features of the final 1x1 conv, float32 "
            f"`[batch, {spec.final_channels}]`."
        )
    labels = ""
    if include_top:
        shown = ", ".join(f"{i}: {label}" for i, label in enumerate(exportable.labels[:10]))
        more = f", ... ({exportable.classes} classes)" if exportable.classes > 10 else ""
        labels = f"\n## Classes\n\n{shown}{more}\n"
    usage = (
        "```python\n"
        "import tensorflow as tf, tensorflow_hub as hub, tf_keras\n"
        f"layer = hub.KerasLayer(PATH, trainable=True)  # {form}\n"
        "model = tf_keras.Sequential([tf_keras.Input((" + (f"{size}, {size}" if include_top else "None, None") + ", 3)), layer"
        + ("" if include_top else ", tf_keras.layers.Dense(NUM_CLASSES)") + "])\n"
        "```\n\n"
        "Keras 3: `keras.layers.TFSMLayer(PATH, call_endpoint=\"serving_default\")` (inference).\n"
        "TensorFlow alone: `module = tf.saved_model.load(PATH); outputs = module(images, training=False)`."
    )
    return f"""# {title}

A GhostNet of the TinyNet family ("Model Rubik's Cube", NeurIPS 2020) exported by keras_tinynet {__version__}
as a TF2 reusable SavedModel (TF Hub API: `__call__(images, training)`, `variables`, `trainable_variables`,
`regularization_losses`), fine-tunable.

| | |
|---|---|
| Form | {form} |
| Architecture | GhostNet `{spec.name}`: stem {spec.stem_channels}, {len(spec.blocks)} ghost bottlenecks, final conv {spec.final_channels}, conv_head {spec.head_channels}; activation {exportable.activation} |
| Input size | {size}x{size} |
| Parameters | {counts.params:,} ({counts.params / 1e6:.2f}M) |
| FLOPs | {counts.flops / 1e6:.1f}M multiply-adds at {size}x{size} |
| Weights | {weights} |
| Framework | TensorFlow 2 (SavedModel) |
| Source | {source or f"keras_tinynet {__version__} (keras_tinynet.export.publish_hub)"} |
| License | {license_name} |
| Archive | {f"`{os.path.basename(archive)}`" if archive else "-"} |
| Exported | {datetime.date.today().isoformat()} |

## Input and preprocessing

{io}
- Normalization (ImageNet mean {IMAGENET_PREPROCESSING.mean}, std {IMAGENET_PREPROCESSING.std}) happens inside.
- Eval preprocessing of the training pipeline: resize the shorter side to {scale_size} (= floor({size} / {exportable.crop_pct})),
  bicubic with antialiasing, then center-crop {size}x{size}.
{labels}
## Usage

{usage}

## Architecture

```
{spec.table()}
```

## Citation

```bibtex
{CITATION}
```
"""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_tarball(saved_model_dir: str, path: str) -> str:
    """A tar.gz of the SavedModel's contents at the archive root (saved_model.pb, variables/, assets/), as
    TF Hub and Kaggle Models expect; entries sorted, owner and mtime cleared, so equal inputs give equal
    archives. Written atomically."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with staged_file(path) as temporary, tarfile.open(temporary, "w:gz") as archive:
        for root, dirs, files in os.walk(saved_model_dir):
            dirs.sort()
            relative_root = os.path.relpath(root, saved_model_dir)
            if relative_root != ".":
                archive.add(root, arcname=relative_root, recursive=False, filter=clean)
            for file_name in sorted(files):
                full = os.path.join(root, file_name)
                archive.add(full, arcname=os.path.normpath(os.path.join(relative_root, file_name)), filter=clean)
    return path


@dataclasses.dataclass(frozen=True)
class Published:
    """Paths of one published form."""

    form: str
    saved_model: str
    card: str
    archive: str


def publish_hub(
    exportable: Exportable,
    output_dir: str | os.PathLike,
    forms: Sequence[str] = HUB_FORMS,
    license_name: str = "Apache-2.0",
    source: str | None = None,
    overwrite: bool = False,
) -> list[Published]:
    """Writes each form as `<output_dir>/<name>_<form>/` (SavedModel), `<name>_<form>.md` (model card)
    and `<name>_<form>.tar.gz` (the upload). A SavedModel directory is written next to its final place
    and renamed into it; existing outputs are replaced only with `overwrite`."""
    forms = list(forms)
    unknown = [form for form in forms if form not in HUB_FORMS]
    if not forms or unknown:
        raise ValueError(f"`forms` must be a non-empty subset of {HUB_FORMS}; received forms={forms!r}.")
    output_dir = os.fspath(output_dir)
    stems = {form: os.path.join(output_dir, f"{exportable.name}_{form}") for form in forms}
    existing = [p for stem in stems.values() for p in (stem, stem + ".md", stem + ".tar.gz") if os.path.exists(p)]
    if existing and not overwrite:
        raise ValueError(f"`output_dir`={output_dir!r} already holds {existing}; pass overwrite=True (--overwrite) to replace them.")
    os.makedirs(output_dir, exist_ok=True)
    published = []
    for form in forms:
        final = stems[form]
        card_path, archive_path = final + ".md", final + ".tar.gz"
        model, size, output_name = _hub_model(exportable, form)
        staging = tempfile.mkdtemp(prefix=f".{exportable.name}_{form}.partial-", dir=output_dir)
        try:
            module = ReusableSavedModel(model, size, output_name)
            _write_saved_model(module, staging, {"serving_default": module.serving_default})
            make_publishable(staging)
            fsync_tree(staging)
            make_tarball(staging, archive_path)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        card = model_card(exportable, form, license_name, source, archive_path)
        write_atomically(card_path, card)
        published.append(Published(form, final, card_path, archive_path))
    return published
