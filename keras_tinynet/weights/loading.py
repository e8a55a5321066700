"""Weights I/O: reading .weights.h5, .keras, Keras 2 .h5 and published source files by layer name; weights=<tag>.

Every file is first read into `{layer name: [arrays]}` and then assigned by `assign_by_name`, the one
checked path that also takes converted timm checkpoints. It checks every shape before it assigns any,
so a mismatch names the layer and both shapes and leaves the model untouched.
"""

from __future__ import annotations

import json
import os
import re
import zipfile

import h5py
import keras
import numpy as np

from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights import sources
from keras_tinynet.weights.download import is_regular_file

WeightsByLayer = dict[str, list[np.ndarray]]

SUFFIXES = (".weights.h5", ".keras", ".h5")


def load_weights(model: keras.Model, path: str | os.PathLike, exclude: tuple[str, ...] = ()) -> None:
    """Loads `weights=<path>` into `model` by layer name: a file of this package or a published source checkpoint
    (a timm `.safetensors`, a keras_cv_attention_models `.h5`), converted in memory."""
    path = os.fspath(path)
    source = f"weights={path!r}"
    source_format = sources.detect_format(path) if os.path.isfile(path) else None
    if source_format is None:
        weights = read_weights(path, model)
    else:
        weights = sources.read_source(path, source_format, source)
    assign_by_name(model, weights, source=source, exclude=exclude)


