"""The architecture tables (TinyNet's GhostNet-A, the original GhostNet, EfficientNet-B0) and the named
presets twisted from them: a variant is declared once here, and the builders, the model table, the
command line and the converters are derived from `PRESETS`. Plain Python (no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_tinynet.spec import (
    ACTIVATION_SUFFIXES,
    Architecture,
    NetworkSpec,
    Row,
    scale,
)


def _tinynet_rows() -> tuple[Row, ...]:
    # (expand ratio, out, stride, repeats, kernel of the first block); the rest use 3x3; all have SE.
    table = [
        (1, 28, 1, 1, 3),
        (3, 44, 2, 1, 3),
        (3, 44, 1, 1, 3),
        (3, 72, 2, 1, 5),
        (3, 72, 1, 2, 3),
        (6, 140, 2, 1, 3),
        (2.5, 140, 1, 3, 3),
        (6, 196, 1, 3, 3),
        (6, 280, 2, 1, 5),
        (6, 280, 1, 5, 3),
    ]
    return tuple(
        Row(out, repeats=n, stride=s, kernel_size=k, rest_kernel_size=3, expand_ratio=ratio, se_reduction=10)
        for ratio, out, s, n, k in table
    )


def _original_rows() -> tuple[Row, ...]:
    # (kernel, expansion channels, out, squeeze-excite, stride), one block per row.
    table = [
        (3, 16, 16, 0, 1),
        (3, 48, 24, 0, 2),
        (3, 72, 24, 0, 1),
        (5, 72, 40, 1, 2),
        (5, 120, 40, 1, 1),
        (3, 240, 80, 0, 2),
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 1, 1),
        (3, 672, 112, 1, 1),
        (5, 672, 160, 1, 2),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 1, 1),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 1, 1),
    ]
    return tuple(
        Row(out, stride=s, kernel_size=k, rest_kernel_size=k, mid_channels=mid, se_reduction=4 if se else 0)
        for k, mid, out, se, s in table
    )


def _efficientnet_b0_rows() -> tuple[Row, ...]:
    # (kind, expand ratio, out, stride, repeats, kernel), as timm's `_gen_tinynet`; SE a quarter of the input width.
    table = [
        ("ds", 1, 16, 1, 1, 3),
        ("mbconv", 6, 24, 2, 2, 3),
        ("mbconv", 6, 40, 2, 2, 5),
        ("mbconv", 6, 80, 2, 3, 3),
        ("mbconv", 6, 112, 1, 3, 5),
        ("mbconv", 6, 192, 2, 4, 5),
        ("mbconv", 6, 320, 1, 1, 3),
    ]
    return tuple(
        Row(out, repeats=n, stride=s, kernel_size=k, rest_kernel_size=k, expand_ratio=ratio, se_ratio=0.25, kind=kind)
        for kind, ratio, out, s, n, k in table
    )


TINYNET_GHOSTNET = Architecture(
    name="ghostnet_a",
    rows=_tinynet_rows(),
    default_size=240,
    stem_channels=28,
    final_channels=1680,
    head_channels=1400,
    mid_divisor=8,
    se_divisor=8,
    head_divisor=8,
    scale_head=True,
)

ORIGINAL_GHOSTNET = Architecture(
    name="ghostnet_100",
    rows=_original_rows(),
    default_size=224,
    stem_channels=16,
    final_channels=960,
    head_channels=1280,
    mid_divisor=4,
    se_divisor=4,
    head_divisor=4,
    scale_head=False,
)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named variant: an architecture twisted to an image size, a depth and a width."""

    architecture: Architecture
    image_size: int
    depth: float
    width: float
    title: str
    description: str
    # timm's model of the same network (ghostnet_150: built by timm's GhostNet code, not registered),
    # whose checkpoints weights/conversion.py converts; None: no timm counterpart.
    timm_model: str | None = None

    def spec(self, name: str) -> NetworkSpec:
        resolution = self.image_size / self.architecture.default_size
        return scale(self.architecture, resolution, self.depth, self.width, name=name)


# B, C and D are a reconstruction: the paper never published their (r, d, w). These values reproduce
# Table 1's parameters and FLOPs within 1% and follow the TinyNet trend (resolution and depth shrink
# before width). See README "How GhostNet-B/C/D were reconstructed".
EFFICIENTNET_B0 = Architecture(
    name="efficientnet_b0",
    rows=_efficientnet_b0_rows(),
    default_size=224,
    stem_channels=32,
    final_channels=1280,
    head_channels=0,
    mid_divisor=8,
    se_divisor=1,
    head_divisor=8,
    scale_head=False,
    family="tinynet",
    channel_divisor=8,
    fix_stem=True,
    final_never_below_base=True,
    depth_per_row=True,
    activation="swish",
)

ARCHITECTURES = {architecture.name: architecture for architecture in (TINYNET_GHOSTNET, EFFICIENTNET_B0)}
"""The bases the tiny formula twists, by name."""


