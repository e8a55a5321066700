"""The search driver: plan the trials of every budget (sampled and costed before any training), run them on Ray
Tune, then write the table, the plots and the curves file.

Everything persists under `output_dir`: `plan.json` (the trials and their measured costs), `tune/` (Ray Tune's
experiment state), `trials/<key>/` (each trial's checkpoints and summary). Rerunning the same command resumes:
the plan is read instead of re-measured, Ray Tune restores its experiment and finished trials are not trained
again (`Tuner.restore`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

from keras_tinynet.machine import machine
from keras_tinynet.twist import costs
from keras_tinynet.twist.sampling import Base, Candidate, reach, resolve_base, sample
from keras_tinynet.twist.trials import TRAIN_FIELDS, run_trial

PLAN_VERSION = 1
SCHEDULERS = ("fifo", "asha")
# Settings that may differ when a search is resumed: where and how many trials run at once.
MAY_CHANGE_ON_RESUME = ("address", "concurrent", "output_dir")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search: a base, budgets of one kind, trials per budget, and how each trial trains."""

    output_dir: str
    model: str = "ghostnet_a"
    image_size: int | None = None  # the base's image size (r = 1); default: the base's own
    flops: tuple[float, ...] | None = None
    latency_ms: tuple[float, ...] | None = None
    trials: int = 4
    tolerance: float = 0.05
    seed: int = 0
    runtime: str = "tflite"
    batch_size: int = 1  # of the latency measurement
    threads: int | None = None
    train: dict = dataclasses.field(default_factory=dict)  # TrainConfig fields (TRAIN_FIELDS)
    scheduler: str = "fifo"
    address: str | None = None
    concurrent: int | None = None  # trials at once (default: one per CPU, or per GPU where there are GPUs)

    @property
    def kind(self) -> str:
        return "flops" if self.flops else "latency_ms"

    @property
    def budgets(self) -> tuple[float, ...]:
        return tuple(self.flops or self.latency_ms)


