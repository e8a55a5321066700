"""The one reader of checkpoint files: `.weights.h5`, `.keras`, Keras 2 `.h5`, `.safetensors` and `.pth`.

Keras files are read into `{layer name: [arrays]}`; timm files into their state dict of numpy arrays
(the name mappings of `timm_mapping` and `kcam_mapping` rename them). Every failure is a ValueError
naming `weights=` or `source=` and the path. No Keras import: a model is only asked for its layers.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile

import h5py
import numpy as np

from keras_tinynet.files import staged_file

WeightsByLayer = dict[str, list[np.ndarray]]

SUFFIXES = (".weights.h5", ".keras", ".h5")
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")  # where training scripts nest a state dict


class CheckpointError(ValueError):
    """A checkpoint that is refused or does not fit the requested variant."""


def read_weights(path: str | os.PathLike, model=None) -> WeightsByLayer:
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


def read_weights_h5_bytes(data: bytes, model) -> WeightsByLayer:
    """Reads a `.weights.h5` made in memory (`_compat.weights_h5_bytes(model)`) by the `model`'s layer names."""
    with h5py.File(io.BytesIO(data), "r") as store:
        return _read_keras3_store(store, _layer_order(model))


def read_legacy_file(path: str) -> WeightsByLayer:
    """Reads a Keras 2 `.h5` (weights-only or full model) by layer name."""
    try:
        with h5py.File(path, "r") as store:
            return _read_legacy_store(store["model_weights"] if "model_weights" in store else store)
    except (OSError, KeyError) as error:
        raise ValueError(f"weights={path!r} is not a readable Keras 2 .h5 weights file: {error}.") from None


def write_weights_by_layer(path: str, weights: WeightsByLayer) -> None:
    """Writes `{layer name: [arrays]}` in the Keras 2 layout (names kept: no model needed to read it back),
    staged and renamed into place."""
    with staged_file(path, suffix=".h5") as temporary:
        with h5py.File(temporary, "w") as store:
            store.attrs["layer_names"] = [name.encode() for name in weights]
            for layer_name, arrays in weights.items():
                group = store.create_group(layer_name)
                names = [f"{layer_name}/{index}" for index in range(len(arrays))]
                group.attrs["weight_names"] = [name.encode() for name in names]
                for name, array in zip(names, arrays):
                    group.create_dataset(name, data=np.asarray(array))


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Reads a .safetensors checkpoint into numpy arrays (no torch)."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError(
            "Reading .safetensors checkpoints needs safetensors, a dependency of keras_tinynet: "
            "pip install --force-reinstall keras_tinynet"
        ) from None
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own SafetensorError (and others for bf16)
        raise CheckpointError(f"Could not read the safetensors checkpoint `source`={path!r}: {error}") from None


def read_pth(path: str) -> dict:
    """Reads a .pth checkpoint with `torch.load(weights_only=True)` only; refuses pickled objects."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            'Reading .pth checkpoints needs torch: pip install "keras_tinynet[convert]" (a .safetensors file does not).'
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for forbidden objects, RuntimeError for bad files
        raise CheckpointError(
            f"Refused to load `source`={path!r}: torch.load(weights_only=True) rejected it, so it holds "
            "something other than tensors and plain containers (a pickled object or code), or is not a "
            f"torch checkpoint. Only state dicts of tensors are accepted. torch said: {first_line(error)}"
        ) from None
    return _tensors_to_numpy(unwrap_state_dict(obj, path), path)


def unwrap_state_dict(obj, source: str) -> dict:
    """The state dict itself, where a training script nested it under STATE_DICT_KEYS."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"`source`={source!r} holds a {type(obj).__name__}, not a state dict.")
    if "conv_stem.weight" not in obj:
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def first_line(error: BaseException) -> str:
    """The informative line of an error (torch's weights_only refusal puts it after a preamble)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line or "Unsupported global" in line:
            return line
    return lines[0] if lines else type(error).__name__


def _tensors_to_numpy(state_dict: dict, source: str) -> dict[str, np.ndarray]:
    import torch

    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"`source`={source!r}: state dict entry {key!r} is a {type(value).__name__}, not a tensor."
            )
        value = value.detach().cpu()
        arrays[key] = (value.float() if value.is_floating_point() else value).numpy()
    return arrays


def _read_weights_file(path: str, model) -> WeightsByLayer:
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            with archive.open("model.weights.h5") as handle, h5py.File(handle, "r") as store:
                return _read_keras3_store(store, _functional_layer_order(config, path))
    if path.endswith(".weights.h5"):
        with h5py.File(path, "r") as store:
            if "layer_names" in store.attrs:  # a Keras 2 file that was given the new suffix
                return _read_legacy_store(store)
            if model is None:
                raise ValueError(
                    f"Reading the Keras 3 weights file {path!r} by layer name needs the `model` it is for."
                )
            return _read_keras3_store(store, _layer_order(model))
    return read_legacy_file(path)


def _layer_order(model) -> list[tuple[str, str]]:
    return [(layer.__class__.__name__, layer.name) for layer in model.layers]


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
