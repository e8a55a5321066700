"""The tiny formula: a network for any FLOPs budget, by twisting resolution, depth and width of a base.

The paper fits resolution and depth as smooth functions of the FLOPs ratio c with Gaussian-process
regression over the best small models it found, then sets the width from the FLOPs constraint.
Its fitted curves were never released, so this module refits them on the published TinyNet points
(ratios of EfficientNet-B0) and applies them to a base architecture of `presets.ARCHITECTURES`:
GhostNet-A (the default) or EfficientNet-B0 itself, with c = budget / FLOPs(base).
Width is solved numerically against the real FLOPs counter, because stems, heads and depthwise
convolutions do not scale with width squared. Plain numpy, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from keras_tinynet.counting import Counts, count
from keras_tinynet.gaussian_process import GaussianProcess
from keras_tinynet.presets import ARCHITECTURES, TINYNET_GHOSTNET
from keras_tinynet.spec import Architecture, NetworkSpec, scale

# (c, resolution r, width w, depth d) of EfficientNet-B0 and TinyNet-A..E (Table 3 of the paper).
TINYNET_POINTS = (
    (1.0, 1.0, 1.0, 1.0),
    (0.869, 0.86, 1.0, 1.2),
    (0.518, 0.84, 0.75, 1.1),
    (0.256, 0.825, 0.54, 0.85),
    (0.133, 0.68, 0.54, 0.695),
    (0.062, 0.475, 0.51, 0.60),
)

MIN_RATIO, MAX_RATIO = 0.02, 1.5
_WIDTH_BOUNDS = (0.05, 4.0)
_SIZE_SEARCH = 8  # pixels either side of the fitted image size
_TOLERANCE = 0.005  # relative FLOPs error that stops the size search


@functools.cache
def _curves() -> tuple[GaussianProcess, GaussianProcess]:
    points = np.array(TINYNET_POINTS)
    log_c = np.log(points[:, 0])
    exact = points[:, 0] == 1.0  # the base model is (1, 1, 1) by definition
    return GaussianProcess(log_c, points[:, 1], exact), GaussianProcess(log_c, points[:, 3], exact)


def resolution_and_depth(ratio: float) -> tuple[float, float]:
    """The fitted resolution and depth multipliers for a FLOPs ratio c."""
    log_c = math.log(ratio)
    resolution_curve, depth_curve = _curves()
    return float(resolution_curve(log_c)[0]), float(depth_curve(log_c)[0])


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """What the tiny formula chose for a budget, and what the resulting network costs."""

    budget_flops: float
    resolution: float
    depth: float
    width: float
    spec: NetworkSpec
    counts: Counts

    @property
    def image_size(self) -> int:
        return self.spec.default_size

    @property
    def error(self) -> float:
        """Relative FLOPs error of the network against the budget."""
        return self.counts.flops / self.budget_flops - 1.0


@functools.cache
def base_flops(architecture: Architecture = TINYNET_GHOSTNET) -> int:
    return count(scale(architecture)).flops


def tiny_formula(
    flops: float | None = None,
    *,
    ratio: float | None = None,
    base: str = TINYNET_GHOSTNET.name,
    name: str | None = None,
    curves=None,
) -> TinyConfig:
    """Twists the `base` architecture to a FLOPs budget: absolute `flops`, or `ratio` of the base's FLOPs.

    Resolution and depth come from the Gaussian-process curves; the width is solved so that the
    network's FLOPs (at its own image size) land as close to the budget as the channel rounding
    allows. Example: `tiny_formula(200e6).spec` is a 200M-FLOPs GhostNet,
    `tiny_formula(200e6, base="efficientnet_b0").spec` a 200M-FLOPs TinyNet.
    `curves` (the path of a `keras-tinynet twist` curves file) replaces the published curves and their base
    by the ones a search fitted; `base` must then be of the same family.
    """
    if base not in ARCHITECTURES:
        raise ValueError(f"`base` must be one of {', '.join(ARCHITECTURES)}; received base={base!r}.")
    if curves is not None:
        from keras_tinynet.twist.curves import load_curves  # imported when used: the twist is optional

        fitted = load_curves(curves)
        fitted.check_family(ARCHITECTURES[base].family)
        budget, resolution, depth = fitted.flops_knobs(flops, ratio)
        return twist_to_budget(fitted.base.architecture, budget, resolution, depth, name)
    architecture = ARCHITECTURES[base]
    full = base_flops(architecture)
    if (flops is None) == (ratio is None):
        raise ValueError(f"Pass exactly one of `flops` and `ratio`; received flops={flops!r}, ratio={ratio!r}.")
    if flops is not None:
        _check_number("flops", flops)
        ratio = flops / full
    else:
        _check_number("ratio", ratio)
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ValueError(
            f"The tiny formula covers {MIN_RATIO * full / 1e6:.0f}M to {MAX_RATIO * full / 1e6:.0f}M FLOPs "
            f"(`ratio` {MIN_RATIO} to {MAX_RATIO} of {architecture.name}); received "
            + (f"flops={flops!r}." if flops is not None else f"ratio={ratio!r}.")
        )
    budget = ratio * full
    resolution, depth = resolution_and_depth(ratio)
    return twist_to_budget(architecture, budget, resolution, depth, name)


def twist_to_budget(
    architecture: Architecture, budget: float, resolution: float, depth: float, name: str | None = None
) -> TinyConfig:
    """The network at the fitted `resolution` and `depth` (multipliers of `architecture`) whose width makes its
    FLOPs land on `budget`."""
    name = name or f"{architecture.family}_tiny_{budget / 1e6:.0f}m"
    fitted_size = max(32, round(architecture.default_size * resolution))
    # Channel rounding makes FLOPs a step function of width; trying the image sizes next to the
    # fitted one finds a step within the tolerance, preferring the size closest to the fit.
    candidates = [
        _solve_width(architecture, size, depth, budget, name)
        for size in range(max(32, fitted_size - _SIZE_SEARCH), fitted_size + _SIZE_SEARCH + 1)
    ]
    within = [c for c in candidates if abs(c.error) <= _TOLERANCE]
    if within:
        return min(within, key=lambda c: abs(c.image_size - fitted_size))
    return min(candidates, key=lambda c: abs(c.error))


def _solve_width(architecture: Architecture, size: int, depth: float, budget: float, name: str) -> TinyConfig:
    """The width whose FLOPs at this image size are closest to the budget."""
    resolution = size / architecture.default_size

    def network(width: float) -> TinyConfig:
        spec = scale(architecture, resolution, depth, width, name=name)
        return TinyConfig(budget, resolution, depth, width, spec, count(spec))

    low, high = _WIDTH_BOUNDS
    # FLOPs grow monotonically with width: bisect to the step where they cross the budget.
    while high - low > 1e-4:
        middle = (low + high) / 2
        if network(middle).counts.flops < budget:
            low = middle
        else:
            high = middle
    return min(network(low), network(high), key=lambda c: abs(c.error))


def parse_flops(text: str | None) -> float | None:
    """'200M', '0.3G' or '2e8' -> FLOPs (None stays None)."""
    if text is None:
        return None
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    try:
        if text[-1:].upper() in units:
            return float(text[:-1]) * units[text[-1].upper()]
        return float(text)
    except ValueError:
        raise ValueError(f"`flops` must be a number such as 200M, 0.3G or 2e8; received flops={text!r}.") from None


def _check_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive finite number; received {value!r}.")
