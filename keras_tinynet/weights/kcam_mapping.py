"""keras_cv_attention_models (kcam) GhostNet layer names to this package's, in plain numpy.

kcam publishes its GhostNet weights (converted from PaddleClas) as Keras 2 `.h5` files whose layers
are named by `keras_cv_attention_models/ghostnet/ghostnet_v2.py`: `stem_`, `stack<n>_` (1-based)
bottlenecks with `ghost_1_`/`ghost_2_` modules (`prim_conv`, `prim_bn`, `cheap_dw_conv`, `cheap_bn`),
`down_` (the strided depthwise), `se_1_`/`se_2_`, `short_1_`/`short_2_`, then `pre_` (the final 1x1
conv), `features_conv` and the `head` Dense. The arrays are Keras' already: only the names change.
"""

from __future__ import annotations

import re

import numpy as np

WeightsByLayer = dict[str, list[np.ndarray]]

# kcam name inside one bottleneck -> this package's.
_BLOCK_LAYERS = {
    "ghost_1_prim_conv": "ghost1_primary_conv",
    "ghost_1_prim_bn": "ghost1_primary_bn",
    "ghost_1_cheap_dw_conv": "ghost1_cheap_conv",
    "ghost_1_cheap_bn": "ghost1_cheap_bn",
    "ghost_2_prim_conv": "ghost2_primary_conv",
    "ghost_2_prim_bn": "ghost2_primary_bn",
    "ghost_2_cheap_dw_conv": "ghost2_cheap_conv",
    "ghost_2_cheap_bn": "ghost2_cheap_bn",
    "down_dw_conv": "dw_conv",
    "down_bn": "dw_bn",
    "se_1_conv": "se_reduce",
    "se_2_conv": "se_expand",
    "short_1_dw_conv": "shortcut_dw_conv",
    "short_1_bn": "shortcut_dw_bn",
    "short_2_conv": "shortcut_conv",
    "short_2_bn": "shortcut_bn",
}
_OUTER_LAYERS = {
    "stem_conv": "stem_conv",
    "stem_bn": "stem_bn",
    "pre_conv": "final_conv",
    "pre_bn": "final_bn",
    "features_conv": "conv_head",
    "head": "predictions",
}
_BLOCK_NAME = re.compile(r"stack(\d+)_(.+)")


def keras_name(kcam_name: str) -> str | None:
    """This package's layer name for a kcam GhostNet layer, None for a name GhostNet (v1) does not have."""
    if kcam_name in _OUTER_LAYERS:
        return _OUTER_LAYERS[kcam_name]
    match = _BLOCK_NAME.fullmatch(kcam_name)
    if match and match.group(2) in _BLOCK_LAYERS:
        return f"block{int(match.group(1)) - 1}_{_BLOCK_LAYERS[match.group(2)]}"
    return None


def is_kcam_ghostnet(weights: WeightsByLayer) -> bool:
    """Whether layer names read from a Keras 2 `.h5` file are kcam's GhostNet's."""
    return "stem_conv" in weights and any(_BLOCK_NAME.fullmatch(name) for name in weights)


def from_kcam_weights(weights: WeightsByLayer, source: str) -> WeightsByLayer:
    """Renames kcam GhostNet (v1) layers to this package's; refuses layers of other architectures."""
    unknown = sorted(name for name in weights if keras_name(name) is None)
    if unknown:
        raise ValueError(
            f"{source} holds {len(unknown)} layer(s) a GhostNet (v1) does not have ({', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}): it is another kcam architecture (GhostNetV2?)."
        )
    return {keras_name(name): [np.asarray(array, np.float32) for array in arrays] for name, arrays in weights.items()}
