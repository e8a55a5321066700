"""The architecture tables (TinyNet's GhostNet-A, the original GhostNet, EfficientNet-B0) and the named
presets twisted from them: a variant is declared once here, and the builders, the model table, the
command line and the converters are derived from `PRESETS`. Tables only: which spec a preset name, a FLOPs
budget or a file means is `spec_resolver`'s. Plain Python (no TensorFlow).
"""

from __future__ import annotations

import dataclasses

from keras_tinynet.spec import Architecture, NetworkSpec, Row, scale


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


# Architectures whose presets timm builds under the preset's own name (ghostnet_150: by timm's GhostNet code,
# not registered), so that weights/conversion.py converts their checkpoints. GhostNet-A..D have none.
TIMM_ARCHITECTURES = (ORIGINAL_GHOSTNET.name, EFFICIENTNET_B0.name)
_TITLES = {"ghostnet": "GhostNet", "tinynet": "TinyNet"}
_BASE_TITLES = {TINYNET_GHOSTNET.name: "GhostNet-A", EFFICIENTNET_B0.name: "EfficientNet-B0"}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named variant: an architecture twisted to an image size, a depth and a width.

    `resolution` is the published r where the image size was derived from it (int(default size * r), as
    timm's TinyNets); else the image size over the architecture's default size.
    """

    name: str
    architecture: Architecture
    image_size: int
    depth: float
    width: float
    resolution: float | None = None

    @property
    def title(self) -> str:
        """GhostNet-A, TinyNet-E (a letter variant) or GhostNet 1.3x (a width of the original GhostNet)."""
        family, _, variant = self.name.rpartition("_")
        if variant.isdigit():
            return f"{_TITLES[family]} {self.width:.1f}x"
        return f"{_TITLES[family]}-{variant.upper()}"

    @property
    def description(self) -> str:
        if self.architecture is ORIGINAL_GHOSTNET:
            return f"original {self.title} (CVPR 2020)"
        resolution = self.resolution or self.image_size / self.architecture.default_size
        if (resolution, self.depth, self.width) == (1, 1, 1):
            return f"TinyNet {self.title} (the table)"
        twist = ", ".join(f"{value:.3g}" for value in (resolution, self.depth, self.width))
        return f"{_BASE_TITLES[self.architecture.name]} twisted by ({twist})"

    @property
    def timm_model(self) -> str | None:
        """timm's model of the same network, whose checkpoints weights/conversion.py converts; None: none."""
        return self.name if self.architecture.name in TIMM_ARCHITECTURES else None

    def spec(self, name: str | None = None) -> NetworkSpec:
        resolution = self.image_size / self.architecture.default_size
        return scale(self.architecture, resolution, self.depth, self.width, name=name or self.name)


def _timm_twist(name: str, resolution: float, depth: float, width: float) -> Preset:
    """A paper TinyNet: EfficientNet-B0 twisted by (r, d, w), its image size int(224 r) as timm's."""
    return Preset(name, EFFICIENTNET_B0, int(EFFICIENTNET_B0.default_size * resolution), depth, width, resolution)


# B, C and D are a reconstruction: the paper never published their (r, d, w). These values reproduce
# Table 1's parameters and FLOPs within 1% and follow the TinyNet trend (resolution and depth shrink
# before width). See README "How GhostNet-B/C/D were reconstructed".
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("ghostnet_a", TINYNET_GHOSTNET, 240, 1.00, 1.000),
        Preset("ghostnet_b", TINYNET_GHOSTNET, 205, 1.08, 0.805),
        Preset("ghostnet_c", TINYNET_GHOSTNET, 187, 0.76, 0.675),
        Preset("ghostnet_d", TINYNET_GHOSTNET, 145, 0.50, 0.520),
        Preset("ghostnet_050", ORIGINAL_GHOSTNET, 224, 1.0, 0.5),
        Preset("ghostnet_100", ORIGINAL_GHOSTNET, 224, 1.0, 1.0),
        Preset("ghostnet_130", ORIGINAL_GHOSTNET, 224, 1.0, 1.3),
        Preset("ghostnet_150", ORIGINAL_GHOSTNET, 224, 1.0, 1.5),
        _timm_twist("tinynet_a", 0.86, 1.2, 1.0),
        _timm_twist("tinynet_b", 0.84, 1.1, 0.75),
        _timm_twist("tinynet_c", 0.825, 0.85, 0.54),
        _timm_twist("tinynet_d", 0.68, 0.695, 0.54),
        _timm_twist("tinynet_e", 0.475, 0.6, 0.51),
    )
}


def get_spec(name: str) -> NetworkSpec:
    """The NetworkSpec of a named preset, e.g. `get_spec("ghostnet_b")`."""
    if name not in PRESETS:
        raise ValueError(f"Unknown variant `name`={name!r}; available: {', '.join(PRESETS)}.")
    return PRESETS[name].spec()


def builder_name(preset: str) -> str:
    """The Keras builder of a preset: ghostnet_b -> GhostNetB, ghostnet_100 -> GhostNet100."""
    family, _, variant = preset.rpartition("_")
    return "".join(part.capitalize() for part in family.split("_")).replace("net", "Net") + variant.upper()