def read_weights(path: str | os.PathLike, model: keras.Model | None = None) -> WeightsByLayer:
    """Reads a weights file into `{layer name: [arrays]}`; every failure is a ValueError naming `weights=` and the path.

    Keras 3 `.weights.h5` files do not store layer names (they key layers by class and position), so
    reading one needs the `model` it is meant for, whose layers give the names in the same order.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"weights={path!r} is a directory; pass the path of a weights file ({', '.join(SUFFIXES)}).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: weights={path!r}.")
    if not path.endswith(SUFFIXES):
        raise ValueError(f"Unsupported weights file weights={path!r}: the name must end with one of {SUFFIXES}.")
    try:
        return _read_weights_file(path, model)
    except OSError as error:  # h5py: "file signature not found" and other unreadable HDF5 files
        raise ValueError(f"weights={path!r} is not a readable HDF5 weights file: {error}.") from None
    except zipfile.BadZipFile as error:
        raise ValueError(f"weights={path!r} is not a .keras archive (a zip file): {error}.") from None
    except KeyError as error:
        raise ValueError(f"weights={path!r} is not a saved Keras model: {error} is missing from it.") from None


def read_legacy_file(path: str) -> WeightsByLayer:
    """Reads a Keras 2 `.h5` (weights-only or full model) by layer name."""
    try:
        with h5py.File(path, "r") as store:
            return _read_legacy_store(store["model_weights"] if "model_weights" in store else store)
    except (OSError, KeyError) as error:
        raise ValueError(f"weights={path!r} is not a readable Keras 2 .h5 weights file: {error}.") from None


def _read_weights_file(path: str, model: keras.Model | None) -> WeightsByLayer:
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            with archive.open("model.weights.h5") as handle, h5py.File(handle, "r") as store:
                return _read_keras3_store(store, _functional_layer_order(config, path))
    if path.endswith(".weights.h5"):
        if model is None:
            raise ValueError(f"Reading the Keras 3 weights file {path!r} by layer name needs the `model` it is for.")
        order = [(layer.__class__.__name__, layer.name) for layer in model.layers]
        with h5py.File(path, "r") as store:
            if "layer_names" in store.attrs:  # a Keras 2 file that was given the new suffix
                return _read_legacy_store(store)
            return _read_keras3_store(store, order)
    return read_legacy_file(path)


def assign_by_name(model: keras.Model, weights: WeightsByLayer, source: str, exclude: tuple[str, ...] = ()) -> None:
    """Assigns arrays to the model's layers of the same name, after checking every shape; the `exclude`d layers
    keep their weights (a new classifier when fine-tuning)."""
    missing, assignments = [], []
    for layer in model.layers:
        if not layer.weights or layer.name in exclude:
            continue
        if layer.name not in weights:
            missing.append(layer.name)
            continue
        arrays = weights[layer.name]
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
            assignments.append((variable, array))
    if missing:
        shown = ", ".join(repr(name) for name in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"Weights from {source} do not fit model {model.name!r}: no weights for {len(missing)} "
            f"layer(s) ({shown}). A file without the top (include_top=False) cannot fill a model with it."
        )
    for variable, array in assignments:
        variable.assign(array)


def _to_snake_case(name: str) -> str:
    # The rule Keras 3 uses to key layers in .weights.h5 files.
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_keras3_store(store: h5py.File, order: list[tuple[str, str]]) -> WeightsByLayer:
    """Maps the `layers/<class>_<n>/vars/<i>` entries of a Keras 3 store back to layer names.

    Keras 3.15 and later record each layer's name on its `vars` group: then the names are read directly,
    so layers that exist in one build and not in another (stochastic-depth dropouts) cannot shift the
    mapping. Older files are matched by position, the way Keras itself loads them.
    """
    if "layers" not in store:
        raise ValueError("The weights file has no 'layers' group: it was not saved from a functional model.")
    groups = {key: group["vars"] for key, group in store["layers"].items() if "vars" in group and len(group["vars"])}
    named = {key: variables.attrs.get("name") for key, variables in groups.items()}
    if all(named.values()):
        return {_text(named[key]): _arrays(variables) for key, variables in groups.items()}
    used: dict[str, int] = {}
    weights = {}
    for class_name, layer_name in order:
        key = _to_snake_case(class_name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        if key in groups:
            weights[layer_name] = _arrays(groups[key])
    return weights


def _arrays(variables) -> list[np.ndarray]:
    return [np.asarray(variables[str(i)]) for i in range(len(variables))]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_legacy_store(store) -> WeightsByLayer:
    weights = {}
    for layer_name in map(_text, store.attrs["layer_names"]):
        group = store[layer_name]
        names = [_text(n) for n in group.attrs["weight_names"]]
        if names:
            weights[layer_name] = [np.asarray(group[n]) for n in names]
    return weights


def _functional_layer_order(config: dict, path: str) -> list[tuple[str, str]]:
    try:
        return [(layer["class_name"], layer["config"]["name"]) for layer in config["config"]["layers"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path!r} does not hold a functional Keras model ({error!r} missing).") from None


def load_pretrained_weights(
    model: keras.Model,
    variant: str,
    tag: str,
    *,
    registry_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    exclude: tuple[str, ...] = (),
) -> None:
    """Loads the registered weights `tag` of `variant`; never leaves random weights silently.

    The first call downloads the published source checkpoint (hash-checked), converts it into the model
    with the top and caches the result beside it; later calls read that cache only. A model without the
    top takes the same file by layer name. See `keras_tinynet.weights.registry` for the registry, the
    mirror and the cache.
    """
    resolved = registry_lib.resolve_entry(variant, tag, registry_path)
    if resolved.entry["format"] == "keras_weights_h5":  # published in this package's layout: nothing to convert
        path = registry_lib.fetch(resolved, cache_dir, timeout)
    else:
        path = registry_lib.converted_path(resolved, cache_dir)
        if not is_regular_file(path):
            _convert_registered(resolved, registry_lib.fetch(resolved, cache_dir, timeout), path)
    source = f"{resolved.what} ({resolved.url}, cached at {path})"
    assign_by_name(model, read_weights(path, model), source=source, exclude=exclude)


def _convert_registered(resolved: registry_lib.ResolvedEntry, path: str, converted: str) -> None:
    """Converts a verified source file into the `.weights.h5` of the model with the top, checking every shape."""
    from keras_tinynet import models
    from keras_tinynet.weights.conversion import write_weights_atomically

    source = f"{resolved.what} ({resolved.url}, {path})"
    weights = sources.read_source(path, resolved.entry["format"], source)
    classes = weights["predictions"][1].shape[0] if "predictions" in weights else 1000
    full = models.VARIANTS[resolved.variant](classes=classes, classifier_activation=None)
    assign_by_name(full, weights, source=source)
    write_weights_atomically(full, converted)
