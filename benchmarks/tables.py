"""What the inference benchmark concludes from its measurements: the fastest path of each network, each
implementation's export against ours in the same runtime, the targets, the markdown of all of it, and the
figure beside the paper's published accuracy. Plain Python over `Measurement`s, so that the tests can feed
it known numbers."""

from __future__ import annotations

import dataclasses

from keras_tinynet.files import staged_file

OURS = "keras_tinynet"
RUNTIMES_BY_ENGINE = {
    "TF": ("keras", "keras_folded", "keras_xla", "saved_model", "optimized", "tf_keras"),
    "TFLite": ("tflite", "compiled"),  # compile_for_inference runs TFLite (compiled.RUNTIME_BY_DEFAULT)
    "ONNX Runtime": ("onnxruntime",),
    "OpenVINO": ("openvino",),
    "PyTorch": ("torch", "torch_tuned", "torch_compile"),
}


@dataclasses.dataclass
class Measurement:
    model: str  # the row: keras_tinynet's preset name, or the implementation's prefix and the network
    network: str  # the architecture: every implementation of GhostNet 1.0x has network ghostnet_100
    implementation: str  # keras_tinynet, keras.applications, timm, kimm or keras_cv_attention_models
    runtime: str
    batch: int
    image_size: int
    macs: float  # multiply-adds per image
    median_ms: float
    p90_ms: float
    runs: int
    images_per_s: float
    gflop_per_s: float  # 2 * macs * images/s
    peak_share: float  # of the measured matmul peak
    bytes_per_image: float  # activations + weights / batch, float32 (roofline.Traffic)
    flop_per_byte: float
    roofline_images_per_s: float  # min(peak, intensity * bandwidth) / FLOPs per image
    bound: str  # compute or memory
    roofline_share: float
    max_abs_diff: float  # of the output, against the same implementation's first runtime at this batch
    output_range: float  # max - min of that reference output, the scale of max_abs_diff
    reference_runtime: str
    note: str = ""


def engine(runtime: str) -> str:
    return next(name for name, runtimes in RUNTIMES_BY_ENGINE.items() if runtime in runtimes)


def find(results, model, runtime, batch):
    return next((r for r in results if r.model == model and r.runtime == runtime and r.batch == batch), None)


def fastest(results, network, batch, implementation=None, engine_name=None):
    """The measurement with the most images/s among those that match, or None."""
    candidates = [
        r
        for r in results
        if r.network == network
        and r.batch == batch
        and implementation in (None, r.implementation)
        and engine_name in (None, engine(r.runtime))
    ]
    return max(candidates, key=lambda r: r.images_per_s, default=None)


def path(measurement) -> str:
    return f"{measurement.model} {measurement.runtime}"


def fastest_paths(results) -> list[dict]:
    """Per network and batch: the fastest path of all implementations, and ours (None for other networks)."""
    rows = []
    for network in dict.fromkeys(r.network for r in results):
        for batch in sorted({r.batch for r in results if r.network == network}):
            best, ours = fastest(results, network, batch), fastest(results, network, batch, OURS)
            rows.append(
                {
                    "network": network,
                    "batch": batch,
                    "fastest": path(best),
                    "fastest_images_per_s": best.images_per_s,
                    "ours": path(ours) if ours else None,
                    "ours_images_per_s": ours.images_per_s if ours else None,
                    "ours_over_fastest": ours.images_per_s / best.images_per_s if ours else None,
                }
            )
    return rows


def export_comparison(results, network: str = "ghostnet_100") -> list[dict]:
    """Per runtime engine and batch: our fastest form of `network` in that engine against each other
    implementation's fastest form in it (ratio > 1: ours is faster)."""
    rows = []
    for engine_name in RUNTIMES_BY_ENGINE:
        for batch in sorted({r.batch for r in results}):
            ours = fastest(results, network, batch, OURS, engine_name)
            others = {r.implementation for r in results if r.network == network and r.implementation != OURS}
            for implementation in sorted(others):
                other = fastest(results, network, batch, implementation, engine_name)
                if ours and other:
                    rows.append(
                        {
                            "engine": engine_name,
                            "batch": batch,
                            "ours": path(ours),
                            "ours_images_per_s": ours.images_per_s,
                            "other": path(other),
                            "other_images_per_s": other.images_per_s,
                            "ours_over_other": ours.images_per_s / other.images_per_s,
                        }
                    )
    return rows


