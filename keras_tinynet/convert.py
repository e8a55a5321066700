"""Converting a timm GhostNet or TinyNet checkpoint into a Keras `.weights.h5` (behind `keras-tinynet convert`).

This module builds the Keras model; `weights.conversion` maps the checkpoint into it and compares it with
timm. After converting, where torch and timm are installed (`parity="auto"`), a file whose logits differ
from timm's by more than 1e-4 is never written. The file is made in memory, read back, and written
atomically (files.write_atomically); `convert_checkpoint` returns its sha256 and the registry entry for it.
Import order matters on this stack: timm is imported before Keras (see `weights.conversion`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_tinynet.files import file_hash, write_atomically
from keras_tinynet.weights import conversion
from keras_tinynet.weights.formats import CheckpointError, read_weights_h5_bytes


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    path: str
    sha256: str
    size: int
    variant: str
    include_top: bool
    entry: dict  # {variant: {tag: registry entry}} (tag: imagenet[_notop] for timm sources, else converted[_notop])
    parity_diff: float | None  # max |difference| of logits (features without the top), None if skipped


def keras_model_from_state_dict(state_dict: dict[str, np.ndarray], variant: str, include_top: bool, source: str):
    """Builds `variant` (logits, no softmax) and fills it from the state dict; every tensor must be used."""
    from keras_tinynet import models  # Keras, after timm (see the module docstring)
    from keras_tinynet.weights.loading import assign_by_name

    classifier = state_dict.get("classifier.weight")
    if include_top and classifier is None:
        raise CheckpointError(
            f"`source`={source!r} has no classifier ('classifier.weight'); convert it with include_top=False."
        )
    weights = conversion.weights_from_timm(state_dict, f"`source`={source!r}")
    classes = int(classifier.shape[0]) if classifier is not None else 1000
    model = models.VARIANTS[variant](include_top=include_top, classes=classes, classifier_activation=None)
    assign_by_name(model, weights, source=f"`source`={source!r} (as `variant`={variant!r})")
    return model


def write_weights_atomically(model, output: str) -> str:
    """Saves `model`'s weights to `output` (*.weights.h5): made in memory, read back, then written atomically."""
    from keras_tinynet import _compat

    output = os.path.abspath(output)
    data = _compat.weights_h5_bytes(model)
    written = read_weights_h5_bytes(data, model)
    for layer in model.layers:
        for variable, array in zip(layer.weights, written.get(layer.name, [])):
            if not np.array_equal(np.asarray(variable.numpy()), array):
                raise OSError(f"Writing {output!r} failed: layer {layer.name!r} did not read back equal.")
    write_atomically(output, data)
    return output


def convert_checkpoint(
    source: str,
    variant: str,
    output: str,
    *,
    include_top: bool = True,
    parity: str = "auto",
    base_url: str | None = None,
    license: str | None = None,
    top1: float | None = None,
    overwrite: bool = False,
) -> ConversionResult:
    """Converts a timm GhostNet or TinyNet checkpoint into `output` (*.weights.h5) for `variant`.

    Args:
        source: a .safetensors file, a .pth/.pt file, or "timm:<model name>".
        variant: one of TIMM_MODELS (timm's GhostNet widths and TinyNet-A..E; GhostNet-A..D have no timm model).
        output: the file to write; must end with ".weights.h5" (Keras 3 writes no other name).
        include_top: write the file for the model with (True) or without (False) conv_head and classifier.
        parity: "auto" (check against timm where torch and timm are installed), "require" or "skip".
        base_url: where the file will be published; the entry's url is `<base_url>/<file>` (else null).
        license, top1: for the entry; default to timm's license and published top-1 for "timm:" sources.
        overwrite: replace an existing `output`.
    """
    conversion.check_conversion_arguments(variant, output, parity, base_url, top1, overwrite)
    kind, value = conversion.parse_source(source)
    run_parity = parity == "require" or (parity == "auto" and conversion.parity_available())
    if parity == "require" and not conversion.parity_available():
        raise ImportError("`parity`='require' needs torch and timm: pip install \"keras_tinynet[convert]\"")
    if run_parity or kind == "timm":
        conversion.import_timm()  # before Keras (see the module docstring)
    if kind == "timm" and value.split(".")[0] != conversion.TIMM_MODELS.get(variant):
        raise ValueError(f"`source`={source!r} is timm's {value.split('.')[0]}, not `variant`={variant!r}.")
    checkpoint = _read_checkpoint(kind, value, license, top1)
    state_dict = conversion.normalize_state_dict(checkpoint.state_dict, source)
    model = keras_model_from_state_dict(state_dict, variant, include_top, source)
    difference = None
    if run_parity:
        reference = checkpoint.reference or conversion.timm_reference(variant, state_dict)
        difference = _check_parity(model, reference, variant, include_top, source, output)
    path = write_weights_atomically(model, output)
    entry = conversion.registry_entry(
        path,
        variant,
        include_top,
        checkpoint.description,
        checkpoint.license or "unknown",
        checkpoint.top1,
        base_url,
        verified_imagenet=kind == "timm",
    )
    (data,) = entry[variant].values()
    return ConversionResult(path, data["hash"], data["size"], variant, include_top, entry, difference)


@dataclasses.dataclass(frozen=True)
class _Checkpoint:
    """A read source: its state dict, timm's model where timm loaded it, and what its registry entry says."""

    state_dict: dict
    reference: object | None
    description: str
    license: str | None
    top1: float | None


def _read_checkpoint(kind: str, value: str, license: str | None, top1: float | None) -> _Checkpoint:
    if kind != "timm":
        description = f"{os.path.basename(value)} (sha256 {file_hash(value)})"
        return _Checkpoint(conversion.read_state_dict(kind, value), None, description, license, top1)
    reference, state_dict, cfg = conversion.load_timm_pretrained(value)
    full_name = f"{cfg.get('architecture', value.split('.')[0])}.{cfg['tag']}" if cfg.get("tag") else value
    top1 = top1 if top1 is not None else conversion.PUBLISHED_TOP1.get(full_name)
    return _Checkpoint(state_dict, reference, f"timm:{full_name}", license or cfg.get("license"), top1)


def _check_parity(model, reference, variant: str, include_top: bool, source: str, output: str) -> float:
    """The Keras model's largest difference from timm's; a ParityError above the tolerance."""
    difference = conversion.parity_difference(model, reference, variant, include_top)
    if not difference <= conversion.PARITY_TOLERANCE:
        what = "logits" if include_top else "features"
        raise conversion.ParityError(
            f"Refusing to write {output!r}: the Keras {variant} and timm's model with the same weights "
            f"from `source`={source!r} differ by {difference:.3g} in their {what} (tolerance "
            f"{conversion.PARITY_TOLERANCE:g}). The checkpoint or the mapping does not fit `variant`={variant!r}."
        )
    return difference
