"""keras_cv_attention_models (kcam) GhostNet and TinyNet layer names to this package's, in plain numpy.

kcam publishes its weights as Keras 2 `.h5` files; the arrays are Keras' already, only the names change.
Both families start with `stem_conv`/`stem_bn` and name their blocks `stack<n>_...` (1-based):

- GhostNet (converted from PaddleClas), `keras_cv_attention_models/ghostnet/ghostnet_v2.py`: one
  bottleneck per stack, `stack<n>_`, with `ghost_1_`/`ghost_2_` modules (`prim_conv`, `prim_bn`,
  `cheap_dw_conv`, `cheap_bn`), `down_` (the strided depthwise), `se_1_`/`se_2_`, `short_1_`/`short_2_`;
  then `pre_` (the final 1x1 conv), `features_conv` (the conv head after pooling) and the `head` Dense.
- TinyNet, `keras_cv_attention_models/mobilenetv3_family/mobilenetv3.py` (kcam's MobileNetV3 with
  TinyNet's arguments): inverted residual blocks `stack<s>_block<b>_` with `sortcut_` (sic: the 1x1
  expansion), `MB_dw_` (the depthwise), `se_1_`/`se_2_` and `MB_pw_` (the 1x1 projection); then
  `features_` (the final 1x1 conv, before pooling) and the `predictions` Dense.

Blocks are numbered in the file's own (stack, block) order, which is this package's block0, block1, ...
`loading.assign_by_name` then checks every shape against the model.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

WeightsByLayer = dict[str, list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class _Family:
    """How one kcam architecture names its layers."""

    name: str
    block_name: re.Pattern  # the block's numbers, then the layer's name inside the block
    block_layers: dict[str, str]  # kcam name inside a block -> this package's
    outer_layers: dict[str, str]  # kcam name outside the blocks -> this package's

    def keras_names(self, kcam_names) -> dict[str, str | None]:
        """This package's name for each kcam name; None for a layer this family does not have."""
        matches = {name: self.block_name.fullmatch(name) for name in kcam_names}
        order = sorted({tuple(map(int, match.groups()[:-1])) for match in matches.values() if match})
        block_index = {numbers: index for index, numbers in enumerate(order)}
        names = {}
        for name, match in matches.items():
            if match is None:
                names[name] = self.outer_layers.get(name)
                continue
            *numbers, inner = match.groups()
            known = inner in self.block_layers
            names[name] = f"block{block_index[tuple(map(int, numbers))]}_{self.block_layers[inner]}" if known else None
        return names


_STEM = {"stem_conv": "stem_conv", "stem_bn": "stem_bn"}
_SQUEEZE_EXCITE = {"se_1_conv": "se_reduce", "se_2_conv": "se_expand"}

GHOSTNET = _Family(
    "GhostNet (v1)",
    re.compile(r"stack(\d+)_(.+)"),
    {
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
        **_SQUEEZE_EXCITE,
        "short_1_dw_conv": "shortcut_dw_conv",
        "short_1_bn": "shortcut_dw_bn",
        "short_2_conv": "shortcut_conv",
        "short_2_bn": "shortcut_bn",
    },
    {**_STEM, "pre_conv": "final_conv", "pre_bn": "final_bn", "features_conv": "conv_head", "head": "predictions"},
)
TINYNET = _Family(
    "TinyNet",
    re.compile(r"stack(\d+)_block(\d+)_(.+)"),
    {
        "sortcut_conv": "expand_conv",
        "sortcut_bn": "expand_bn",
        "MB_dw_": "dw_conv",
        "MB_dw_bn": "dw_bn",
        **_SQUEEZE_EXCITE,
        "MB_pw_conv": "project_conv",
        "MB_pw_bn": "project_bn",
    },
    {**_STEM, "features_conv": "final_conv", "features_bn": "final_bn", "predictions": "predictions"},
)
# TinyNet first: GhostNet's `stack<n>_` pattern also matches TinyNet's `stack<s>_block<b>_` names.
FAMILIES = (TINYNET, GHOSTNET)


def family_of(weights: WeightsByLayer) -> _Family | None:
    """The kcam family whose layer names a Keras 2 `.h5` file uses, None for any other file."""
    if "stem_conv" not in weights:
        return None
    return next((family for family in FAMILIES if any(family.block_name.fullmatch(name) for name in weights)), None)


def is_kcam(weights: WeightsByLayer) -> bool:
    """Whether layer names read from a Keras 2 `.h5` file are those of a kcam GhostNet or TinyNet."""
    return family_of(weights) is not None


def from_kcam_weights(weights: WeightsByLayer, source: str) -> WeightsByLayer:
    """Renames kcam GhostNet (v1) or TinyNet layers to this package's; refuses layers of other architectures."""
    family = family_of(weights)
    if family is None:
        raise ValueError(
            f"{source} is not a keras_cv_attention_models GhostNet or TinyNet file: it has no 'stem_conv' and "
            "'stack<n>_' layers."
        )
    names = family.keras_names(weights)
    unknown = sorted(name for name, keras_name in names.items() if keras_name is None)
    if unknown:
        raise ValueError(
            f"{source} holds {len(unknown)} layer(s) a kcam {family.name} does not have ({', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}): it is another kcam architecture (GhostNetV2? MobileNetV3?)."
        )
    return {names[name]: [np.asarray(array, np.float32) for array in arrays] for name, arrays in weights.items()}
