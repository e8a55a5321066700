"""The one reading of a `weights=` argument, for the builders, training (fine-tuning, evaluation) and export.

`weights` is None (random initialization), a registered tag ("imagenet", "imagenet_ssld", see
`registry`), or the path of a file: this package's `.weights.h5`/`.keras`/Keras 2 `.h5`, or a published
source checkpoint (timm `.safetensors`, keras_cv_attention_models `.h5`). `check_weights` and
`check_registered` refuse a bad one before a model is built; `load_weights_argument` loads it into the
model it is given (`exclude`d layers keep theirs); `classifier_classes` says how many classes it has.
"""

from __future__ import annotations

import os

from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING, Preprocessing
from keras_tinynet.weights import loading, registry

TAG, FILE = "tag", "file"


def weights_kind(weights) -> str | None:
    """None, TAG or FILE; a one-line ValueError naming `weights` for anything else (a missing file too)."""
    if weights is None:
        return None
    if registry.is_tag(weights):
        return TAG
    if isinstance(weights, (str, os.PathLike)) and os.path.exists(weights):
        return FILE
    raise ValueError(
        "`weights` must be a weights file (.weights.h5, .keras, a Keras 2 .h5, a timm .safetensors or a "
        "keras_cv_attention_models .h5), a registered tag such as 'imagenet' (`keras-tinynet models --weights` "
        "lists them) or None "
        f"(random initialization). Received: weights={weights!r} (no such file)."
    )


def check_weights(weights, *, include_top: bool = True, classes: int = IMAGENET_CLASSES) -> str | None:
    """The kind of `weights`; refuses, before anything is built, a missing file or a tag with a top of another
    class count. `check_registered` then checks that the registry has the tag."""
    kind = weights_kind(weights)
    if kind == TAG and include_top and classes != IMAGENET_CLASSES:
        raise ValueError(
            f"If using `weights={weights!r}` with `include_top=True`, `classes` should be {IMAGENET_CLASSES}. "
            f"Received: classes={classes}. Pass include_top=False to put a new classifier on the pretrained "
            "backbone."
        )
    return kind


def check_registered(weights, variant: str) -> None:
    """A tag must be registered for `variant` (a preset name): else a one-line error naming what exists."""
    if weights_kind(weights) == TAG:
        registry.resolve_entry(variant, weights)


def load_weights_argument(
    model, weights, *, variant: str, exclude: tuple[str, ...] = (), source: str | None = None
) -> None:
    """Loads `weights` into `model` (a network of `variant`) by layer name; None leaves it as it is.
    `source` is how errors name a file (default `weights='<path>'`)."""
    kind = weights_kind(weights)
    if kind == TAG:
        loading.load_pretrained_weights(model, variant, weights, exclude=exclude)
    elif kind == FILE:
        loading.load_weights(model, weights, exclude=exclude, source=source)


def classifier_classes(model, weights) -> int | None:
    """The number of classes of the classifier `weights` holds (ImageNet's for a tag); None without one.
    A Keras 3 `.weights.h5` is read by the layer names of `model`, a network of the same spec."""
    kind = weights_kind(weights)
    if kind == TAG:
        return IMAGENET_CLASSES
    if kind is None:
        return None
    arrays = loading.read_file(model, weights).get("predictions")
    return int(arrays[0].shape[-1]) if arrays else None


def published_preprocessing(weights, variant: str) -> Preprocessing:
    """The eval transform of `weights`: a tag's as published (crop_pct, interpolation), else the family's."""
    if weights_kind(weights) == TAG:
        return registry.published_preprocessing(variant, weights)
    return IMAGENET_PREPROCESSING
