"""Converting timm GhostNet and TinyNet checkpoints into Keras `.weights.h5` files (behind scripts/convert_weights.py).

Sources:
- a `.safetensors` file, read with safetensors' numpy API: torch is not imported;
- a `.pth`/`.pt` file, read only through `torch.load(weights_only=True)`: a pickle holding anything but
  tensors and plain containers is refused, no code is ever unpickled;
- `timm:<model name>` (e.g. `timm:ghostnet_100.in1k`): `timm.create_model(pretrained=True)`, which
  downloads from the Hugging Face Hub (needs the internet, or timm's cache).

After converting, where torch and timm are installed (`parity="auto"`), the timm model with the same
weights and the Keras model run on the same random images; a file whose logits differ by more than
1e-4 is never written. The file is written atomically (a temporary file in the same folder, then
`os.replace`), and `convert_checkpoint` returns its sha256 and the registry entry for it.

Import order matters on this stack: importing timm (torchvision) after TensorFlow crashes the
process. This module imports Keras only inside functions, and imports torch/timm before Keras.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
import urllib.parse

import numpy as np

from keras_tinynet.files import file_hash, staged_file
from keras_tinynet.presets import PRESETS, get_spec
from keras_tinynet.spec import IMAGENET_PREPROCESSING
from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights.timm_mapping import from_timm_state_dict

TIMM_PREFIX = "timm:"
# The variants that have a timm counterpart (GhostNet v1 widths, TinyNet-A..E), by timm model name.
TIMM_MODELS = {name: preset.timm_model for name, preset in PRESETS.items() if preset.timm_model}
# ImageNet top-1 (%) that timm reports for its pretrained tags (results-imagenet.csv, 224 px).
PUBLISHED_TOP1 = {"ghostnet_100.in1k": 73.96}
PARITY_MODES = ("auto", "require", "skip")
PARITY_TOLERANCE = 1e-4
PTH_SUFFIXES = (".pth", ".pt")


class CheckpointError(ValueError):
    """A checkpoint that is refused or does not fit the requested variant."""


class ParityError(RuntimeError):
    """The converted Keras model and the timm model disagree."""


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    path: str
    sha256: str
    size: int
    variant: str
    include_top: bool
    entry: dict  # {variant: {"imagenet" or "imagenet_notop": registry entry}}
    parity_diff: float | None  # max |difference| of logits (features without the top), None if skipped


def parse_source(source: str) -> tuple[str, str]:
    """`source` -> ("safetensors" | "pth", path) or ("timm", model name)."""
    allowed = f"a .safetensors file, a {'/'.join(PTH_SUFFIXES)} file or '{TIMM_PREFIX}<timm model name>'"
    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source):
        raise ValueError(f"`source` must be {allowed}; received source={source!r}.")
    source = os.fspath(source)
    if source.startswith(TIMM_PREFIX):
        name = source[len(TIMM_PREFIX) :]
        if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)?", name):
            raise ValueError(
                f"`source` {source!r} must name a timm model after '{TIMM_PREFIX}', like "
                f"'{TIMM_PREFIX}ghostnet_100.in1k'."
            )
        return "timm", name
    if source.endswith(".safetensors"):
        kind = "safetensors"
    elif source.endswith(PTH_SUFFIXES):
        kind = "pth"
    else:
        raise ValueError(f"`source` must be {allowed}; received source={source!r}.")
    if not os.path.isfile(source):
        raise FileNotFoundError(f"`source` file not found: source={source!r}.")
    return kind, source


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Reads a .safetensors checkpoint into numpy arrays (no torch)."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError(
            "Reading .safetensors checkpoints needs the `safetensors` package: pip install safetensors"
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
            "Reading .pth checkpoints needs torch (pip install torch); a .safetensors file does not."
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for forbidden objects, RuntimeError for bad files
        raise CheckpointError(
            f"Refused to load `source`={path!r}: torch.load(weights_only=True) rejected it, so it holds "
            "something other than tensors and plain containers (a pickled object or code), or is not a "
            f"torch checkpoint. Only state dicts of tensors are accepted. torch said: {_first_line(error)}"
        ) from None
    return _tensors_to_numpy(_unwrap(obj, path), path)


def load_timm_pretrained(name: str):
    """`timm.create_model(name, pretrained=True)`: (model in eval mode, its numpy state dict, pretrained cfg)."""
    timm = _import_timm()
    architecture = name.split(".")[0]
    if architecture not in TIMM_MODELS.values() or not timm.is_model(architecture):
        allowed = [pretrained for model in TIMM_MODELS.values() for pretrained in timm.list_pretrained(f"{model}.*")]
        raise ValueError(
            f"`source` 'timm:{name}' is not a timm GhostNet (v1) or TinyNet; allowed timm models: "
            f"{', '.join(allowed)} (GhostNet v2/v3 are other architectures)."
        )
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as error:
        raise OSError(
            f"Could not load the pretrained timm model `source`='timm:{name}': {type(error).__name__}: "
            f"{_first_line(error).rstrip('.')}. timm downloads checkpoints from the Hugging Face Hub, which needs the "
            "internet (or timm's cache under $HF_HOME). On an offline machine, download the checkpoint "
            "elsewhere (e.g. model.safetensors of the Hub repository timm/" + name + ") and pass that file "
            "as the source."
        ) from None
    model.eval()
    state_dict = {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}
    return model, state_dict, dict(getattr(model, "pretrained_cfg", {}) or {})


def normalize_state_dict(state_dict: dict, source: str) -> dict[str, np.ndarray]:
    """Checks a timm GhostNet (v1) state dict: drops thop counters and a DataParallel `module.` prefix."""
    state_dict = _unwrap(state_dict, source)
    if state_dict and all(key.startswith("module.") for key in state_dict):
        state_dict = {key[len("module.") :]: value for key, value in state_dict.items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith(("total_ops", "total_params"))}
    if "conv_stem.weight" not in state_dict:
        shown = ", ".join(sorted(state_dict)[:5]) or "none"
        raise CheckpointError(
            f"`source`={source!r} is not a timm GhostNet or TinyNet state dict: it has no 'conv_stem.weight' "
            f"(keys: {shown}, ...)."
        )
    if any(".short_conv." in key or "_rpr" in key for key in state_dict):
        raise CheckpointError(
            f"`source`={source!r} is a GhostNet v2/v3 checkpoint; only GhostNet (v1) checkpoints "
            f"({', '.join(TIMM_MODELS)}) map to this package."
        )
    return state_dict


def keras_model_from_state_dict(state_dict: dict[str, np.ndarray], variant: str, include_top: bool, source: str):
    """Builds `variant` (logits, no softmax) and fills it from the state dict; every tensor must be used."""
    from keras_tinynet import models
    from keras_tinynet.weights.loading import assign_by_name

    classifier = state_dict.get("classifier.weight")
    if include_top and classifier is None:
        raise CheckpointError(
            f"`source`={source!r} has no classifier ('classifier.weight'); convert it with include_top=False."
        )
    weights = weights_from_timm(state_dict, f"`source`={source!r}")
    classes = int(classifier.shape[0]) if classifier is not None else 1000
    model = models.VARIANTS[variant](include_top=include_top, classes=classes, classifier_activation=None)
    assign_by_name(model, weights, source=f"`source`={source!r} (as `variant`={variant!r})")
    return model


def weights_from_timm(state_dict: dict[str, np.ndarray], source: str) -> dict[str, list[np.ndarray]]:
    """Maps a normalized timm GhostNet state dict by layer name; refuses tensors a GhostNet does not have."""
    used = _RecordingDict(state_dict)
    weights = from_timm_state_dict(used)
    unused = sorted(k for k in set(state_dict) - used.read if not k.endswith("num_batches_tracked"))
    if unused:
        raise CheckpointError(
            f"{source} holds {len(unused)} tensor(s) a GhostNet or TinyNet does not have "
            f"({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''}): it is another architecture."
        )
    return weights


def timm_reference(variant: str, state_dict: dict[str, np.ndarray]):
    """timm's model of `variant` (TIMM_MODELS) holding the same state dict, in eval mode."""
    timm = _import_timm()
    import torch

    classifier = state_dict.get("classifier.weight")
    classes = int(classifier.shape[0]) if classifier is not None else 0
    if timm.is_model(TIMM_MODELS[variant]):
        model = timm.create_model(TIMM_MODELS[variant], pretrained=False, num_classes=classes)
    else:  # ghostnet_150: timm's builder at width 1.5 (timm registers no such name)
        from timm.models.ghostnet import _create_ghostnet

        model = _create_ghostnet("ghostnet_100", width=PRESETS[variant].width, num_classes=classes)
    tensors = {key: torch.from_numpy(np.array(value)) for key, value in state_dict.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"The checkpoint does not fit timm's {variant}: missing {missing[:5]}, unexpected {unexpected[:5]}."
        )
    return model.eval()