PRESETS: dict[str, Preset] = {
    "ghostnet_a": Preset(TINYNET_GHOSTNET, 240, 1.00, 1.000, "GhostNet-A", "TinyNet GhostNet-A (the table)"),
    "ghostnet_b": Preset(TINYNET_GHOSTNET, 205, 1.08, 0.805, "GhostNet-B", "GhostNet-A twisted to 300M FLOPs"),
    "ghostnet_c": Preset(TINYNET_GHOSTNET, 187, 0.76, 0.675, "GhostNet-C", "GhostNet-A twisted to 141M FLOPs"),
    "ghostnet_d": Preset(TINYNET_GHOSTNET, 145, 0.50, 0.520, "GhostNet-D", "GhostNet-A twisted to 52M FLOPs"),
    "ghostnet_050": Preset(
        ORIGINAL_GHOSTNET, 224, 1.0, 0.5, "GhostNet 0.5x", "original GhostNet 0.5x (CVPR 2020)", "ghostnet_050"
    ),
    "ghostnet_100": Preset(
        ORIGINAL_GHOSTNET, 224, 1.0, 1.0, "GhostNet 1.0x", "original GhostNet 1.0x (CVPR 2020)", "ghostnet_100"
    ),
    "ghostnet_130": Preset(
        ORIGINAL_GHOSTNET, 224, 1.0, 1.3, "GhostNet 1.3x", "original GhostNet 1.3x (CVPR 2020)", "ghostnet_130"
    ),
    "ghostnet_150": Preset(
        ORIGINAL_GHOSTNET, 224, 1.0, 1.5, "GhostNet 1.5x", "original GhostNet 1.5x (CVPR 2020)", "ghostnet_150"
    ),
    # The paper's own TinyNets: EfficientNet-B0 twisted by (r, d, w), image sizes int(224 r) as timm's.
    "tinynet_a": Preset(
        EFFICIENTNET_B0, 192, 1.2, 1.0, "TinyNet-A", "EfficientNet-B0 twisted by (0.86, 1.2, 1.0)", "tinynet_a"
    ),
    "tinynet_b": Preset(
        EFFICIENTNET_B0, 188, 1.1, 0.75, "TinyNet-B", "EfficientNet-B0 twisted by (0.84, 1.1, 0.75)", "tinynet_b"
    ),
    "tinynet_c": Preset(
        EFFICIENTNET_B0, 184, 0.85, 0.54, "TinyNet-C", "EfficientNet-B0 twisted by (0.825, 0.85, 0.54)", "tinynet_c"
    ),
    "tinynet_d": Preset(
        EFFICIENTNET_B0, 152, 0.695, 0.54, "TinyNet-D", "EfficientNet-B0 twisted by (0.68, 0.695, 0.54)", "tinynet_d"
    ),
    "tinynet_e": Preset(
        EFFICIENTNET_B0, 106, 0.6, 0.51, "TinyNet-E", "EfficientNet-B0 twisted by (0.475, 0.6, 0.51)", "tinynet_e"
    ),
}


def get_spec(name: str) -> NetworkSpec:
    """The NetworkSpec of a named preset, e.g. `get_spec("ghostnet_b")`."""
    if name not in PRESETS:
        raise ValueError(f"Unknown variant `name`={name!r}; available: {', '.join(PRESETS)}.")
    return PRESETS[name].spec(name)


def model_name(spec: NetworkSpec, activation: str) -> str:
    """The spec's name, suffixed with the activation where it is not the spec's own (ghostnet_a_hswish)."""
    return spec.name + ("" if activation == spec.activation else ACTIVATION_SUFFIXES[activation])


def builder_name(preset: str) -> str:
    """The Keras builder of a preset: ghostnet_b -> GhostNetB, ghostnet_100 -> GhostNet100."""
    family, _, variant = preset.rpartition("_")
    return "".join(part.capitalize() for part in family.split("_")).replace("net", "Net") + variant.upper()


def resolve_spec(
    model: str | None = None, *, flops: float | None = None, spec=None, base: str = "ghostnet_a"
) -> NetworkSpec:
    """The NetworkSpec of exactly one of: a preset name (`model`), a FLOPs budget (the tiny formula on the
    `base` architecture), or a `spec` (a NetworkSpec, its dict, a preset name, or the path of a JSON file
    of `NetworkSpec.to_dict()`)."""
    given = {k: v for k, v in (("model", model), ("flops", flops), ("spec", spec)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one of `model`, `flops` and `spec`; received "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
            + f". Models: {', '.join(PRESETS)}."
        )
    if model is not None:
        if model not in PRESETS:
            raise ValueError(f"`model` must be one of {', '.join(PRESETS)}; received model={model!r}.")
        return get_spec(model)
    if flops is not None:
        from keras_tinynet.formula import tiny_formula  # the formula reads specs: imported when used

        if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not flops > 0:
            raise ValueError(f"`flops` must be a positive number such as 200e6; received flops={flops!r}.")
        try:
            return tiny_formula(float(flops), base=base).spec
        except ValueError as error:
            raise ValueError(f"`flops`={flops:g}: {error}") from None
    if isinstance(spec, NetworkSpec):
        return spec
    if isinstance(spec, dict):
        return NetworkSpec.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return get_spec(spec)
    if isinstance(spec, (str, os.PathLike)):
        path = os.fspath(spec)
        if not os.path.isfile(path):
            raise ValueError(
                f"`spec` must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a model name "
                f"({', '.join(PRESETS)}); received spec={path!r} (no such file)."
            )
        try:
            with open(path) as handle:
                return NetworkSpec.from_dict(json.load(handle))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(f"`spec`={path!r} is not a NetworkSpec JSON file: {error}.") from None
    raise ValueError(
        f"`spec` must be a NetworkSpec, a variant name ({', '.join(PRESETS)}), a spec dict or a JSON file path; "
        f"received spec={spec!r}."
    )