def targets(results) -> list[dict]:
    """The issue's targets: per runtime where both sides ran in it, and with each side on its fastest path."""
    checks = []

    def check(target, goal, a, b, higher_is_better=True):
        if a and b:
            value = a.images_per_s / b.images_per_s if higher_is_better else b.median_ms / a.median_ms
            checks.append(
                {
                    "target": target,
                    "runtime": a.runtime,
                    "versus": b.runtime,
                    "value": value,
                    "goal": goal,
                    "met": value >= goal,
                }
            )

    def ratio(target, goal, model, other, batch, versus_default_torch=False):
        for a in [r for r in results if r.model == model and r.batch == batch]:
            check(target, goal, a, find(results, other, a.runtime, batch))
            if versus_default_torch:
                check(target, goal, a, find(results, other, "torch", batch))
        by_model = {r.model: r for r in results}
        if model in by_model and other in by_model:
            a = fastest(results, by_model[model].network, batch, by_model[model].implementation)
            b = fastest(results, by_model[other].network, batch, by_model[other].implementation)
            check(target + ", each on its fastest path", goal, a, b)

    for batch, goal in ((32, 2.0), (1, 1.5)):
        target = f"GhostNet100 / timm ghostnet_100 images/s, batch {batch}"
        ratio(target, goal, "ghostnet_100", "timm_ghostnet_100", batch, versus_default_torch=True)
    ratio("GhostNetB / EfficientNetB0 images/s, batch 32", 1.5, "ghostnet_b", "efficientnet_b0", 32)
    for a in [r for r in results if r.model == "ghostnet_a" and r.batch == 32]:
        checks.append(
            {
                "target": "GhostNet-A share of the matmul peak, batch 32",
                "runtime": a.runtime,
                "versus": "matmul",
                "value": a.peak_share,
                "goal": 0.40,
                "met": a.peak_share >= 0.40,
            }
        )
    check(  # a latency target: MobileNetV3Small's latency over GhostNetD's must be >= 1
        "MobileNetV3Small / GhostNetD TFLite latency, batch 1",
        1.0,
        find(results, "ghostnet_d", "tflite", 1),
        find(results, "mobilenet_v3_small", "tflite", 1),
        higher_is_better=False,
    )
    return checks


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def markdown(results, checks, context, op_counts: dict, skipped: list[dict]) -> str:
    """The report: every measurement, the roofline, the fastest paths, the export comparison, the op
    counts, what was not measured and the targets."""
    tf_threads = context["tf_threads"]
    bandwidth = context["bandwidth"]
    lines = [
        f"Measured {context['date']} on {context['machine']}, {context['threads']} threads everywhere "
        f"(TensorFlow intra-op {tf_threads['intra_op']}, inter-op {tf_threads['inter_op']}), "
        f"oneDNN {'on' if context['onednn'] else 'off'} in TensorFlow; float32 matmul peak "
        f"{context['peak']['gflop_per_s']:.0f} GFLOP/s; memory bandwidth (triad) {bandwidth['gb_per_s']:.1f} GB/s "
        f"(copy {bandwidth['copy_gb_per_s']:.1f}). Command: `{context['command']}`.",
        "",
    ]
    lines += measurements_section(results) + roofline_section(results) + fastest_section(results)
    lines += comparison_section(results) + op_counts_section(op_counts) + skipped_section(skipped)
    lines += targets_section(checks)
    return "\n".join(lines) + "\n"