def parity_difference(keras_model, reference, variant: str, include_top: bool, batch: int = 2, seed: int = 0) -> float:
    """Max |difference| between the Keras model and timm on random images: logits, or features without the top.

    The Keras model takes RGB in [0, 255] and normalizes itself; timm gets the same images normalized
    with the ImageNet mean/std, channels first.
    """
    import keras
    import torch

    size = get_spec(variant).default_size
    images = np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    mean = np.asarray(IMAGENET_PREPROCESSING.mean, "float32")
    std = np.asarray(IMAGENET_PREPROCESSING.std, "float32")
    normalized = torch.from_numpy(np.ascontiguousarray(((images / 255.0 - mean) / std).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        expected = (reference(normalized) if include_top else reference.forward_features(normalized)).numpy()
    if not include_top:
        expected = expected.transpose(0, 2, 3, 1)
    actual = keras.ops.convert_to_numpy(keras_model(images, training=False))
    return float(np.max(np.abs(actual - expected)))


def write_weights_atomically(model, output: str) -> str:
    """Saves `model`'s weights to `output` (*.weights.h5) through a staged file, checked before it is renamed."""
    from keras_tinynet.weights.loading import read_weights

    output = os.path.abspath(output)
    with staged_file(output, suffix=".weights.h5") as temporary:  # Keras writes only *.weights.h5 names
        model.save_weights(temporary)
        written = read_weights(temporary, model)  # read back before publishing it
        for layer in model.layers:
            for variable, array in zip(layer.weights, written.get(layer.name, [])):
                if not np.array_equal(np.asarray(variable.numpy()), array):
                    raise OSError(f"Writing {output!r} failed: layer {layer.name!r} did not read back equal.")
    return output


def registry_entry(
    path: str, variant: str, include_top: bool, source: str, license: str, top1: float | None, base_url: str | None
) -> dict:
    """The registry entry of a written file: `{variant: {tag: {...}}}`, validated."""
    file = os.path.basename(path)
    entry = {
        "file": file,
        "url": base_url.rstrip("/") + "/" + urllib.parse.quote(file) if base_url else None,
        "format": "keras_weights_h5",
        "hash_algorithm": "sha256",
        "hash": file_hash(path),
        "size": os.path.getsize(path),
        "source": source,
        "license": license,
        "top1": top1,
    }
    tag = "imagenet" if include_top else "imagenet_notop"
    registry_lib.validate_entry(entry, f"(new entry)[{variant!r}][{tag!r}]")
    return {variant: {tag: entry}}


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
    _check_arguments(variant, output, parity, base_url, top1, overwrite)
    kind, value = parse_source(source)
    run_parity = parity == "require" or (parity == "auto" and parity_available())
    if parity == "require" and not parity_available():
        raise ImportError("`parity`='require' needs torch and timm installed (pip install torch timm).")
    if run_parity or kind == "timm":
        _import_timm()  # before Keras (see the module docstring)

    if kind == "timm" and value.split(".")[0] != TIMM_MODELS.get(variant):
        raise ValueError(f"`source`={source!r} is timm's {value.split('.')[0]}, not `variant`={variant!r}.")
    reference = None
    if kind == "timm":
        reference, state_dict, cfg = load_timm_pretrained(value)
        full_name = f"{cfg.get('architecture', value.split('.')[0])}.{cfg['tag']}" if cfg.get("tag") else value
        description = f"timm:{full_name}"
        license = license or cfg.get("license")
        top1 = top1 if top1 is not None else PUBLISHED_TOP1.get(full_name)
    else:
        state_dict = read_safetensors(value) if kind == "safetensors" else read_pth(value)
        description = f"{os.path.basename(value)} (sha256 {file_hash(value)})"
    state_dict = normalize_state_dict(state_dict, source)
    model = keras_model_from_state_dict(state_dict, variant, include_top, source)

    difference = None
    if run_parity:
        if reference is None:
            reference = timm_reference(variant, state_dict)
        difference = parity_difference(model, reference, variant, include_top)
        if not difference <= PARITY_TOLERANCE:
            what = "logits" if include_top else "features"
            raise ParityError(
                f"Refusing to write {output!r}: the Keras {variant} and timm's model with the same weights "
                f"from `source`={source!r} differ by {difference:.3g} in their {what} (tolerance "
                f"{PARITY_TOLERANCE:g}). The checkpoint or the mapping does not fit `variant`={variant!r}."
            )
    path = write_weights_atomically(model, output)
    entry = registry_entry(path, variant, include_top, description, license or "unknown", top1, base_url)
    (data,) = entry[variant].values()
    return ConversionResult(path, data["hash"], data["size"], variant, include_top, entry, difference)


def parity_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "timm"))


