"""The GhostNets and TinyNets as data: the spec types and their scaling (the tables and presets: `presets`).

Plain Python on purpose (no TensorFlow import): the spec is what the FLOPs counter, the tiny formula
and the Keras builders all read, so it must be cheap to import, print and serialize.

Two levels:
- an `Architecture` is an unscaled table of rows plus the rounding rules of its family
  (the TinyNet GhostNet-A table, the original CVPR 2020 GhostNet table, or EfficientNet-B0, the base
  of the paper's own TinyNet-A..E);
- a `NetworkSpec` is one concrete network: every block with its exact widths, and the image size.
  `scale(architecture, resolution, depth, width)` turns the first into the second.
"""

from __future__ import annotations

import dataclasses
import math

MIN_SIZE = 32  # smallest input height and width: five stride-2 stages leave a 1x1 map
ACTIVATIONS = ("relu", "hard_swish", "swish")  # GhostNet's base rows, its "+ HSwish" rows, and TinyNet-A..E
# Block kinds: GhostNet's ghost bottleneck, EfficientNet's inverted residual ("mbconv": 1x1 expand,
# depthwise, SE, 1x1 project) and its depthwise-separable first block ("ds": mbconv without the expansion).
BLOCK_KINDS = ("ghost", "mbconv", "ds")
ACTIVATION_SUFFIXES = {"relu": "_relu", "hard_swish": "_hswish", "swish": "_swish"}


def make_divisible(value: float, divisor: int) -> int:
    """Rounds `value` to a multiple of `divisor`, never going more than 10% below it.

    The rule of Huawei's reference code, timm and MindSpore; every width in this package uses it.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


INTERPOLATIONS = ("bicubic", "bilinear")  # how an eval transform may resize (data pipelines, registry entries)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How the images of this family are prepared (timm's per-variant data config)."""

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"