def check(config: SearchConfig) -> None:
    """Refuses a search that cannot run, before anything is measured or written."""
    if (config.flops is None) == (config.latency_ms is None):
        raise ValueError(
            f"Pass exactly one of --flops and --latency_ms; received --flops {config.flops}, "
            f"--latency_ms {config.latency_ms}."
        )
    for budget in config.budgets:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
            raise ValueError(f"--{config.kind} budgets must be positive numbers; received --{config.kind} {budget!r}.")
    if isinstance(config.trials, bool) or not isinstance(config.trials, int) or config.trials < 1:
        raise ValueError(f"--trials must be a positive integer (trials per budget); received --trials {config.trials}.")
    if not 0 < config.tolerance < 1:
        raise ValueError(f"--tolerance must be in (0, 1), e.g. 0.05 for 5%; received --tolerance {config.tolerance}.")
    if config.scheduler not in SCHEDULERS:
        raise ValueError(f"--scheduler must be one of {', '.join(SCHEDULERS)}; received {config.scheduler!r}.")
    if config.concurrent is not None and config.concurrent < 1:
        raise ValueError(f"--concurrent must be a positive integer; received --concurrent {config.concurrent}.")
    unknown = sorted(set(config.train) - set(TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"train options {unknown} are not fields a trial takes ({', '.join(TRAIN_FIELDS)}).")
    from keras_tinynet.recipe import TrainConfig
    from keras_tinynet.training import check_config

    check_config(TrainConfig(**config.train))  # every trial's training settings, checked once before any work
    dataset = config.train.get("dataset") or "digits"
    if dataset.startswith("folder:") and not os.path.isdir(dataset.removeprefix("folder:")):
        raise ValueError(f"Image folder not found: `dataset`={dataset!r} is not a directory.")


def settings(config: SearchConfig) -> dict:
    """What a resumed search must repeat (JSON types)."""
    values = dataclasses.asdict(config)
    return json.loads(json.dumps({k: v for k, v in values.items() if k not in MAY_CHANGE_ON_RESUME}))


def make_plan(config: SearchConfig, log=print) -> dict:
    """Samples and costs the trials of every budget; raises (naming the flag) where a budget is impossible."""
    base = resolve_base(config.model, config.image_size)
    latency = costs.Latency(config.runtime, config.batch_size, config.threads)
    cost = costs.flops if config.kind == "flops" else latency
    unit = "FLOPs" if config.kind == "flops" else "ms"
    started = time.perf_counter()
    base_cost = cost(base.spec())
    low, high = reach(base, cost)
    for budget in config.budgets:
        if not low * (1 - config.tolerance) <= budget <= high * (1 + config.tolerance):
            raise ValueError(
                f"--{config.kind} {budget:g} is out of reach of {base.name} at {base.image_size} px: its "
                f"configurations cost {low:.4g} to {high:.4g} {unit} (r, d, w from the smallest to the largest "
                f"sampled: {_ranges()})."
            )
    trials = []
    budgets = []
    for index, budget in enumerate(config.budgets):
        log(f"Sampling budget {_label(config.kind, budget)} ({budget / base_cost:.3f} of {base.name})...")
        found, skipped = sample(
            base, budget, cost, config.trials, config.tolerance, config.seed, exact=config.kind == "flops"
        )
        if not found:
            raise ValueError(
                f"--{config.kind} {budget:g}: none of the {skipped} sampled (r, d) of {base.name} reaches the budget "
                f"within --tolerance {config.tolerance:g}; possible: {low:.4g} to {high:.4g} {unit}."
            )
        budgets.append({"budget": budget, "ratio": budget / base_cost, "found": len(found), "skipped": skipped})
        trials += [_trial(base, candidate, index, budget, base_cost, latency) for candidate in found]
    log(f"Planned {len(trials)} trials in {time.perf_counter() - started:.0f} s.")
    return {
        "version": PLAN_VERSION,
        "settings": settings(config),
        "output_dir": os.path.abspath(config.output_dir),
        "base": base.to_dict(),
        "budget_kind": config.kind,
        "base_cost": base_cost,
        "base_measured": latency.measure(base.spec()),
        "measurement": {**latency.settings(), "machine": machine()},
        "budgets": budgets,
        "train": config.train,
        "trials": trials,
    }


def _trial(base: Base, candidate: Candidate, index: int, budget: float, base_cost: float, latency) -> dict:
    measured = latency.measure(candidate.spec)
    return {
        "key": candidate.key,
        "budget_index": index,
        "budget": budget,
        "ratio": budget / base_cost,
        **candidate.to_dict(),
        **costs.figures(candidate.spec),
        "latency_ms": measured["median_ms"],
        "latency_p10_ms": measured["p10_ms"],
        "latency_p90_ms": measured["p90_ms"],
        "activation_mb": measured["activation_mb"],
        "weight_mb": measured["weight_mb"],
    }


def _ranges() -> str:
    from keras_tinynet.twist.sampling import DEPTH_RANGE, RESOLUTION_RANGE, WIDTH_RANGE

    return f"r {RESOLUTION_RANGE}, d {DEPTH_RANGE}, w {WIDTH_RANGE}"


def _label(kind: str, budget: float) -> str:
    return f"{budget / 1e6:.4g}M FLOPs" if kind == "flops" else f"{budget:g} ms"


def label(kind: str, trial: dict) -> str:
    """How a progress line names a trial: its budget and (r, d, w)."""
    return f"{_label(kind, trial['budget'])} r={trial['resolution']:.2f} d={trial['depth']:.2f} w={trial['width']:.2f}"


def load_or_make_plan(config: SearchConfig, log=print) -> dict:
    """The plan of a search under `output_dir`: read back on a rerun (same settings required), else made and
    written (atomically, and only once every budget was planned)."""
    from keras_tinynet.files import write_atomically

    path = os.path.join(config.output_dir, "plan.json")
    if os.path.exists(path):
        with open(path) as handle:
            plan = json.load(handle)
        now = settings(config)
        recorded = plan["settings"]
        differences = [f"{k}: was {recorded.get(k)!r}, now {v!r}" for k, v in now.items() if recorded.get(k) != v]
        if differences:
            raise ValueError(
                f"--output_dir {config.output_dir!r} holds a search with other settings ({'; '.join(differences)}); "
                f"rerun it with the same flags (only {', '.join(MAY_CHANGE_ON_RESUME)} may change) or pass another "
                "--output_dir."
            )
        plan["output_dir"] = os.path.abspath(config.output_dir)
        log(f"Resuming the search in {config.output_dir} ({len(plan['trials'])} planned trials).")
        return plan
    plan = make_plan(config, log)
    os.makedirs(config.output_dir, exist_ok=True)
    write_atomically(path, json.dumps(plan, indent=2))
    return plan


def run(config: SearchConfig, log=print) -> dict:
    """Plans, trains every trial on Ray Tune (resuming a killed search), and writes the results. Returns the
    paths written and the result rows."""
    check(config)
    output_dir = os.path.abspath(config.output_dir)
    config = dataclasses.replace(config, output_dir=output_dir)
    plan = load_or_make_plan(config, log)
    plan_path = os.path.join(output_dir, "plan.json")
    results = _tune(config, plan, plan_path, log)
    from keras_tinynet.twist import report

    return report.write(plan, results, output_dir, log)


def _tune(config: SearchConfig, plan: dict, plan_path: str, log) -> dict[str, dict]:
    import ray
    from ray import tune

    from keras_tinynet.twist.progress import Progress

    started_here = not ray.is_initialized()
    if started_here:
        if config.address:
            ray.init(address=config.address, log_to_driver=False)
        else:
            # Ray runs workers at niceness 15 by default: on a shared machine every other process would take
            # the CPUs from the trials, which are the work this command was asked to do.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        concurrent = config.concurrent or gpus or cpus
        per_trial = {"cpu": max(1, cpus // concurrent), "gpu": 1 if gpus else 0}
        trainable = tune.with_resources(run_trial, per_trial)
        experiment = os.path.join(config.output_dir, "tune")
        total = len(plan["trials"])
        progress = Progress(total, {t["key"]: label(plan["budget_kind"], t) for t in plan["trials"]}, log)
        log(f"Training {total} trials, {concurrent} at a time ({per_trial['cpu']} CPU, {per_trial['gpu']} GPU each).")
        if tune.Tuner.can_restore(experiment):
            tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={
                    "trial": tune.grid_search([t["key"] for t in plan["trials"]]),
                    "plan": plan_path,
                    "cpus": per_trial["cpu"],
                },
                tune_config=tune.TuneConfig(
                    metric="top1",
                    mode="max",
                    scheduler=_scheduler(config, plan),
                    max_concurrent_trials=concurrent,
                    reuse_actors=True,  # a worker imports TensorFlow once, not once per trial
                ),
                run_config=tune.RunConfig(storage_path=config.output_dir, name="tune", verbose=0, callbacks=[progress]),
            )
        grid = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    results = {}
    for result in grid:
        key = result.config["trial"]
        metrics = result.metrics or {}
        results[key] = {
            "top1": metrics.get("top1"),
            "epochs": metrics.get("epoch"),
            "stopped_early": not metrics.get("final", False),
            "error": str(result.error).strip().splitlines()[-1] if result.error else None,
        }
    return results


def _scheduler(config: SearchConfig, plan: dict):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if config.scheduler == "asha":
        epochs = plan["train"].get("epochs") or 1
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1, grace_period=1, reduction_factor=2)
    return FIFOScheduler()
