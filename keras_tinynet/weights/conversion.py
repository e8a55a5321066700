"""Published checkpoints in this package's layer names: timm GhostNet and TinyNet state dicts (and kcam `.h5`).

This module maps and checks; it never builds a model. `keras_tinynet.convert.convert_checkpoint` builds
the Keras model, has it filled from `weights_from_timm`, compares it with timm and writes it.

Sources:
- a `.safetensors` file, read with safetensors' numpy API: torch is not imported;
- a `.pth`/`.pt` file, read only through `torch.load(weights_only=True)`: a pickle holding anything but
  tensors and plain containers is refused, no code is ever unpickled;
- `timm:<model name>` (e.g. `timm:ghostnet_100.in1k`): `timm.create_model(pretrained=True)`, which
  downloads from the Hugging Face Hub (needs the internet, or timm's cache).

`parity_difference` runs the timm model with the same weights and the Keras model on the same random
images; `read_source` reads a `weights=` source file (timm `.safetensors`, kcam `.h5`) into layer names.

Import order matters on this stack: importing timm (torchvision) after TensorFlow crashes the
process. This module imports Keras only inside functions, and imports torch/timm before Keras.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import urllib.parse

import numpy as np

from keras_tinynet.files import file_hash
from keras_tinynet.presets import PRESETS, get_spec
from keras_tinynet.spec import IMAGENET_PREPROCESSING
from keras_tinynet.weights import kcam_mapping
from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights.formats import (
    CheckpointError,
    first_line,
    read_legacy_file,
    read_pth,
    read_safetensors,
    unwrap_state_dict,
)
from keras_tinynet.weights.timm_mapping import from_timm_state_dict

TIMM_PREFIX = "timm:"
# The variants that have a timm counterpart (GhostNet v1 widths, TinyNet-A..E), by timm model name.
TIMM_MODELS = {name: preset.timm_model for name, preset in PRESETS.items() if preset.timm_model}
# ImageNet top-1 (%) that timm reports for its pretrained tags (results-imagenet.csv, 224 px).
PUBLISHED_TOP1 = {"ghostnet_100.in1k": 73.96}
PARITY_MODES = ("auto", "require", "skip")
PARITY_TOLERANCE = 1e-4
PTH_SUFFIXES = (".pth", ".pt")


class ParityError(RuntimeError):
    """The converted Keras model and the timm model disagree."""


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


def load_timm_pretrained(name: str):
    """`timm.create_model(name, pretrained=True)`: (model in eval mode, its numpy state dict, pretrained cfg)."""
    timm = import_timm()
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
            f"{first_line(error).rstrip('.')}. timm downloads checkpoints from the Hugging Face Hub, which needs the "
            "internet (or timm's cache under $HF_HOME). On an offline machine, download the checkpoint "
            "elsewhere (e.g. model.safetensors of the Hub repository timm/" + name + ") and pass that file "
            "as the source."
        ) from None
    model.eval()
    state_dict = {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}
    return model, state_dict, dict(getattr(model, "pretrained_cfg", {}) or {})


def normalize_state_dict(state_dict: dict, source: str) -> dict[str, np.ndarray]:
    """Checks a timm GhostNet (v1) state dict: drops thop counters and a DataParallel `module.` prefix."""
    state_dict = unwrap_state_dict(state_dict, source)
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
    timm = import_timm()
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


def registry_entry(
    path: str,
    variant: str,
    include_top: bool,
    source: str,
    license: str,
    top1: float | None,
    base_url: str | None,
    verified_imagenet: bool = True,
) -> dict:
    """The registry entry of a written file: `{variant: {tag: {...}}}`, validated. The tag is `imagenet` only
    for a source known to be an ImageNet checkpoint (`verified_imagenet`: timm's own), else `converted`."""
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
    tag = ("imagenet" if verified_imagenet else "converted") + ("" if include_top else "_notop")
    registry_lib.validate_entry(entry, f"(new entry)[{variant!r}][{tag!r}]")
    return {variant: {tag: entry}}


def parity_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "timm"))


def check_conversion_arguments(variant, output, parity, base_url, top1, overwrite) -> None:
    """Refuses bad `convert_checkpoint` arguments before anything is read or built."""
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


def import_timm():
    if "timm" not in sys.modules and "tensorflow" in sys.modules:
        raise RuntimeError(
            "timm must be imported before TensorFlow/Keras in one process (importing it afterwards crashes "
            "on this stack): import timm first, run scripts/convert_weights.py, or pass parity='skip'."
        )
    try:
        import timm
    except ImportError:
        raise ImportError('This needs timm and torch: pip install "keras_tinynet[convert]"') from None
    return timm


class _RecordingDict(dict):
    """A dict that records which keys were read (to find tensors the mapping did not use)."""

    def __init__(self, data):
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def detect_format(path: str) -> str | None:
    """The source format of a `weights=` path, None for a file of this package (.weights.h5, .keras, own .h5)."""
    if path.endswith(registry_lib.SOURCE_FORMATS["timm_safetensors"]):
        return "timm_safetensors"
    if path.endswith(".h5") and not path.endswith(".weights.h5") and kcam_mapping.is_kcam(read_legacy_file(path)):
        return "kcam_h5"
    return None


def read_source(path: str, source_format: str, source: str) -> dict[str, list[np.ndarray]]:
    """Reads a published source checkpoint into this package's layer names; `source` names it in errors."""
    if source_format == "timm_safetensors":
        return weights_from_timm(normalize_state_dict(read_safetensors(path), path), source)
    if source_format == "kcam_h5":
        return kcam_mapping.from_kcam_weights(read_legacy_file(path), source)
    raise ValueError(
        f"`source_format` must be one of {tuple(registry_lib.SOURCE_FORMATS)}; received {source_format!r}."
    )


def read_state_dict(kind: str, value: str) -> dict[str, np.ndarray]:
    """The state dict of a parsed `source` file ("safetensors" or "pth", see `parse_source`)."""
    return read_safetensors(value) if kind == "safetensors" else read_pth(value)
