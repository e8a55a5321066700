"""The GhostNet family as data: architecture tables, their scaling, and the named presets.

Plain Python on purpose (no TensorFlow import): the spec is what the FLOPs counter, the tiny formula
and the Keras builders all read, so it must be cheap to import, print and serialize.

Two levels:
- an `Architecture` is an unscaled table of rows plus the rounding rules of its family
  (the TinyNet GhostNet-A table, or the original CVPR 2020 GhostNet table);
- a `NetworkSpec` is one concrete network: every block with its exact widths, and the image size.
  `scale(architecture, resolution, depth, width)` turns the first into the second.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

MIN_SIZE = 32  # smallest input height and width: five stride-2 stages leave a 1x1 map
ACTIVATIONS = ("relu", "hard_swish")  # the paper's base rows, and its "+ HSwish" rows


def make_divisible(value: float, divisor: int) -> int:
    """Rounds `value` to a multiple of `divisor`, never going more than 10% below it.

    The rule of Huawei's reference code, timm and MindSpore; every width in this package uses it.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of an architecture table: `repeats` ghost bottlenecks with the same output width.

    The expanded ("mid") width comes either from the block's input width times `expand_ratio`
    (TinyNet's GhostNet-A table) or from a fixed `mid_channels` scaled by the width multiplier
    (the original GhostNet table); exactly one of the two is set. `se_reduction` divides the
    mid width to give the squeeze-excite width (0: no squeeze-excite). The first block of a row
    has `stride` and `kernel_size`; repeated blocks have stride 1 and `rest_kernel_size`.
    """

    out_channels: int
    repeats: int = 1
    stride: int = 1
    kernel_size: int = 3
    rest_kernel_size: int = 3
    expand_ratio: float | None = None
    mid_channels: int | None = None
    se_reduction: int = 0

    def __post_init__(self):
        if (self.expand_ratio is None) == (self.mid_channels is None):
            raise ValueError(
                "Row needs exactly one of `expand_ratio` and `mid_channels`; received "
                f"expand_ratio={self.expand_ratio}, mid_channels={self.mid_channels}."
            )


@dataclasses.dataclass(frozen=True)
class Architecture:
    """An unscaled architecture table and the rounding rules its family scales with."""

    name: str
    rows: tuple[Row, ...]
    default_size: int
    stem_channels: int
    final_channels: int
    head_channels: int
    mid_divisor: int
    se_divisor: int
    head_divisor: int
    scale_head: bool  # the original GhostNet keeps conv_head at 1280 for every width


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One ghost bottleneck with its exact widths (`se_channels` 0: no squeeze-excite)."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    se_channels: int

    @property
    def has_identity_shortcut(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1


_BLOCK_COLUMNS = ("in_channels", "mid_channels", "out_channels", "kernel_size", "stride", "se_channels")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A concrete GhostNet: stem, ghost bottlenecks, final 1x1 conv and conv_head, at an image size.

    The stem halves the resolution, and every stride-2 block halves it again; the network has five
    feature stages (strides 2, 4, 8, 16, 32), so exactly four blocks have stride 2.
    """

    name: str
    default_size: int
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    final_channels: int
    head_channels: int

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))
        _check_positive_int("default_size", self.default_size, minimum=MIN_SIZE)
        for field in ("stem_channels", "final_channels", "head_channels"):
            _check_positive_int(field, getattr(self, field))
        if not self.blocks:
            raise ValueError(f"NetworkSpec {self.name!r} needs at least one block; received none.")
        previous = self.stem_channels
        for index, block in enumerate(self.blocks):
            where = f"block {index} of {self.name!r}"
            if block.in_channels != previous:
                raise ValueError(
                    f"{where}: in_channels={block.in_channels} does not match the previous output width {previous}."
                )
            for field in ("mid_channels", "out_channels"):
                _check_positive_int(f"{where} {field}", getattr(block, field))
            if block.kernel_size < 1 or block.kernel_size % 2 == 0:
                raise ValueError(f"{where}: kernel_size must be odd and positive; received {block.kernel_size}.")
            if block.stride not in (1, 2):
                raise ValueError(f"{where}: stride must be 1 or 2; received {block.stride}.")
            if block.se_channels < 0:
                raise ValueError(f"{where}: se_channels must be >= 0; received {block.se_channels}.")
            previous = block.out_channels
        strided = sum(block.stride == 2 for block in self.blocks)
        if strided != 4:
            raise ValueError(
                f"NetworkSpec {self.name!r} must have exactly 4 stride-2 blocks (five feature stages "
                f"at strides 2..32); received {strided}."
            )

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """Index of the last block of each feature stage (strides 2, 4, 8, 16, 32)."""
        starts = [index for index, block in enumerate(self.blocks) if block.stride == 2]
        return tuple(start - 1 for start in starts) + (len(self.blocks) - 1,)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "default_size": self.default_size,
            "stem_channels": self.stem_channels,
            "blocks": [dataclasses.astuple(block) for block in self.blocks],
            "final_channels": self.final_channels,
            "head_channels": self.head_channels,
        }

    @classmethod
    def from_dict(cls, config: dict) -> NetworkSpec:
        expected = {"name", "default_size", "stem_channels", "blocks", "final_channels", "head_channels"}
        if set(config) != expected:
            raise ValueError(
                f"A NetworkSpec dict needs exactly the keys {sorted(expected)}; received {sorted(config)}."
            )
        blocks = []
        for index, row in enumerate(config["blocks"]):
            if isinstance(row, dict):
                blocks.append(BlockSpec(**row))
            elif len(row) == len(_BLOCK_COLUMNS):
                blocks.append(BlockSpec(*row))
            else:
                raise ValueError(f"blocks[{index}] must list {', '.join(_BLOCK_COLUMNS)}; received {row!r}.")
        return cls(**{**config, "blocks": tuple(blocks)})

    def table(self) -> str:
        """The network as a readable block table (stride is the feature-map stride after the block)."""
        lines = [
            f"{self.name}: {self.default_size}x{self.default_size}, stem {self.stem_channels}, "
            f"{len(self.blocks)} blocks, final conv {self.final_channels}, conv_head {self.head_channels}",
            f"{'block':>5} {'k':>2} {'stride':>6} {'in':>5} {'mid':>5} {'out':>5} {'se':>4} {'shortcut':>8}",
        ]
        feature_stride = 2
        for index, block in enumerate(self.blocks):
            feature_stride *= block.stride
            shortcut = "identity" if block.has_identity_shortcut else "conv"
            se = block.se_channels or "-"
            lines.append(
                f"{index:>5} {block.kernel_size:>2} {'/' + str(feature_stride):>6} {block.in_channels:>5} "
                f"{block.mid_channels:>5} {block.out_channels:>5} {se:>4} {shortcut:>8}"
            )
        return "\n".join(lines)

    __str__ = table


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {value!r}.")


