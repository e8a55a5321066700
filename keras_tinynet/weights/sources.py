"""Published checkpoints (timm `.safetensors`, keras_cv_attention_models `.h5`) read into this package's layer names.

Each source format is a reader plus a name mapping, in numpy (no torch): `read_source` returns
`{Keras layer name: [arrays]}`, which `loading.assign_by_name` checks shape by shape. Both formats hold
GhostNets and TinyNets (timm_mapping, kcam_mapping); a new source format is a SOURCE_FORMATS entry in
the registry plus its reader and mapping here.
"""

from __future__ import annotations

from keras_tinynet.weights import conversion, kcam_mapping
from keras_tinynet.weights.registry import SOURCE_FORMATS

WeightsByLayer = dict[str, list]


def detect_format(path: str) -> str | None:
    """The source format of a `weights=` path, None for a file of this package (.weights.h5, .keras, own .h5)."""
    if path.endswith(SOURCE_FORMATS["timm_safetensors"]):
        return "timm_safetensors"
    if path.endswith(".h5") and not path.endswith(".weights.h5"):
        from keras_tinynet.weights.loading import read_legacy_file

        if kcam_mapping.is_kcam(read_legacy_file(path)):
            return "kcam_h5"
    return None


def read_source(path: str, source_format: str, source: str) -> WeightsByLayer:
    """Reads a source checkpoint into this package's layer names; `source` names it in errors."""
    if source_format == "timm_safetensors":
        state_dict = conversion.normalize_state_dict(conversion.read_safetensors(path), path)
        return conversion.weights_from_timm(state_dict, source)
    if source_format == "kcam_h5":
        from keras_tinynet.weights.loading import read_legacy_file

        return kcam_mapping.from_kcam_weights(read_legacy_file(path), source)
    raise ValueError(f"`source_format` must be one of {tuple(SOURCE_FORMATS)}; received {source_format!r}.")
