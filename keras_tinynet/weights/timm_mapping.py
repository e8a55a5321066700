"""timm GhostNet and EfficientNet/TinyNet state dicts to Keras weights by layer name, in plain numpy.

The one mapping that converted checkpoints and the parity tests share. timm groups its blocks as
`blocks.<stage>.<index>`; taken in order they are this package's `block0`, `block1`, ... In a GhostNet
the last `blocks.<n>.0` (a ConvBnAct) is the final 1x1 conv; in an EfficientNet (TinyNet) the final
1x1 conv is the top-level `conv_head` + `bn2`, and there is no conv_head after pooling.
"""

from __future__ import annotations

import re

import numpy as np

WeightsByLayer = dict[str, list[np.ndarray]]

_SQUEEZE_EXCITE = [("se_reduce", "se.conv_reduce", "conv_bias"), ("se_expand", "se.conv_expand", "conv_bias")]
# (Keras layer suffix, timm module suffix, kind) inside one ghost bottleneck.
_BLOCK_LAYERS = [
    (f"{ghost}_{part}_{layer}", f"{ghost}.{module}.{index}", kind)
    for ghost in ("ghost1", "ghost2")
    for part, module, conv_kind in (("primary", "primary_conv", "conv"), ("cheap", "cheap_operation", "depthwise"))
    for layer, index, kind in (("conv", 0, conv_kind), ("bn", 1, "bn"))
] + [
    ("dw_conv", "conv_dw", "depthwise"),
    ("dw_bn", "bn_dw", "bn"),
    *_SQUEEZE_EXCITE,
    ("shortcut_dw_conv", "shortcut.0", "depthwise"),
    ("shortcut_dw_bn", "shortcut.1", "bn"),
    ("shortcut_conv", "shortcut.2", "conv"),
    ("shortcut_bn", "shortcut.3", "bn"),
]


def _keras_arrays(state_dict: dict, prefix: str, kind: str) -> list[np.ndarray]:
    def get(name):
        return np.asarray(state_dict[f"{prefix}.{name}"], dtype=np.float32)

    if kind == "bn":
        return [get("weight"), get("bias"), get("running_mean"), get("running_var")]
    if kind == "dense":
        return [get("weight").T, get("bias")]
    kernel = get("weight").transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    if kind == "depthwise":
        kernel = kernel.transpose(0, 1, 3, 2)  # (kh, kw, 1, channels) -> (kh, kw, channels, 1)
    return [kernel, get("bias")] if kind == "conv_bias" else [kernel]


# timm's InvertedResidual ("mbconv") and DepthwiseSeparableConv ("ds"): the same Keras names, other timm ones.
_MBCONV_LAYERS = [
    ("expand_conv", "conv_pw", "conv"),
    ("expand_bn", "bn1", "bn"),
    ("dw_conv", "conv_dw", "depthwise"),
    ("dw_bn", "bn2", "bn"),
    *_SQUEEZE_EXCITE,
    ("project_conv", "conv_pwl", "conv"),
    ("project_bn", "bn3", "bn"),
]
_DS_LAYERS = [
    ("dw_conv", "conv_dw", "depthwise"),
    ("dw_bn", "bn1", "bn"),
    *_SQUEEZE_EXCITE,
    ("project_conv", "conv_pw", "conv"),
    ("project_bn", "bn2", "bn"),
]


def _block_prefixes(state_dict: dict) -> list[str]:
    indices = sorted(
        {tuple(map(int, m.groups())) for key in state_dict if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", key))}
    )
    return [f"blocks.{stage}.{index}" for stage, index in indices]


def is_timm_efficientnet(state_dict: dict) -> bool:
    """EfficientNets (TinyNets) end in a top-level conv_head + bn2; GhostNets in a ConvBnAct block."""
    return "bn2.running_mean" in state_dict


def timm_block_prefixes(state_dict: dict) -> tuple[list[str], str]:
    """The timm prefixes of the blocks, in order, and of the final 1x1 conv ("" for an EfficientNet's top level)."""
    prefixes = _block_prefixes(state_dict)
    if prefixes and is_timm_efficientnet(state_dict) and "conv_head.weight" in state_dict:
        return prefixes, ""
    if not prefixes or f"{prefixes[-1]}.conv.weight" not in state_dict:
        raise ValueError(
            "The state dict is not a timm GhostNet or EfficientNet (TinyNet): no `blocks.<n>.0.conv` final "
            "ConvBnAct and no top-level conv_head + bn2 found."
        )
    return prefixes[:-1], prefixes[-1]


def from_timm_state_dict(state_dict: dict) -> WeightsByLayer:
    """Maps a timm GhostNet or EfficientNet/TinyNet state dict (name -> array) to `{Keras layer name: [arrays]}`.

    Arrays may be numpy arrays or anything `np.asarray` takes (CPU torch tensors). Modules a block
    does not have (SE, strided depthwise, conv shortcut, expansion) are simply absent from both sides.
    """
    blocks, final = timm_block_prefixes(state_dict)
    mapping = [("stem_conv", "conv_stem", "conv"), ("stem_bn", "bn1", "bn")]
    for index, prefix in enumerate(blocks):
        if not final:
            layers = _MBCONV_LAYERS if f"{prefix}.conv_pwl.weight" in state_dict else _DS_LAYERS
        else:
            layers = _BLOCK_LAYERS
        mapping += [(f"block{index}_{keras_name}", f"{prefix}.{module}", kind) for keras_name, module, kind in layers]
    if final:
        mapping += [
            ("final_conv", f"{final}.conv", "conv"),
            ("final_bn", f"{final}.bn1", "bn"),
            ("conv_head", "conv_head", "conv_bias"),
        ]
    else:
        mapping += [("final_conv", "conv_head", "conv"), ("final_bn", "bn2", "bn")]
    mapping.append(("predictions", "classifier", "dense"))
    return {
        keras_name: _keras_arrays(state_dict, prefix, kind)
        for keras_name, prefix, kind in mapping
        if f"{prefix}.weight" in state_dict
    }