def measurements_section(results) -> list[str]:
    """One row per model and runtime: images/s and latency at each batch, shares, agreement, notes."""
    batches = sorted({r.batch for r in results})
    rows = []
    for model, runtime in dict.fromkeys((r.model, r.runtime) for r in results):
        cells = [find(results, model, runtime, b) for b in batches]
        first = next(m for m in cells if m)
        last = find(results, model, runtime, batches[-1])
        agreement = f"{first.max_abs_diff:.1e} / {first.output_range:.1e} ({first.reference_runtime})"
        rows.append(
            [model, runtime, f"{first.macs / 1e6:.0f}"]
            + [f"{m.images_per_s:.1f} ({m.median_ms:.2f} / {m.p90_ms:.2f})" if m else "" for m in cells]
            + [f"{m.roofline_share:.0%}" if m else "" for m in cells]
            + [f"{last.peak_share:.1%}" if last else "", agreement]
        )
    lines = table(
        ["model", "runtime", "MFLOPs"]
        + [f"batch {b}: img/s (median / p90 ms)" for b in batches]
        + [f"batch {b}: % of roofline" for b in batches]
        + [f"batch {batches[-1]}: % of peak", f"batch {batches[0]}: max abs diff / output range (against)"],
        rows,
    )
    notes = sorted({f"{r.model} {r.runtime}: {r.note}" for r in results if r.note})
    return lines + [""] + [f"- {note}" for note in notes]


def roofline_section(results) -> list[str]:
    """Bytes, intensity and bound of each network and batch, with the fastest path's share of it."""
    rows = {}
    for r in results:
        rows[r.network, r.batch] = [
            r.network,
            r.batch,
            f"{r.bytes_per_image / 1e6:.1f}",
            f"{r.flop_per_byte:.1f}",
            f"{r.roofline_images_per_s:.0f}",
            r.bound,
            f"{max(m.roofline_share for m in results if (m.network, m.batch) == (r.network, r.batch)):.0%}",
        ]
    lines = ["", "Roofline (FLOPs = 2 x multiply-adds; bytes: float32 activations written once and read by each"]
    lines += ["consumer in the graph the exports run (optimize_for_inference, activations fused into their conv),"]
    lines += ["plus the weights once per batch; above 100%: the runtime kept activations in cache):", ""]
    header = ["network", "batch", "MB per image", "FLOP/byte", "roofline img/s", "bound", "fastest path's share"]
    return lines + table(header, list(rows.values()))


def fastest_section(results) -> list[str]:
    """The fastest path of each network and batch, and ours."""
    return ["", "Fastest path of each network, and keras_tinynet's fastest:", ""] + table(
        ["network", "batch", "fastest path", "img/s", "ours fastest", "img/s", "ours / fastest"],
        [
            [
                row["network"],
                row["batch"],
                row["fastest"],
                f"{row['fastest_images_per_s']:.1f}",
                row["ours"] or "",
                f"{row['ours_images_per_s']:.1f}" if row["ours"] else "",
                f"{row['ours_over_fastest']:.2f}x" if row["ours"] else "",
            ]
            for row in fastest_paths(results)
        ],
    )


def comparison_section(results) -> list[str]:
    """GhostNet 1.0x: our fastest form against each other implementation's, per runtime (none: no lines)."""
    comparison = export_comparison(results)
    if not comparison:
        return []
    return ["", "GhostNet 1.0x: our fastest form in each runtime against each other implementation's:", ""] + table(
        ["runtime", "batch", "ours", "img/s", "other", "img/s", "ours / other"],
        [
            [
                row["engine"],
                row["batch"],
                row["ours"],
                f"{row['ours_images_per_s']:.1f}",
                row["other"],
                f"{row['other_images_per_s']:.1f}",
                f"{row['ours_over_other']:.2f}x",
            ]
            for row in comparison
        ],
    )


def op_counts_section(op_counts: dict) -> list[str]:
    """Op counts of the exported graphs (none: no lines)."""
    if not op_counts:
        return []
    return ["", "Ops of the exported graphs (ten most frequent types):", ""] + table(
        ["graph", "ops", "by type"],
        [
            [name, sum(counts.values()), ", ".join(f"{op} {n}" for op, n in list(counts.items())[:10])]
            for name, counts in op_counts.items()
        ],
    )


