"""Step 4 of the paper's search: r(c), d(c) (and w(c)) fitted over the best trials of each budget ratio c, and
the curves file that carries them to `tiny_formula(..., curves=PATH)`, the builders and `--curves PATH`.

The fit is `gaussian_process.GaussianProcess` over log c, anchored at the base (c = 1: r = d = w = 1), as the package
fits the published TinyNet points. The file (JSON, versioned, written atomically) holds the points the fit
used, every trial they were chosen from, the base, the dataset, the budget kind, and for latency the machine,
runtime, threads and batch size it was measured with; loading refits from the points (deterministic), so the
points are the one source of truth. Plain numpy: no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import warnings

import numpy as np

from keras_tinynet.gaussian_process import GaussianProcess
from keras_tinynet.twist.sampling import Base

FORMAT = "keras_tinynet.twist.curves"
VERSION = 1
KINDS = ("flops", "latency_ms")
KNOBS = ("resolution", "depth", "width")
# The curves are used from a fifth of the smallest ratio a search fitted up to 1.5x the base's cost.
EXTRAPOLATION_BELOW, MAX_RATIO = 5.0, 1.5
_REQUIRED = ("format", "version", "base", "budget_kind", "base_cost", "points", "trials")


def best_points(trials: list[dict], share: float = 1 / 3) -> list[dict]:
    """The best `share` (at least one) of each budget's finished trials by validation top-1: what the paper
    fits its curves over."""
    by_budget: dict[float, list[dict]] = {}
    for trial in trials:
        if trial.get("top1") is not None:
            by_budget.setdefault(trial["ratio"], []).append(trial)
    points = []
    for ratio in sorted(by_budget):
        ranked = sorted(by_budget[ratio], key=lambda t: -t["top1"])
        points += ranked[: max(1, math.ceil(len(ranked) * share))]
    return points


@dataclasses.dataclass(frozen=True)
class Curves:
    """Fitted r(c), d(c), w(c) of a base for one budget kind (FLOPs or a latency in ms), and their origin."""

    base: Base
    budget_kind: str
    base_cost: float
    points: tuple[dict, ...]
    trials: tuple[dict, ...] = ()
    dataset: str | None = None
    measurement: dict | None = None  # latency: machine, runtime, threads, batch_size
    path: str | None = None

    @functools.cached_property
    def _fits(self) -> dict[str, GaussianProcess]:
        log_c = np.log([1.0] + [p["ratio"] for p in self.points])
        exact = np.arange(len(log_c)) == 0  # the base is (1, 1, 1) by definition
        return {knob: GaussianProcess(log_c, [1.0] + [p[knob] for p in self.points], exact) for knob in KNOBS}

    def __call__(self, ratio: float) -> dict[str, float]:
        """The fitted (r, d, w) at a cost ratio c of the base."""
        return {knob: float(fit(math.log(ratio))[0]) for knob, fit in self._fits.items()}

    def band(self, ratios) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Mean and standard deviation of each fitted knob at `ratios` (the plots' uncertainty band)."""
        log_c = np.log(np.asarray(ratios, dtype=np.float64))
        return {knob: (fit(log_c), fit.std(log_c)) for knob, fit in self._fits.items()}

    def _ratio(self, budget: float, argument: str) -> float:
        unit = "FLOPs" if self.budget_kind == "flops" else "ms"
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise ValueError(f"`{argument}` must be a positive number; received {argument}={budget!r}.")
        ratio = budget / self.base_cost
        low = min(p["ratio"] for p in self.points) / EXTRAPOLATION_BELOW
        if not low <= ratio <= MAX_RATIO:
            raise ValueError(
                f"`{argument}`={budget:g} is {ratio:.3g}x the cost of the curves' base {self.base.name} "
                f"({self.base_cost:g} {unit}); the curves cover {low * self.base_cost:.4g} to "
                f"{MAX_RATIO * self.base_cost:.4g} {unit} (curves={self.path!r})."
            )
        return ratio

    def check_family(self, family: str) -> None:
        if family != self.base.family:
            raise ValueError(
                f"`curves`={self.path!r} were fitted on the base {self.base.name} ({self.base.family} family); "
                f"this builder twists the {family} family: pass curves of a {family} base."
            )

    def flops_knobs(self, flops=None, ratio=None) -> tuple[float, float, float]:
        """(budget, resolution, depth) for the tiny formula with these curves: the FLOPs budget, and r and d from
        the fit as multipliers of the base's architecture (its width is then solved on the FLOPs counter)."""
        self._check_kind("flops", "flops")
        if (flops is None) == (ratio is None):
            raise ValueError(f"Pass exactly one of `flops` and `ratio`; received flops={flops!r}, ratio={ratio!r}.")
        ratio = self._ratio(flops, "flops") if flops is not None else self._ratio(ratio * self.base_cost, "ratio")
        knobs = self(ratio)
        resolution = self.base.size_at(knobs["resolution"]) / self.base.architecture.default_size
        return ratio * self.base_cost, resolution, self.base.depth * knobs["depth"]

    def latency_spec(self, latency_ms: float, family: str | None = None, name: str | None = None):
        """The network these latency curves give for `latency_ms`: r, d and w all from the fit (measuring
        candidates needs the runtime and seconds each). Warns where this machine is not the one measured."""
        self._check_kind("latency_ms", "latency_ms")
        if family is not None:
            self.check_family(family)
        knobs = self(self._ratio(latency_ms, "latency_ms"))
        recorded = (self.measurement or {}).get("machine", {})
        here = _machine()
        if {k: recorded.get(k) for k in ("cpu", "cores")} != {k: here.get(k) for k in ("cpu", "cores")}:
            warnings.warn(
                f"curves={self.path!r} were measured on {recorded.get('cpu')!r} ({recorded.get('cores')} cores); "
                f"this machine is {here.get('cpu')!r} ({here.get('cores')} cores): the latency will differ.",
                stacklevel=3,
            )
        family_name = self.base.family
        return self.base.spec(*(knobs[k] for k in KNOBS), name=name or f"{family_name}_{latency_ms:g}ms")

    def _check_kind(self, kind: str, argument: str) -> None:
        if self.budget_kind != kind:
            raise ValueError(
                f"`curves`={self.path!r} were fitted for {self.budget_kind} budgets; `{argument}` needs curves of a "
                f"{kind} search (keras-tinynet twist --{kind} ...)."
            )

    def to_dict(self) -> dict:
        from keras_tinynet import __version__

        ratios = np.geomspace(min(p["ratio"] for p in self.points) / EXTRAPOLATION_BELOW, 1.0, 12)
        fitted = self.band(ratios)
        return {
            "format": FORMAT,
            "version": VERSION,
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "base": self.base.to_dict(),
            "budget_kind": self.budget_kind,
            "base_cost": self.base_cost,
            "dataset": self.dataset,
            "measurement": self.measurement,
            "points": list(self.points),
            "fitted_for_reading": {  # the fit at a few ratios; loading refits from `points`
                "ratio": [round(float(r), 4) for r in ratios],
                **{knob: [round(float(v), 4) for v in mean] for knob, (mean, _) in fitted.items()},
            },
            "trials": list(self.trials),
        }

    def write(self, path: str) -> str:
        from keras_tinynet.files import write_atomically

        write_atomically(path, json.dumps(self.to_dict(), indent=2))
        return path


