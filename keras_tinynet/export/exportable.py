"""The model to export: a GhostNet with its weights, labels and image size (`load_exportable`)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Sequence

import keras

from keras_tinynet import models
from keras_tinynet.imagenet import class_names
from keras_tinynet.inference import optimize_for_inference
from keras_tinynet.presets import model_name, resolve_spec
from keras_tinynet.spec import ACTIVATIONS, IMAGENET_CLASSES, IMAGENET_PREPROCESSING, MIN_SIZE, NetworkSpec
from keras_tinynet.weights import loading, registry


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

    `weights` is any weights file the builders read (`.weights.h5`, e.g. the EMA weights the training
    script writes, `.keras`, Keras 2 `.h5`), loaded by layer name. The number of classes comes from
    `labels` (a file with one label per line, or a list) when given, else from the weights file's
    classifier; ImageNet's 1000 labels are built in. `image_size` defaults to the spec's size, `activation`
    to the spec's own.
    """
    spec = resolve_spec(model, flops=flops, spec=spec)
    activation = spec.activation if activation is None else activation
    size = spec.default_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise ValueError(f"`image_size` must be an integer >= {MIN_SIZE}; received image_size={image_size!r}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; received activation={activation!r}.")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"`name` must be letters, digits, '_', '.' or '-' (a directory name); received name={name!r}.")
    tagged = registry.is_tag(weights)
    if weights is not None and not tagged:
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise ValueError(
                f"`weights` must be a weights file ({', '.join(loading.SUFFIXES)}); "
                f"received weights={weights!r} (no such file)."
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
        return models.build(
            spec,
            input_shape=(size, size, 3),
            classes=classes,
            activation=activation,
            name=name or model_name(spec, activation),
        )

    keras_model = build(len(label_list) if label_list else IMAGENET_CLASSES)
    if tagged:  # a registered tag, loaded as the builders load it
        if label_list is not None and len(label_list) != IMAGENET_CLASSES:
            raise ValueError(
                f"`labels` lists {len(label_list)} classes but `weights`={weights!r} classifies the "
                f"{IMAGENET_CLASSES} ImageNet classes; leave `labels` out (ImageNet's are built in)."
            )
        loading.load_pretrained_weights(keras_model, spec.name, weights)
    elif weights is not None:
        try:
            arrays = loading.read_weights(weights, keras_model)
        except (OSError, KeyError) as error:
            raise ValueError(f"`weights`={weights!r} could not be read as a Keras weights file: {error}") from None
        file_classes = arrays["predictions"][0].shape[-1] if "predictions" in arrays else None
        if file_classes is not None and file_classes != keras_model.output_shape[-1]:
            if label_list is not None:
                raise ValueError(
                    f"`labels` lists {len(label_list)} classes but the classifier in `weights`={weights!r} has "
                    f"{file_classes}; pass a labels file with {file_classes} lines."
                )
            keras_model = build(file_classes)
        loading.assign_by_name(keras_model, arrays, source=f"`weights`={weights!r}")
    classes = keras_model.output_shape[-1]
    if label_list is None:
        label_list = tuple(class_names()) if classes == 1000 else tuple(str(i) for i in range(classes))
    crop_pct = (
        registry.published_preprocessing(spec.name, weights).crop_pct if tagged else IMAGENET_PREPROCESSING.crop_pct
    )
    return Exportable(keras_model, spec, size, label_list, activation, weights, crop_pct)
