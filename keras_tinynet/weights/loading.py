"""Loading weights into the model it is given, by layer name: a weights file, a published source file, a tag.

Every file is first read into `{layer name: [arrays]}` (`formats` for this package's files, `conversion`
for published sources) and then assigned by `assign_by_name`, the one checked path. It checks every shape
before it assigns any, so a mismatch names the layer and both shapes and leaves the model untouched.
Nothing here builds a model.
"""

from __future__ import annotations

import os

from keras_tinynet.weights import conversion, formats
from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights.download import is_regular_file
from keras_tinynet.weights.formats import WeightsByLayer


def load_weights(model, path: str | os.PathLike, exclude: tuple[str, ...] = (), source: str | None = None) -> None:
    """Loads `weights=<path>` into `model` by layer name: a file of this package or a published source checkpoint
    (a timm `.safetensors`, a keras_cv_attention_models `.h5`), converted in memory. `source` names the file
    in errors (default `weights='<path>'`)."""
    source = source or f"weights={os.fspath(path)!r}"
    assign_by_name(model, read_file(model, path), source=source, exclude=exclude)


def read_file(model, path: str | os.PathLike) -> WeightsByLayer:
    """`{layer name: [arrays]}` of a `weights=` file; a Keras 3 `.weights.h5` is read by `model`'s layer names."""
    path = os.fspath(path)
    source_format = conversion.detect_format(path) if os.path.isfile(path) else None
    if source_format is None:
        return formats.read_weights(path, model)
    return conversion.read_source(path, source_format, f"weights={path!r}")


def assign_by_name(model, weights: WeightsByLayer, source: str, exclude: tuple[str, ...] = ()) -> None:
    """Assigns arrays to the model's layers of the same name, after checking every shape; the `exclude`d layers
    keep their weights (a new classifier when fine-tuning)."""
    missing, assignments = [], []
    for layer in model.layers:
        if not layer.weights or layer.name in exclude:
            continue
        if layer.name not in weights:
            missing.append(layer.name)
            continue
        assignments.extend(_checked_pairs(model, layer, weights[layer.name], source))
    if missing:
        shown = ", ".join(repr(name) for name in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"Weights from {source} do not fit model {model.name!r}: no weights for {len(missing)} "
            f"layer(s) ({shown}). A file without the top (include_top=False) cannot fill a model with it."
        )
    for variable, array in assignments:
        variable.assign(array)


def _checked_pairs(model, layer, arrays: list, source: str) -> list[tuple]:
    if len(arrays) != len(layer.weights):
        raise ValueError(
            f"Weights from {source} do not fit model {model.name!r}: layer {layer.name!r} has "
            f"{len(layer.weights)} variables in the model but {len(arrays)} in the file."
        )
    for variable, array in zip(layer.weights, arrays):
        if tuple(variable.shape) != tuple(array.shape):
            raise ValueError(
                f"Weights from {source} do not fit model {model.name!r}: layer {layer.name!r} "
                f"variable {variable.name!r} has shape {tuple(variable.shape)} in the model but "
                f"{tuple(array.shape)} in the file. Was the file saved from another variant?"
            )
    return list(zip(layer.weights, arrays))


def load_pretrained_weights(
    model,
    variant: str,
    tag: str,
    *,
    registry_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    exclude: tuple[str, ...] = (),
) -> None:
    """Loads the registered weights `tag` of `variant`; never leaves random weights silently.

    The first call downloads the published source checkpoint (hash-checked), converts it into this
    package's layer names, checks it against `model` and caches the converted arrays beside it; later
    calls read that cache only. A model without the top takes the same file by layer name. See
    `keras_tinynet.weights.registry` for the registry, the mirror and the cache.
    """
    resolved = registry_lib.resolve_entry(variant, tag, registry_path)
    if resolved.entry["format"] == "keras_weights_h5":  # published in this package's layout: nothing to convert
        path = registry_lib.fetch(resolved, cache_dir, timeout)
    else:
        path = registry_lib.converted_path(resolved, cache_dir)
        if not is_regular_file(path):
            fetched = registry_lib.fetch(resolved, cache_dir, timeout)
            source = f"{resolved.what} ({resolved.url}, {fetched})"
            weights = conversion.read_source(fetched, resolved.entry["format"], source)
            assign_by_name(model, weights, source=source, exclude=exclude)
            formats.write_weights_by_layer(path, weights)
            return
    source = f"{resolved.what} ({resolved.url}, cached at {path})"
    assign_by_name(model, formats.read_weights(path, model), source=source, exclude=exclude)