def _machine() -> dict:
    from keras_tinynet.machine import machine

    return machine()


def load_curves(path) -> Curves:
    """Reads and validates a curves file; a one-line ValueError naming `curves`, the path and what is wrong."""
    if isinstance(path, Curves):
        return path
    path = os.fspath(path)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"`curves`={path!r} is not a readable twist curves file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); pass the curves.json a `keras-tinynet twist` "
            "run wrote."
        ) from None
    problem = _problem(data)
    if problem:
        raise ValueError(f"`curves`={path!r} is not a twist curves file: {problem}.")
    try:
        base = Base.from_dict(data["base"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"`curves`={path!r} names an unknown base {data['base']!r} ({error}).") from None
    return Curves(
        base,
        data["budget_kind"],
        float(data["base_cost"]),
        tuple(data["points"]),
        tuple(data["trials"]),
        data.get("dataset"),
        data.get("measurement"),
        path,
    )


def _problem(data) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        return f"missing {', '.join(missing)}"
    if data["format"] != FORMAT or data["version"] != VERSION:
        return f"format {data['format']!r} version {data['version']!r}; this package reads {FORMAT!r} version {VERSION}"
    if data["budget_kind"] not in KINDS:
        return f"budget_kind {data['budget_kind']!r} is not one of {', '.join(KINDS)}"
    if not isinstance(data["base_cost"], (int, float)) or not data["base_cost"] > 0:
        return f"base_cost {data['base_cost']!r} is not a positive number"
    if not data["points"]:
        return "no fitted points"
    for index, point in enumerate(data["points"]):
        values = [point.get(key) if isinstance(point, dict) else None for key in ("ratio", *KNOBS)]
        if not all(isinstance(v, (int, float)) and v > 0 for v in values):
            return f"points[{index}] needs positive ratio, resolution, depth and width; found {point!r}"
    return None
