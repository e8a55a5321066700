"""The model to export: a GhostNet with its weights, labels and image size (`load_exportable`)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Sequence

import keras

from keras_tinynet.builder import build
from keras_tinynet.imagenet import class_names
from keras_tinynet.inference import optimize_for_inference
from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING, MIN_SIZE, NetworkSpec
from keras_tinynet.spec_resolver import model_name, resolve_activation, resolve_spec
from keras_tinynet.weights import resolver


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
        """The model with BN folded and fused ops (`optimize_for_inference`): what SavedModel, TFLite and ONNX run."""
        return optimize_for_inference(self.model)

    @property
    def classes(self) -> int:
        return len(self.labels)


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Class labels from a text file: one label per line, in class-index order (blank lines are errors)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"`labels` must be a text file with one class label per line; received labels={path!r} (no such file)."
        )
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
    model: str | None = None,
    *,
    flops: float | None = None,
    spec=None,
    weights: str | os.PathLike | None = None,
    labels: str | os.PathLike | Sequence[str] | None = None,
    image_size: int | None = None,
    activation: str | None = None,
    name: str | None = None,
) -> Exportable:
    """Builds the GhostNet to export and loads `weights` into it.

    `weights` is what the builders take (`weights.resolver`): a registered tag such as "imagenet", or
    a weights file (`.weights.h5`, e.g. the EMA weights the training script writes, `.keras`, Keras 2
    `.h5`, a published source checkpoint), loaded by layer name. The number of classes comes from
    `labels` (a file with one label per line, or a list) when given, else from the weights' classifier;
    ImageNet's 1000 labels are built in. `image_size` defaults to the spec's size, `activation` to the
    spec's own.
    """
    spec = resolve_spec(model, flops=flops, spec=spec)
    activation = resolve_activation(spec, activation)
    size = spec.default_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise ValueError(f"`image_size` must be an integer >= {MIN_SIZE}; received image_size={image_size!r}.")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"`name` must be letters, digits, '_', '.' or '-' (a directory name); received name={name!r}.")
    label_list = _label_list(labels)
    requested = len(label_list) if label_list else IMAGENET_CLASSES
    weights = os.fspath(weights) if isinstance(weights, os.PathLike) else weights
    resolver.check_weights(weights, classes=requested)
    resolver.check_registered(weights, spec.name)

    def build_with(classes: int) -> keras.Model:
        input_shape = (size, size, 3)
        return build(
            spec,
            input_shape=input_shape,
            classes=classes,
            activation=activation,
            name=name or model_name(spec, activation),
        )

    keras_model = build_with(requested)
    file_classes = resolver.classifier_classes(keras_model, weights)
    if file_classes is not None and file_classes != requested:
        if label_list is not None:
            raise ValueError(
                f"`labels` lists {len(label_list)} classes but the classifier in `weights`={weights!r} has "
                f"{file_classes}; pass a labels file with {file_classes} lines."
            )
        keras_model = build_with(file_classes)
    resolver.load_weights_argument(keras_model, weights, variant=spec.name, source=f"`weights`={weights!r}")
    classes = keras_model.output_shape[-1]
    if label_list is None:
        label_list = tuple(class_names()) if classes == IMAGENET_CLASSES else tuple(str(i) for i in range(classes))
    crop_pct = resolver.published_preprocessing(weights, spec.name).crop_pct  # a tag's as published
    return Exportable(keras_model, spec, size, label_list, activation, weights, crop_pct)


def _label_list(labels) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        return read_labels(labels)
    label_list = tuple(str(label) for label in labels)
    if not label_list:
        raise ValueError("`labels` must hold at least one label; received an empty list.")
    return label_list
