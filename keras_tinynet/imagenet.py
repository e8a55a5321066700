"""ImageNet class labels, `preprocess_input` and `decode_predictions`, offline.

keras.applications' `decode_predictions` downloads its class index at run time, which fails on
machines without internet, so the 1000 labels ship with the package (`resources/imagenet_classes.tsv`:
WordNet ids in tensorflow-datasets' `imagenet2012` class order, with timm's WordNet lemmas).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from keras_tinynet.spec import IMAGENET_PREPROCESSING


@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """(WordNet id, lemmas) of the 1000 ImageNet classes, in class-index order."""
    text = resources.files("keras_tinynet").joinpath("resources/imagenet_classes.tsv").read_text()
    return tuple(tuple(line.split("\t", 1)) for line in text.splitlines())


def class_names() -> list[str]:
    """Short readable names ("tench", "great_white_shark"), as keras.applications spells them."""
    return [lemmas.split(",")[0].strip().replace(" ", "_") for _, lemmas in imagenet_classes()]


def preprocess_input(x, data_format=None, mode=None):
    """Prepares RGB images in [0, 255] for a GhostNet.

    The models include their preprocessing (`include_preprocessing=True`, the default), so by default
    this returns `x` unchanged, as keras.applications does for EfficientNetV2 and MobileNetV3. For a
    model built with `include_preprocessing=False`, pass `mode="torch"`: scale to [0, 1] and normalize
    with the ImageNet mean/std, the preprocessing of the released checkpoints.
    """
    if mode is None:
        return x
    if mode != "torch":
        raise ValueError(f"`mode` must be None or 'torch'; received mode={mode!r}.")
    if data_format not in (None, "channels_last"):
        raise ValueError(f"Only 'channels_last' is supported; received data_format={data_format!r}.")
    mean = np.asarray(IMAGENET_PREPROCESSING.mean, dtype=np.float32)
    std = np.asarray(IMAGENET_PREPROCESSING.std, dtype=np.float32)
    return (x / 255.0 - mean) / std


def decode_predictions(preds, top: int = 5):
    """Decodes ImageNet predictions into lists of (WordNet id, class name, score), best first."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape (samples, 1000)). "
            f"Received array with shape: {preds.shape}"
        )
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
        raise ValueError(f"`top` must be an integer from 1 to 1000; received top={top!r}.")
    wnids, names = [w for w, _ in imagenet_classes()], class_names()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(wnids[i], names[i], float(row[i])) for i in best])
    return results
