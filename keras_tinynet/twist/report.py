"""What a user looks at after a search: the results table (printed, Markdown and JSON), the plots (top-1 against
budget coloured by how each trial spent it; the fitted r(c), d(c), w(c) with their uncertainty band, like the
paper's figures) and the curves file.
"""

from __future__ import annotations

import json
import math
import os

from keras_tinynet.files import write_atomically
from keras_tinynet.twist.curves import KNOBS, Curves, best_points
from keras_tinynet.twist.sampling import Base

COLUMNS = (
    ("budget", "budget"),
    ("r", "resolution"),
    ("d", "depth"),
    ("w", "width"),
    ("px", "image_size"),
    ("MFLOPs", "flops"),
    ("M params", "params"),
    ("latency ms", "latency_ms"),
    ("act. MB", "activation_mb"),
    ("weight MB", "weight_mb"),
    ("top-1", "top1"),
)


def rows(plan: dict, results: dict[str, dict]) -> list[dict]:
    """One row per planned trial: its configuration, its costs and its result, best first within a budget."""
    table = [{**trial, **results.get(trial["key"], {"top1": None, "error": "not run"})} for trial in plan["trials"]]
    for row in table:
        row.pop("spec", None)
        row["shares"] = spend_shares(row)
    return sorted(table, key=lambda r: (r["budget_index"], -(r["top1"] if r["top1"] is not None else -1)))


def spend_shares(row: dict) -> dict[str, float]:
    """How a configuration spent its budget: the shares of log(r^2), log(d), log(w^2) in the cost's log change
    (FLOPs scale about as r^2 d w^2), signed so that a knob cut more gets a larger share."""
    logs = {
        "resolution": 2 * math.log(row["resolution"]),
        "depth": math.log(row["depth"]),
        "width": 2 * math.log(row["width"]),
    }
    total = sum(abs(v) for v in logs.values()) or 1.0
    return {knob: round(abs(value) / total, 3) for knob, value in logs.items()}


def _cell(row: dict, field: str, kind: str) -> str:
    value = row.get(field)
    if value is None:
        return row.get("error") or "-" if field == "top1" else "-"
    if field == "budget":
        return f"{value / 1e6:.4g}M" if kind == "flops" else f"{value:g} ms"
    if field in ("flops", "params"):
        return f"{value / 1e6:.2f}"
    if field == "top1":
        return f"{value:.4f}" + (" (stopped)" if row.get("stopped_early") else "")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(plan: dict, table: list[dict]) -> str:
    kind = plan["budget_kind"]
    lines = [
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(row, field, kind) for _, field in COLUMNS) + " |" for row in table]
    measurement = plan["measurement"]
    lines += [
        "",
        f"Base {plan['base']['name']} at {plan['base']['image_size']} px; latency: {measurement['runtime']}, batch "
        f"{measurement['batch_size']}, threads {measurement['threads'] or 'default'}, on "
        f"{measurement['machine'].get('cpu')} ({measurement['machine'].get('cores')} cores). Skipped samples per "
        "budget: " + ", ".join(f"{b['skipped']}" for b in plan["budgets"]) + ".",
    ]
    return "\n".join(lines)


def write(plan: dict, results: dict[str, dict], output_dir: str, log=print) -> dict:
    """Writes results.md, results.json, the two plots and curves.json; prints the table and where they are."""
    table = rows(plan, results)
    text = markdown(plan, table)
    paths = {
        "table": os.path.join(output_dir, "results.md"),
        "results": os.path.join(output_dir, "results.json"),
        "curves": os.path.join(output_dir, "curves.json"),
        "trials_plot": os.path.join(output_dir, "top1_vs_budget.png"),
        "curves_plot": os.path.join(output_dir, "curves.png"),
    }
    write_atomically(paths["table"], text + "\n")
    summary = {"budget_kind": plan["budget_kind"], "base": plan["base"], "budgets": plan["budgets"], "trials": table}
    write_atomically(paths["results"], json.dumps(summary, indent=2))
    finished = [row for row in table if row["top1"] is not None]
    if not finished:
        raise RuntimeError(f"No trial finished; see the trial logs under {os.path.join(output_dir, 'tune')}.")
    curves = Curves(
        Base.from_dict(plan["base"]),
        plan["budget_kind"],
        plan["base_cost"],
        tuple(_point(row) for row in best_points(finished)),
        tuple(table),
        plan["train"].get("dataset", "digits"),
        plan["measurement"],
    )
    curves.write(paths["curves"])
    plot_trials(plan, table, paths["trials_plot"])
    plot_curves(curves, finished, paths["curves_plot"])
    log(text)
    log("\nWrote:\n" + "\n".join(f"  {kind:>11}: {path}" for kind, path in paths.items()))
    return {"paths": paths, "rows": table}


def _point(row: dict) -> dict:
    return {"ratio": row["ratio"], **{knob: row[knob] for knob in KNOBS}, "top1": row["top1"], "trial": row["key"]}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str) -> None:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomically(path, buffer.getvalue())


def plot_trials(plan: dict, table: list[dict], path: str) -> None:
    """Top-1 against the trial's cost, each point coloured by its (r, d, w) shares as RGB."""
    plt = _figure()
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    kind = plan["budget_kind"]
    cost_field, unit = ("flops", "MFLOPs") if kind == "flops" else ("latency_ms", "ms")
    scale = 1e6 if kind == "flops" else 1.0
    for row in table:
        if row["top1"] is None:
            continue
        shares = row["shares"]
        color = (shares["resolution"], shares["depth"], shares["width"])
        marker = "s" if abs(row["resolution"] - 1) < 1e-9 and abs(row["depth"] - 1) < 1e-9 else "o"
        axis.scatter(row[cost_field] / scale, row["top1"], color=color, marker=marker, s=60, edgecolors="black")
    axis.set_xlabel(f"cost ({unit}, {plan['measurement']['runtime'] if kind != 'flops' else 'counted'})")
    axis.set_ylabel("validation top-1")
    axis.set_title(
        f"Twisting {plan['base']['name']}: colour = share of the cut spent on resolution (red), depth (green), "
        "width (blue); squares: width only",
        fontsize=8,
    )
    axis.grid(alpha=0.3)
    _save(figure, path)
    plt.close(figure)


def plot_curves(curves: Curves, finished: list[dict], path: str) -> None:
    """The fitted r(c), d(c), w(c) with a one-standard-deviation band, over every trial (small dots) and the
    best ones the fit used (large dots)."""
    import numpy as np

    plt = _figure()
    ratios = [row["ratio"] for row in finished]
    grid = np.geomspace(min(ratios + [1.0]) * 0.8, 1.0, 60)
    band = curves.band(grid)
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharex=True)
    best = {point["trial"] for point in curves.points}
    for axis, knob in zip(axes, KNOBS):
        mean, std = band[knob]
        axis.plot(grid, mean, color="C0")
        axis.fill_between(grid, mean - std, mean + std, color="C0", alpha=0.2)
        axis.scatter(ratios, [row[knob] for row in finished], s=12, color="gray")
        chosen = [row for row in finished if row["key"] in best]
        axis.scatter([r["ratio"] for r in chosen], [r[knob] for r in chosen], s=50, color="C3")
        axis.set_xscale("log")
        axis.set_xlabel(f"c ({curves.budget_kind} / base)")
        axis.set_title(f"{knob} {knob[0]}(c)")
        axis.grid(alpha=0.3)
    _save(figure, path)
    plt.close(figure)
