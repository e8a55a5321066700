"""Step 2 of the paper's search: (r, d, w) configurations of a base network that meet a cost budget.

Resolution r and depth d are sampled (log-uniform within `RESOLUTION_RANGE` and `DEPTH_RANGE`); the width w is
solved by bisection against the real cost, because stems, heads and depthwise convolutions do not scale as
r^2 d w^2. The cost is the package's FLOPs counter or a measured latency (any callable spec -> cost). A sampled
(r, d) whose cost cannot reach the budget within the tolerance at any width is skipped and counted.
Plain Python and numpy: no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable

import numpy as np

from keras_tinynet.presets import ARCHITECTURES, PRESETS
from keras_tinynet.spec import MIN_SIZE, Architecture, NetworkSpec, scale

RESOLUTION_RANGE = (0.5, 1.25)
DEPTH_RANGE = (0.5, 1.5)
WIDTH_RANGE = (0.2, 2.0)
_WIDTH_STEP = 1e-3  # bisection stops when the width bracket is this narrow
_ATTEMPTS_PER_TRIAL = 10  # samples drawn per wanted trial before a budget gives up


@dataclasses.dataclass(frozen=True)
class Base:
    """The network at (r, d, w) = (1, 1, 1): an architecture table at its own image size, depth and width.

    A formula base (`ghostnet_a`, `efficientnet_b0`) is its table at (1, 1, 1); a preset (`ghostnet_100`,
    `tinynet_c`) is its own spec, so twisting it multiplies its own depth and width.
    """

    name: str
    architecture: Architecture
    image_size: int
    depth: float = 1.0
    width: float = 1.0

    def spec(self, resolution: float = 1.0, depth: float = 1.0, width: float = 1.0, name: str | None = None):
        """The base twisted by (r, d, w); the image size is round(image_size * r)."""
        size = self.size_at(resolution)
        return scale(
            self.architecture, size / self.architecture.default_size, self.depth * depth, self.width * width, name
        )

    def size_at(self, resolution: float) -> int:
        return max(MIN_SIZE, round(self.image_size * resolution))

    @property
    def family(self) -> str:
        return self.architecture.family

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture.name,
            "family": self.family,
            "image_size": self.image_size,
            "depth": self.depth,
            "width": self.width,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Base:
        architecture = _architectures()[data["architecture"]]
        return cls(data["name"], architecture, int(data["image_size"]), float(data["depth"]), float(data["width"]))


def _architectures() -> dict[str, Architecture]:
    return {**ARCHITECTURES, **{preset.architecture.name: preset.architecture for preset in PRESETS.values()}}


BASES = tuple(dict.fromkeys([*ARCHITECTURES, *PRESETS]))


def resolve_base(model: str, image_size: int | None = None) -> Base:
    """The base named `model` (a formula base or any preset), at `image_size` (default: its own)."""
    if model in ARCHITECTURES:
        architecture, depth, width, size = ARCHITECTURES[model], 1.0, 1.0, ARCHITECTURES[model].default_size
    elif model in PRESETS:
        preset = PRESETS[model]
        architecture, depth, width, size = preset.architecture, preset.depth, preset.width, preset.image_size
    else:
        raise ValueError(f"--model must be one of {', '.join(BASES)}; received --model {model!r}.")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)):
        raise ValueError(f"--image_size must be an integer >= {MIN_SIZE}; received --image_size {image_size!r}.")
    if image_size is not None and image_size < MIN_SIZE:
        raise ValueError(f"--image_size must be an integer >= {MIN_SIZE}; received --image_size {image_size}.")
    return Base(model, architecture, image_size or size, depth, width)


def spec_key(spec: NetworkSpec) -> str:
    """A short digest of what a spec computes (its name aside): the cache key of its measured cost."""
    config = {**spec.to_dict(), "name": ""}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One (r, d, w) configuration that meets a budget: its spec and its cost."""

    resolution: float
    depth: float
    width: float
    spec: NetworkSpec
    cost: float

    @property
    def key(self) -> str:
        return spec_key(self.spec)

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "depth": self.depth,
            "width": self.width,
            "image_size": self.spec.default_size,
            "cost": self.cost,
            "spec": self.spec.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        spec = NetworkSpec.from_dict(data["spec"])
        return cls(data["resolution"], data["depth"], data["width"], spec, data["cost"])


Cost = Callable[[NetworkSpec], float]


def within(cost: float, budget: float, tolerance: float) -> bool:
    return abs(cost / budget - 1.0) <= tolerance


def reach(base: Base, cost: Cost) -> tuple[float, float]:
    """The smallest and largest cost the sampled ranges can give: (r, d, w) all at their low or high ends."""
    low = cost(base.spec(RESOLUTION_RANGE[0], DEPTH_RANGE[0], WIDTH_RANGE[0]))
    high = cost(base.spec(RESOLUTION_RANGE[1], DEPTH_RANGE[1], WIDTH_RANGE[1]))
    return low, high


def solve_width(
    base: Base, resolution: float, depth: float, budget: float, cost: Cost, tolerance: float, exact: bool
) -> Candidate | None:
    """The width whose cost at (r, d) meets the budget, or None where no width in WIDTH_RANGE does.

    Bisection on the cost, which grows with width. `exact` (a cheap cost such as FLOPs) bisects down to the
    channel-rounding step and keeps the closest; otherwise (a measured latency, seconds per call) it stops at
    the first width within the tolerance.
    """

    def candidate(width: float) -> Candidate:
        spec = base.spec(resolution, depth, width)
        return Candidate(resolution, depth, width, spec, cost(spec))

    low, high = candidate(WIDTH_RANGE[0]), candidate(WIDTH_RANGE[1])
    if low.cost > budget * (1 + tolerance) or high.cost < budget * (1 - tolerance):
        return None
    best = min((low, high), key=lambda c: abs(c.cost / budget - 1))
    while high.width - low.width > _WIDTH_STEP and low.spec != high.spec:
        if not exact and within(best.cost, budget, tolerance):
            break
        middle = candidate((low.width + high.width) / 2)
        best = min((best, middle), key=lambda c: abs(c.cost / budget - 1))
        if middle.cost < budget:
            low = middle
        else:
            high = middle
    return best if within(best.cost, budget, tolerance) else None


def sample(
    base: Base, budget: float, cost: Cost, trials: int, tolerance: float, seed: int, exact: bool = True
) -> tuple[list[Candidate], int]:
    """`trials` distinct configurations within `tolerance` of `budget`, and how many samples were skipped.

    The first is width-only scaling (r = d = 1, the reference the paper compares against) where it meets the
    budget; the others have log-uniform random r and d (deterministic for a `seed` and budget). The image size
    is rounded to a whole pixel, so r is size / base size.
    """
    rng = np.random.default_rng([seed, int(budget * 1e6) % 2**32])
    found: dict[str, Candidate] = {}
    skipped = 0
    for attempt in range(_ATTEMPTS_PER_TRIAL * trials + 1):
        if len(found) == trials:
            break
        if attempt == 0:
            resolution, depth = 1.0, 1.0
        else:
            resolution = math.exp(rng.uniform(*np.log(RESOLUTION_RANGE)))
            depth = float(math.exp(rng.uniform(*np.log(DEPTH_RANGE))))
            resolution = base.size_at(resolution) / base.image_size
        candidate = solve_width(base, resolution, round(depth, 3), budget, cost, tolerance, exact)
        if candidate is None:
            skipped += 1
        elif candidate.key not in found:
            found[candidate.key] = candidate
    return list(found.values()), skipped