def skipped_section(skipped: list[dict]) -> list[str]:
    """The paths that could not run, and why (none: no lines)."""
    if not skipped:
        return []
    return ["", "Not measured:", ""] + [f"- {s['model']} {s['runtime']}: {s['reason']}" for s in skipped]


def targets_section(checks) -> list[str]:
    """The targets, measured against their goals (none: no lines)."""
    if not checks:
        return []
    rows = []
    for c in checks:
        share = "share" in c["target"]
        rows.append(
            [
                c["target"],
                f"{c['runtime']} ({c['versus']})",
                f"{c['value']:.1%}" if share else f"{c['value']:.2f}x",
                f"{c['goal']:.0%}" if share else f"{c['goal']:.1f}x",
                "yes" if c["met"] else "**no**",
            ]
        )
    return [""] + table(["target", "runtime (against)", "measured", "goal", "met"], rows)


# Published ImageNet top-1 against FLOPs (multiply-adds), the points of the paper's Figure 1 / Table 1.
PUBLISHED_TOP1 = {
    "TinyNet (EfficientNet-B0 based)": [(24, 59.9), (52, 67.0), (100, 71.2), (202, 75.0), (339, 76.8)],
    "EfficientNet-B0": [(390, 76.7)],
    "GhostNet 0.5x / 1.0x / 1.3x": [(42, 66.2), (141, 73.9), (226, 75.7)],
    "GhostNet-A (TinyNet)": [(591, 79.4)],
}
PUBLISHED_SOURCES = (
    "TinyNet A-E and EfficientNet-B0: Han et al., NeurIPS 2020 (Table 1 / Figure 1); GhostNet 0.5x/1.0x/1.3x: "
    "Han et al., CVPR 2020; GhostNet-A: Han et al., NeurIPS 2020. GhostNet-B/C/D top-1 are not in this repository's "
    "reference and are not plotted."
)


def plot(results, path: str, context) -> None:
    """Throughput against FLOPs at the largest batch (every path; the fastest of each model labelled), and
    the paper's top-1 against FLOPs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, accuracy) = plt.subplots(1, 2, figsize=(16, 6.5))
    batch = max(r.batch for r in results)
    markers = dict(zip(dict.fromkeys(r.implementation for r in results), "o^sDvP*"))
    colors = plt.get_cmap("tab20")
    for index, runtime in enumerate(dict.fromkeys(r.runtime for r in results)):
        for implementation, marker in markers.items():
            points = [r for r in results if (r.runtime, r.implementation, r.batch) == (runtime, implementation, batch)]
            if points:
                speed.plot(
                    [r.macs / 1e6 for r in points],
                    [r.images_per_s for r in points],
                    marker,
                    color=colors(index % 20),
                    label=f"{runtime} ({implementation})",
                )
    for model in dict.fromkeys(r.model for r in results):
        best = max((r for r in results if r.model == model and r.batch == batch), key=lambda r: r.images_per_s)
        label = f"{model.replace('ghostnet_', 'G-').replace('tinynet_', 'T-')} {best.runtime}"
        point = (best.macs / 1e6, best.images_per_s)
        speed.annotate(label, point, fontsize=6, xytext=(3, 3), textcoords="offset points")
    speed.set(
        xscale="log",
        yscale="log",
        xlabel="MFLOPs (multiply-adds) per image",
        ylabel=f"images/s at batch {batch}",
        title=f"Throughput, {context['threads']} threads, {context['machine']}",
    )
    speed.legend(fontsize=6, ncol=2)
    speed.grid(True, which="both", alpha=0.3)
    for label, points in PUBLISHED_TOP1.items():
        accuracy.plot([p[0] for p in points], [p[1] for p in points], "o-" if len(points) > 1 else "s", label=label)
    accuracy.set(
        xlabel="MFLOPs (multiply-adds)",
        ylabel="ImageNet top-1 (%)",
        title="Published top-1 vs FLOPs (paper, Fig. 1 / Table 1)",
    )
    accuracy.legend(fontsize=8)
    accuracy.grid(True, alpha=0.3)
    figure.tight_layout()
    with staged_file(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