def feature_stages(rows: tuple[Row, ...]) -> list[list[int]]:
    """Groups row indices by feature-map stage: a new stage starts at every stride-2 row."""
    stages: list[list[int]] = []
    for index, row in enumerate(rows):
        if not stages or row.stride == 2:
            stages.append([])
        stages[-1].append(index)
    return stages


def scale_stage_depth(repeats: list[int], depth: float) -> list[int]:
    """Scales the repeats of one stage together, as TinyNet/timm do (`depth_trunc='round'`).

    Rows are walked from last to first so that rounding leftovers land on the earliest rows.
    """
    total = sum(repeats)
    scaled_total = max(1, round(total * depth))
    scaled = []
    for count in reversed(repeats):
        scaled_count = max(1, round(count / total * scaled_total))
        scaled.append(scaled_count)
        total -= count
        scaled_total -= scaled_count
    return scaled[::-1]


def scale(
    architecture: Architecture,
    resolution: float = 1.0,
    depth: float = 1.0,
    width: float = 1.0,
    name: str | None = None,
) -> NetworkSpec:
    """Twists an architecture in resolution, depth and width (the three knobs of the Rubik's cube)."""
    for arg, value in (("resolution", resolution), ("depth", depth), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
            raise ValueError(f"`{arg}` must be a positive finite number; received {value!r}.")
    image_size = round(architecture.default_size * resolution)
    if image_size < MIN_SIZE:
        raise ValueError(
            f"`resolution`={resolution} gives an image size of {image_size} for {architecture.name}; "
            f"the smallest image size is {MIN_SIZE}."
        )
    repeats: list[int] = []
    for stage in feature_stages(architecture.rows):
        repeats += scale_stage_depth([architecture.rows[i].repeats for i in stage], depth)

    stem = make_divisible(architecture.stem_channels * width, 4)
    blocks = []
    in_channels = stem
    for row, count in zip(architecture.rows, repeats):
        out_channels = make_divisible(row.out_channels * width, 4)
        for repeat in range(count):
            if row.expand_ratio is not None:
                mid = make_divisible(in_channels * row.expand_ratio, architecture.mid_divisor)
            else:
                mid = make_divisible(row.mid_channels * width, architecture.mid_divisor)
            se = make_divisible(mid // row.se_reduction, architecture.se_divisor) if row.se_reduction else 0
            first = repeat == 0
            blocks.append(
                BlockSpec(
                    in_channels=in_channels,
                    mid_channels=mid,
                    out_channels=out_channels,
                    kernel_size=row.kernel_size if first else row.rest_kernel_size,
                    stride=row.stride if first else 1,
                    se_channels=se,
                )
            )
            in_channels = out_channels

    head_width = width if architecture.scale_head else 1.0
    return NetworkSpec(
        name=name or architecture.name,
        default_size=image_size,
        stem_channels=stem,
        blocks=tuple(blocks),
        final_channels=make_divisible(architecture.final_channels * width, architecture.head_divisor),
        head_channels=make_divisible(architecture.head_channels * head_width, architecture.head_divisor),
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

    def spec(self, name: str) -> NetworkSpec:
        resolution = self.image_size / self.architecture.default_size
        return scale(self.architecture, resolution, self.depth, self.width, name=name)


# B, C and D are a reconstruction: the paper never published their (r, d, w). These values reproduce
# Table 1's parameters and FLOPs within 1% and follow the TinyNet trend (resolution and depth shrink
# before width). See README "How GhostNet-B/C/D were reconstructed".
PRESETS: dict[str, Preset] = {
    "ghostnet_a": Preset(TINYNET_GHOSTNET, 240, 1.00, 1.000, "GhostNet-A", "TinyNet GhostNet-A (the table)"),
    "ghostnet_b": Preset(TINYNET_GHOSTNET, 205, 1.08, 0.805, "GhostNet-B", "GhostNet-A twisted to 300M FLOPs"),
    "ghostnet_c": Preset(TINYNET_GHOSTNET, 187, 0.76, 0.675, "GhostNet-C", "GhostNet-A twisted to 141M FLOPs"),
    "ghostnet_d": Preset(TINYNET_GHOSTNET, 145, 0.50, 0.520, "GhostNet-D", "GhostNet-A twisted to 52M FLOPs"),
    "ghostnet_050": Preset(ORIGINAL_GHOSTNET, 224, 1.0, 0.5, "GhostNet 0.5x", "original GhostNet 0.5x (CVPR 2020)"),
    "ghostnet_100": Preset(ORIGINAL_GHOSTNET, 224, 1.0, 1.0, "GhostNet 1.0x", "original GhostNet 1.0x (CVPR 2020)"),
    "ghostnet_130": Preset(ORIGINAL_GHOSTNET, 224, 1.0, 1.3, "GhostNet 1.3x", "original GhostNet 1.3x (CVPR 2020)"),
    "ghostnet_150": Preset(ORIGINAL_GHOSTNET, 224, 1.0, 1.5, "GhostNet 1.5x", "original GhostNet 1.5x (CVPR 2020)"),
}


def get_spec(name: str) -> NetworkSpec:
    """The NetworkSpec of a named preset, e.g. `get_spec("ghostnet_b")`."""
    if name not in PRESETS:
        raise ValueError(f"Unknown GhostNet variant `name`={name!r}; available: {', '.join(PRESETS)}.")
    return PRESETS[name].spec(name)


def builder_name(preset: str) -> str:
    """The Keras builder of a preset: ghostnet_b -> GhostNetB, ghostnet_100 -> GhostNet100."""
    family, _, variant = preset.rpartition("_")
    return "".join(part.capitalize() for part in family.split("_")).replace("net", "Net") + variant.upper()


def resolve_spec(model: str | None = None, *, flops: float | None = None, spec=None) -> NetworkSpec:
    """The NetworkSpec of exactly one of: a preset name (`model`), a FLOPs budget (the tiny formula), or a
    `spec` (a NetworkSpec, its dict, a preset name, or the path of a JSON file of `NetworkSpec.to_dict()`)."""
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
            return tiny_formula(float(flops)).spec
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


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How the images of this family are prepared (timm's per-variant data config)."""

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"


IMAGENET_PREPROCESSING = Preprocessing()
IMAGENET_CLASSES = 1000  # what the published weights classify