def _check_arguments(variant, output, parity, base_url, top1, overwrite) -> None:
    if variant not in TIMM_MODELS:
        others = (
            " GhostNet-A..D have no timm architecture and no public checkpoint; train them with scripts/train.py."
            if variant in PRESETS
            else ""
        )
        raise ValueError(
            f"`variant` must be one of {', '.join(TIMM_MODELS)} (the variants timm has); "
            f"received variant={variant!r}.{others}"
        )
    if parity not in PARITY_MODES:
        raise ValueError(f"`parity` must be one of {PARITY_MODES}; received parity={parity!r}.")
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output).endswith(".weights.h5"):
        raise ValueError(
            "`output` must be a file name ending with '.weights.h5' (Keras 3 writes no other); "
            f"received output={output!r}."
        )
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(
            f"`output`={os.fspath(output)!r} exists; pass overwrite=True (--overwrite) to replace it."
        )
    if base_url is not None and not registry_lib.has_scheme(base_url):
        raise ValueError(
            f"`base_url` must be a URL with one of the schemes {registry_lib.URL_SCHEMES}; "
            f"received base_url={base_url!r}."
        )
    if top1 is not None and not 0 < top1 <= 100:
        raise ValueError(f"`top1` must be a percentage in (0, 100]; received top1={top1!r}.")


def _import_timm():
    if "timm" not in sys.modules and "tensorflow" in sys.modules:
        raise RuntimeError(
            "timm must be imported before TensorFlow/Keras in one process (importing it afterwards crashes "
            "on this stack): import timm first, run scripts/convert_weights.py, or pass parity='skip'."
        )
    try:
        import timm
    except ImportError:
        raise ImportError("This needs timm and torch: pip install torch timm") from None
    return timm


def _unwrap(obj, source: str) -> dict:
    if not isinstance(obj, dict):
        raise CheckpointError(f"`source`={source!r} holds a {type(obj).__name__}, not a state dict.")
    if "conv_stem.weight" not in obj:
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


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


class _RecordingDict(dict):
    """A dict that records which keys were read (to find tensors the mapping did not use)."""

    def __init__(self, data):
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _first_line(error: BaseException) -> str:
    """The informative line of an error (torch's weights_only refusal puts it after a preamble)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line or "Unsupported global" in line:
            return line
    return lines[0] if lines else type(error).__name__