IMAGENET_PREPROCESSING = Preprocessing()


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of an architecture table: `repeats` blocks of one `kind` with the same output width.

    The expanded ("mid") width comes either from the block's input width times `expand_ratio`
    (TinyNet's GhostNet-A table, EfficientNet) or from a fixed `mid_channels` scaled by the width
    multiplier (the original GhostNet table); exactly one of the two is set. The squeeze-excite width
    is the mid width divided by `se_reduction` (GhostNet), or `se_ratio` of the block's input width
    (EfficientNet, computed from the mid width as timm does); neither: no squeeze-excite. The first
    block of a row has `stride` and `kernel_size`; repeated blocks have stride 1 and `rest_kernel_size`.
    """

    out_channels: int
    repeats: int = 1
    stride: int = 1
    kernel_size: int = 3
    rest_kernel_size: int = 3
    expand_ratio: float | None = None
    mid_channels: int | None = None
    se_reduction: int = 0
    se_ratio: float = 0.0
    kind: str = "ghost"

    def __post_init__(self):
        if (self.expand_ratio is None) == (self.mid_channels is None):
            raise ValueError(
                "Row needs exactly one of `expand_ratio` and `mid_channels`; received "
                f"expand_ratio={self.expand_ratio}, mid_channels={self.mid_channels}."
            )
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"Row `kind` must be one of {BLOCK_KINDS}; received kind={self.kind!r}.")
        if self.se_ratio and (self.se_reduction or self.expand_ratio is None):
            raise ValueError(
                "Row `se_ratio` needs `expand_ratio` and no `se_reduction`; received "
                f"se_ratio={self.se_ratio}, se_reduction={self.se_reduction}, expand_ratio={self.expand_ratio}."
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
    family: str = "ghostnet"  # the prefix of the networks the tiny formula names
    channel_divisor: int = 4  # stem and block output widths are multiples of it
    fix_stem: bool = False  # TinyNet keeps EfficientNet's 32-channel stem at every width
    final_never_below_base: bool = False  # TinyNet: final conv max(1280, 1280 * width rounded)
    depth_per_row: bool = False  # scale each row's repeats alone (timm's EfficientNet), not per stride stage
    activation: str = "relu"
    preprocessing: Preprocessing = IMAGENET_PREPROCESSING


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block of a `kind` in BLOCK_KINDS with its exact widths (`se_channels` 0: no squeeze-excite).

    `mid_channels` is the expanded width the depthwise convolution runs at (a "ds" block's input width).
    """

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    se_channels: int
    kind: str = "ghost"

    @property
    def has_identity_shortcut(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1


_BLOCK_COLUMNS = tuple(field.name for field in dataclasses.fields(BlockSpec))  # rows without `kind` are ghost


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A concrete network: stem, blocks, final 1x1 conv and conv_head, at an image size, with its activation.

    The stem halves the resolution, and every stride-2 block halves it again; the network has five
    feature stages (strides 2, 4, 8, 16, 32), so exactly four blocks have stride 2. `head_channels`
    0 means no conv_head: the classifier follows the pooled final conv (EfficientNet, TinyNet).
    """

    name: str
    default_size: int
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    final_channels: int
    head_channels: int
    activation: str = "relu"

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))
        _check_positive_int("default_size", self.default_size, minimum=MIN_SIZE)
        for field in ("stem_channels", "final_channels"):
            _check_positive_int(field, getattr(self, field))
        _check_positive_int("head_channels", self.head_channels, minimum=0)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {ACTIVATIONS}; received activation={self.activation!r}.")
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
            if block.kind not in BLOCK_KINDS:
                raise ValueError(f"{where}: kind must be one of {BLOCK_KINDS}; received {block.kind!r}.")
            if block.kind == "ds" and block.mid_channels != block.in_channels:
                raise ValueError(
                    f"{where}: a 'ds' block has no expansion, so mid_channels must equal in_channels "
                    f"{block.in_channels}; received {block.mid_channels}."
                )
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
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, config: dict) -> NetworkSpec:
        """Reads `to_dict()`, also of older versions (no `activation`: relu; block rows without `kind`: ghost)."""
        required = {"name", "default_size", "stem_channels", "blocks", "final_channels", "head_channels"}
        if not required <= set(config) <= required | {"activation"}:
            raise ValueError(
                f"A NetworkSpec dict needs the keys {sorted(required)} and optionally 'activation'; "
                f"received {sorted(config)}."
            )
        blocks = []
        for index, row in enumerate(config["blocks"]):
            if isinstance(row, dict):
                blocks.append(BlockSpec(**row))
            elif len(row) in (len(_BLOCK_COLUMNS) - 1, len(_BLOCK_COLUMNS)):
                blocks.append(BlockSpec(*row))
            else:
                raise ValueError(f"blocks[{index}] must list {', '.join(_BLOCK_COLUMNS)}; received {row!r}.")
        return cls(**{**config, "blocks": tuple(blocks)})

    def table(self) -> str:
        """The network as a readable block table (stride is the feature-map stride after the block)."""
        lines = [
            f"{self.name}: {self.default_size}x{self.default_size}, stem {self.stem_channels}, "
            f"{len(self.blocks)} blocks, final conv {self.final_channels}, conv_head {self.head_channels or 'none'}, "
            f"{self.activation}",
            f"{'block':>5} {'kind':>6} {'k':>2} {'stride':>6} {'in':>5} {'mid':>5} {'out':>5} {'se':>4} "
            f"{'shortcut':>8}",
        ]
        feature_stride = 2
        for index, block in enumerate(self.blocks):
            feature_stride *= block.stride
            shortcut = "identity" if block.has_identity_shortcut else "conv"
            se = block.se_channels or "-"
            lines.append(
                f"{index:>5} {block.kind:>6} {block.kernel_size:>2} {'/' + str(feature_stride):>6} "
                f"{block.in_channels:>5} {block.mid_channels:>5} {block.out_channels:>5} {se:>4} {shortcut:>8}"
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
    rows = architecture.rows
    depth_groups = [[index] for index in range(len(rows))] if architecture.depth_per_row else feature_stages(rows)
    repeats: list[int] = []
    for group in depth_groups:
        repeats += scale_stage_depth([rows[i].repeats for i in group], depth)

    divisor = architecture.channel_divisor
    stem = (
        architecture.stem_channels if architecture.fix_stem else make_divisible(architecture.stem_channels * width, 4)
    )
    blocks = []
    in_channels = stem
    for row, count in zip(rows, repeats):
        out_channels = make_divisible(row.out_channels * width, divisor)
        for repeat in range(count):
            if row.kind == "ds":
                mid = in_channels
            elif row.expand_ratio is not None:
                mid = make_divisible(in_channels * row.expand_ratio, architecture.mid_divisor)
            else:
                mid = make_divisible(row.mid_channels * width, architecture.mid_divisor)
            if row.se_reduction:
                se = make_divisible(mid // row.se_reduction, architecture.se_divisor)
            elif row.se_ratio:  # timm: the ratio of the input width, applied to the mid width over the expansion
                se = round(mid * row.se_ratio / row.expand_ratio)
            else:
                se = 0
            first = repeat == 0
            blocks.append(
                BlockSpec(
                    in_channels=in_channels,
                    mid_channels=mid,
                    out_channels=out_channels,
                    kernel_size=row.kernel_size if first else row.rest_kernel_size,
                    stride=row.stride if first else 1,
                    se_channels=se,
                    kind=row.kind,
                )
            )
            in_channels = out_channels

    final = make_divisible(architecture.final_channels * width, architecture.head_divisor)
    if architecture.final_never_below_base:
        final = max(architecture.final_channels, final)
    head_width = width if architecture.scale_head else 1.0
    head = make_divisible(architecture.head_channels * head_width, architecture.head_divisor)
    return NetworkSpec(
        name=name or architecture.name,
        default_size=image_size,
        stem_channels=stem,
        blocks=tuple(blocks),
        final_channels=final,
        head_channels=head if architecture.head_channels else 0,
        activation=architecture.activation,
    )


IMAGENET_CLASSES = 1000  # what the published weights classify
