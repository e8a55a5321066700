r"""Inference speed of keras_tinynet against the models users would pick instead, in one process.

  python benchmarks/inference.py                       # everything, ~15 min on 2 cores
  python benchmarks/inference.py --models ghostnet_d --runtimes keras_folded,tflite --compare mobilenet_v3_small

On the same random images and the same thread count, it times (median and p90 latency, images/s at each
--batch_sizes) keras_tinynet's GhostNet-A..D and GhostNet 1.0x as
  keras         the model as built, in a tf.function
  keras_folded  keras_tinynet.fold_batch_norm(model), in a tf.function
  keras_xla     the model as built, in a tf.function(jit_compile=True)
  saved_model   export.export_saved_model, reloaded, its serving_default signature
  tflite        export.export_tflite (folded, frozen), the TFLite interpreter with XNNPACK
against keras.applications MobileNetV3Small/Large and EfficientNetB0 (keras, keras_folded, tflite) and
timm's ghostnet_100 in PyTorch (eager, inference_mode; `torch` under glibc's default malloc, timed first
and alone, and `torch_mallopt` with the malloc thresholds raised, as every other runner then runs). All but
`torch` are timed in --rounds interleaved rounds, so that drift of the machine hits all alike. It also
measures the float32 matrix-multiply peak of the machine (TensorFlow and PyTorch, best of both) and gives
each model's achieved FLOP/s (2 x multiply-adds x images/s) as a share of it. Writes inference.json,
inference.md and inference.png
(throughput against FLOPs, and the paper's top-1 against FLOPs) to --output_dir.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import sys
import tempfile

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, time_calls  # noqa: E402

from keras_tinynet.files import staged_file, write_atomically  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OURS = {
    "ghostnet_a": "GhostNetA",
    "ghostnet_b": "GhostNetB",
    "ghostnet_c": "GhostNetC",
    "ghostnet_d": "GhostNetD",
    "ghostnet_100": "GhostNet100",
}
KERAS_APPLICATIONS = {
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnet_b0": "EfficientNetB0",
}
TIMM = {"timm_ghostnet_100": "ghostnet_100"}
OUR_RUNTIMES = ("keras", "keras_folded", "keras_xla", "saved_model", "tflite")
KERAS_APPLICATION_RUNTIMES = ("keras", "keras_folded", "tflite")

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

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(OURS), f"keras_tinynet models: {', '.join(OURS)}.")
flags.DEFINE_list("runtimes", list(OUR_RUNTIMES), f"Runtimes for keras_tinynet models: {', '.join(OUR_RUNTIMES)}.")
flags.DEFINE_list(
    "compare",
    list(KERAS_APPLICATIONS) + list(TIMM),
    f"Models to compare with: {', '.join(list(KERAS_APPLICATIONS) + list(TIMM))}.",
)
flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes.")
flags.DEFINE_integer("threads", os.cpu_count() or 1, "Threads for every framework (TF intra/inter-op, torch, TFLite).")
flags.DEFINE_integer("tf_intra_op_threads", None, "TensorFlow intra-op threads (default: --threads).")
flags.DEFINE_integer("tf_inter_op_threads", None, "TensorFlow inter-op threads (default: --threads).")
flags.DEFINE_float("seconds", 4.0, "Time each measurement for about this long in all (split over the rounds).")
flags.DEFINE_integer("min_runs", 3, "At least this many timed runs per measurement.")
flags.DEFINE_integer("rounds", 3, "Interleave the measurements in this many rounds over all models.")
flags.DEFINE_integer("warmup", 2, "Untimed runs first (XLA compiles, TFLite allocates, caches fill).")
flags.DEFINE_bool(
    "onednn",
    True,
    "TF_ENABLE_ONEDNN_OPTS for TensorFlow (oneDNN kernels; PyTorch uses oneDNN too). "
    "TensorFlow leaves it off on CPUs without AVX-512 VNNI/BF16/AMX, like this AVX2 machine.",
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where inference.json, inference.md and inference.png go.",
)


@dataclasses.dataclass
class Measurement:
    model: str
    family: str  # keras_tinynet, keras.applications or timm
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


def validate_flags() -> None:
    for name, values, allowed in (
        ("models", FLAGS.models, OURS),
        ("runtimes", FLAGS.runtimes, OUR_RUNTIMES),
        ("compare", FLAGS.compare, {**KERAS_APPLICATIONS, **TIMM}),
    ):
        unknown = [value for value in values if value not in allowed]
        if unknown:
            raise app.UsageError(f"--{name}: unknown {unknown}; allowed: {', '.join(allowed)}.")
    if not all(b.isdigit() and int(b) > 0 for b in FLAGS.batch_sizes):
        raise app.UsageError(f"--batch_sizes must be positive integers; received {FLAGS.batch_sizes}.")
    for name in ("threads", "min_runs", "rounds"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(f"--{name} must be at least 1; received {getattr(FLAGS, name)}.")
    if FLAGS.seconds <= 0 or FLAGS.warmup < 0:
        raise app.UsageError(
            f"--seconds must be positive and --warmup non-negative; received {FLAGS.seconds}, {FLAGS.warmup}."
        )


def matmul_peak(threads: int) -> dict:
    """Best float32 GFLOP/s of square matrix multiplies (2 n^3 per product) in TensorFlow and PyTorch."""
    import tensorflow as tf

    results = {}
    for n in (1024, 2048):
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        product = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        best = min(time_calls(lambda product=product: product().numpy(), 2.0, 5, 2))
        results[f"tensorflow_{n}"] = 2 * n**3 / best / 1e6
    if "torch" in sys.modules:
        import torch

        for n in (1024, 2048):
            a, b = torch.randn(n, n), torch.randn(n, n)
            best = min(time_calls(lambda a=a, b=b: torch.mm(a, b), 2.0, 5, 2))
            results[f"torch_{n}"] = 2 * n**3 / best / 1e6
    return {"gflop_per_s": max(results.values()), "by_framework_and_size": results, "threads": threads}


def keras_macs(model) -> float:
    """Multiply-adds per image of the Conv2D, DepthwiseConv2D and Dense layers of a built Keras model."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return float(total)


def keras_runner(model, runtime: str, batch: int, size: int, exportable, workdir: str):
    """A callable that runs `batch` images through `model` on `runtime` and waits for the result."""
    import tensorflow as tf

    from keras_tinynet import export
    from keras_tinynet.inference import fold_batch_norm

    if runtime in ("keras", "keras_folded", "keras_xla"):
        net = fold_batch_norm(model) if runtime == "keras_folded" else model
        function = tf.function(lambda x: net(x, training=False), jit_compile=runtime == "keras_xla")
        return lambda x: function(x).numpy()
    if runtime == "saved_model":
        path = export.export_saved_model(exportable, os.path.join(workdir, "saved_model"))
        signature = tf.saved_model.load(path).signatures["serving_default"]
        return lambda x: signature(images=x)["probabilities"].numpy()
    if runtime == "tflite":
        path = export.export_tflite(exportable, os.path.join(workdir, f"{model.name}-{batch}.tflite"), batch_size=batch)
        interpreter, error = export.ready_interpreter(path, FLAGS.threads)
        if error:
            raise RuntimeError(f"XNNPACK refused {model.name}: {error}")
        (input_details,), (output_details,) = interpreter.get_input_details(), interpreter.get_output_details()

        def run(x):
            interpreter.set_tensor(input_details["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(output_details["index"])

        return run
    raise ValueError(f"unknown runtime {runtime!r}")


def build(name: str):
    """(model, family, image size, MACs per image, exportable) of a keras_tinynet or keras.applications model."""
    import keras

    import keras_tinynet
    from keras_tinynet import export
    from keras_tinynet.counting import count
    from keras_tinynet.imagenet import class_names

    if name in OURS:
        model = getattr(keras_tinynet, OURS[name])()
        spec = keras_tinynet.get_spec(name)
        size, family, macs = spec.default_size, "keras_tinynet", count(spec).flops
    else:
        size, family = 224, "keras.applications"
        model = getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None, input_shape=(size, size, 3))
        spec, macs = None, keras_macs(model)
    exportable = export.Exportable(model=model, spec=spec, image_size=size, labels=tuple(class_names()))
    return model, family, size, macs, exportable


@dataclasses.dataclass
class Runner:
    """One (model, runtime, batch) ready to time: `call()` runs the batch."""

    model: str
    family: str
    runtime: str
    batch: int
    image_size: int
    macs: float
    call: object


def set_malloc_thresholds(bytes_: int) -> None:
    """Raises glibc's mmap and trim thresholds (mallopt), where glibc is the allocator; a no-op elsewhere.

    PyTorch's CPU allocator takes each large activation from malloc; under glibc's defaults those above
    32 MiB come from fresh mmap pages, returned after use, so every batch-32 forward pass page-faults its
    activations again (timm ghostnet_100: 80 img/s; 139 img/s with the thresholds raised, as jemalloc or
    tcmalloc would). TensorFlow keeps its buffers and is unaffected (measured: 200 img/s both ways).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, ctypes.c_int(bytes_))  # M_MMAP_THRESHOLD
        libc.mallopt(-1, ctypes.c_int(bytes_))  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


RAISED_MALLOC_THRESHOLD = 2**31 - 1


def prepare(workdir: str, images) -> list[Runner]:
    """Every runner of the flags' models, runtimes and batch sizes, built and exported once."""
    import tensorflow as tf

    runners = []
    batches = [int(b) for b in FLAGS.batch_sizes]
    for name in FLAGS.compare:
        if name in TIMM:  # first: a fresh process heap, as a user's PyTorch process has it
            runners += timm_runners(name, batches, images)
    keras_models = [(name, FLAGS.runtimes) for name in FLAGS.models]
    application_runtimes = [runtime for runtime in FLAGS.runtimes if runtime in KERAS_APPLICATION_RUNTIMES]
    keras_models += [(name, application_runtimes) for name in FLAGS.compare if name in KERAS_APPLICATIONS]
    for name, runtimes in keras_models:
        model, family, size, macs, exportable = build(name)
        for runtime in runtimes:
            for batch in batches:
                run, x = keras_runner(model, runtime, batch, size, exportable, workdir), images(size, batch)
                if runtime != "tflite":  # a tensor already, as the torch runners get theirs
                    x = tf.constant(x)
                runners.append(Runner(name, family, runtime, batch, size, macs, functools.partial(run, x)))
        print(f"prepared {name}", flush=True)
    return runners


def measure_all(peak: float) -> list[Measurement]:
    """Times every runner in --rounds interleaved rounds (so that drift of the machine hits all alike)."""
    import numpy as np

    rng = np.random.default_rng(0)
    inputs: dict[tuple[int, int], np.ndarray] = {}

    def images(size: int, batch: int):
        if (size, batch) not in inputs:
            inputs[size, batch] = rng.integers(0, 256, (batch, size, size, 3)).astype(np.float32)
        return inputs[size, batch]

    with tempfile.TemporaryDirectory(prefix="keras_tinynet_bench-") as workdir:
        runners = prepare(workdir, images)
        latencies = {id(runner): [] for runner in runners}
        per_round = -(-FLAGS.min_runs // FLAGS.rounds)
        # PyTorch with glibc's default malloc first and on its own: mallopt cannot give the default back.
        for runner in runners:
            if runner.runtime == "torch":
                latencies[id(runner)] = time_calls(runner.call, FLAGS.seconds, FLAGS.min_runs, FLAGS.warmup)
        set_malloc_thresholds(RAISED_MALLOC_THRESHOLD)
        interleaved = [runner for runner in runners if runner.runtime != "torch"]
        for round_index in range(FLAGS.rounds):
            for runner in interleaved:
                warmup = FLAGS.warmup if round_index == 0 else 1
                latencies[id(runner)] += time_calls(runner.call, FLAGS.seconds / FLAGS.rounds, per_round, warmup)
            print(f"round {round_index + 1}/{FLAGS.rounds} done", flush=True)

    results = []
    for runner in runners:
        times = latencies[id(runner)]
        median, p90 = float(np.median(times)), float(np.percentile(times, 90))
        rate = runner.batch / median * 1e3
        results.append(
            Measurement(
                runner.model,
                runner.family,
                runner.runtime,
                runner.batch,
                runner.image_size,
                runner.macs,
                median,
                p90,
                len(times),
                rate,
                2 * runner.macs * rate / 1e9,
                2 * runner.macs * rate / 1e9 / peak,
            )
        )
        r = results[-1]
        print(
            f"{r.model:20s} {r.runtime:13s} batch {r.batch:3d}: {median:9.2f} ms median, {p90:9.2f} ms p90, "
            f"{rate:8.1f} img/s, {r.peak_share:6.1%} of peak",
            flush=True,
        )
    return results


def timm_runners(name: str, batches, images) -> list[Runner]:
    """timm's model in PyTorch eager mode (inference_mode): `torch` timed under glibc's default malloc,
    `torch_mallopt` with raised thresholds (`set_malloc_thresholds`)."""
    import timm
    import torch

    from keras_tinynet.counting import count
    from keras_tinynet.presets import get_spec

    model = timm.create_model(TIMM[name], pretrained=False).eval()
    size, macs = 224, count(get_spec(TIMM[name])).flops  # the same architecture as keras_tinynet's GhostNet100

    def forward(x):
        with torch.inference_mode():
            return model(x)

    runners = []
    for runtime in ("torch", "torch_mallopt"):
        for batch in batches:
            x = torch.from_numpy(images(size, batch).transpose(0, 3, 1, 2).copy())
            runners.append(Runner(name, "timm", runtime, batch, size, macs, functools.partial(forward, x)))
    return runners


def find(results, model, runtime, batch):
    return next((r for r in results if r.model == model and r.runtime == runtime and r.batch == batch), None)


def targets(results) -> list[dict]:
    """The issue's targets, each as measured on every runtime where both sides were measured."""
    checks = []

    def ratio(description, goal, numerator, denominator, batch, runtimes, higher_is_better=True):
        for runtime, other_runtime in runtimes:
            a, b = find(results, numerator, runtime, batch), find(results, denominator, other_runtime, batch)
            if a and b:
                value = a.images_per_s / b.images_per_s if higher_is_better else b.median_ms / a.median_ms
                checks.append(
                    {
                        "target": description,
                        "runtime": runtime,
                        "versus": other_runtime,
                        "value": value,
                        "goal": goal,
                        "met": value >= goal,
                    }
                )

    ours_vs_torch = [(runtime, torch) for runtime in OUR_RUNTIMES for torch in ("torch", "torch_mallopt")]
    same_runtime = [(runtime, runtime) for runtime in KERAS_APPLICATION_RUNTIMES]
    ratio(
        "GhostNet100 / timm ghostnet_100 images/s, batch 32",
        2.0,
        "ghostnet_100",
        "timm_ghostnet_100",
        32,
        ours_vs_torch,
    )
    ratio(
        "GhostNet100 / timm ghostnet_100 images/s, batch 1", 1.5, "ghostnet_100", "timm_ghostnet_100", 1, ours_vs_torch
    )
    ratio("GhostNetB / EfficientNetB0 images/s, batch 32", 1.5, "ghostnet_b", "efficientnet_b0", 32, same_runtime)
    for runtime in OUR_RUNTIMES:
        a = find(results, "ghostnet_a", runtime, 32)
        if a:
            checks.append(
                {
                    "target": "GhostNet-A share of the matmul peak, batch 32",
                    "runtime": runtime,
                    "versus": "matmul",
                    "value": a.peak_share,
                    "goal": 0.40,
                    "met": a.peak_share >= 0.40,
                }
            )
    # Latency target: MobileNetV3Small's latency over GhostNetD's must be >= 1.
    ratio(
        "MobileNetV3Small / GhostNetD TFLite latency, batch 1",
        1.0,
        "ghostnet_d",
        "mobilenet_v3_small",
        1,
        [("tflite", "tflite")],
        higher_is_better=False,
    )
    return checks


def markdown(results, checks, context) -> str:
    batches = sorted({r.batch for r in results})
    tf_threads = context.get("tf_threads") or {"intra_op": context["threads"], "inter_op": context["threads"]}
    lines = [
        f"Measured {context['date']} on {context['machine']}, {context['threads']} threads everywhere "
        f"(TensorFlow intra-op {tf_threads['intra_op']}, inter-op {tf_threads['inter_op']}), "
        f"oneDNN {'on' if context['onednn'] else 'off'} in TensorFlow; float32 matmul peak "
        f"{context['peak']['gflop_per_s']:.0f} GFLOP/s. Command: `{context['command']}`.",
        "",
        "| model | runtime | MFLOPs | "
        + " | ".join(f"batch {b}: img/s (median / p90 ms)" for b in batches)
        + f" | batch {batches[-1]}: % of peak |",
        "|---|---|---|" + "---|" * (len(batches) + 1),
    ]
    seen = []
    for r in results:
        if (r.model, r.runtime) in seen:
            continue
        seen.append((r.model, r.runtime))
        cells = []
        for b in batches:
            m = find(results, r.model, r.runtime, b)
            cells.append(f"{m.images_per_s:.1f} ({m.median_ms:.2f} / {m.p90_ms:.2f})" if m else "")
        last = find(results, r.model, r.runtime, batches[-1])
        share = f"{last.peak_share:.1%}" if last else ""
        lines.append(f"| {r.model} | {r.runtime} | {r.macs / 1e6:.0f} | " + " | ".join(cells) + f" | {share} |")
    if checks:
        lines += ["", "| target | runtime (against) | measured | goal | met |", "|---|---|---|---|---|"]
        for c in checks:
            value = f"{c['value']:.1%}" if "share" in c["target"] else f"{c['value']:.2f}x"
            goal = f"{c['goal']:.0%}" if "share" in c["target"] else f"{c['goal']:.1f}x"
            met = "yes" if c["met"] else "**no**"
            lines.append(f"| {c['target']} | {c['runtime']} ({c['versus']}) | {value} | {goal} | {met} |")
    return "\n".join(lines) + "\n"


def plot(results, path: str, context) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, accuracy) = plt.subplots(1, 2, figsize=(14, 5.5))
    batch = max(r.batch for r in results)
    for runtime in dict.fromkeys(r.runtime for r in results):
        points = sorted(
            (r.macs / 1e6, r.images_per_s, r.model) for r in results if r.runtime == runtime and r.batch == batch
        )
        if not points:
            continue
        speed.plot([p[0] for p in points], [p[1] for p in points], "o", label=runtime)
        for macs, rate, model in points:
            speed.annotate(
                model.replace("timm_", "timm ").replace("ghostnet_", "G-"),
                (macs, rate),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    speed.set(
        xscale="log",
        yscale="log",
        xlabel="MFLOPs (multiply-adds) per image",
        ylabel=f"images/s at batch {batch}",
        title=f"Throughput, {context['threads']} threads, {context['machine']}",
    )
    speed.legend(fontsize=8)
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    validate_flags()
    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel writer logs every save at INFO
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
    if any(name in TIMM for name in FLAGS.compare):
        import timm  # noqa: F401  (before TensorFlow/Keras: the other order crashes on this stack)
        import torch

        torch.set_num_threads(FLAGS.threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.tf_intra_op_threads or FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.tf_inter_op_threads or FLAGS.threads)
    import keras

    peak = matmul_peak(FLAGS.threads)
    print(f"float32 matmul peak: {peak['gflop_per_s']:.1f} GFLOP/s {peak['by_framework_and_size']}", flush=True)
    results = measure_all(peak["gflop_per_s"])
    checks = targets(results)
    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}
    if "timm" in sys.modules:
        versions.update(torch=sys.modules["torch"].__version__, timm=sys.modules["timm"].__version__)
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "threads": FLAGS.threads,
        "onednn": FLAGS.onednn,
        "peak": peak,
        "versions": versions,
        "tf_threads": {
            "intra_op": FLAGS.tf_intra_op_threads or FLAGS.threads,
            "inter_op": FLAGS.tf_inter_op_threads or FLAGS.threads,
        },
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:]),
        "published_top1_sources": PUBLISHED_SOURCES,
    }
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    write_atomically(
        os.path.join(FLAGS.output_dir, "inference.json"),
        json.dumps(
            {
                "context": context,
                "results": [dataclasses.asdict(r) for r in results],
                "targets": checks,
                "published_top1": PUBLISHED_TOP1,
            },
            indent=1,
        ),
    )
    table = markdown(results, checks, context)
    write_atomically(os.path.join(FLAGS.output_dir, "inference.md"), table)
    plot(results, os.path.join(FLAGS.output_dir, "inference.png"), context)
    print("\n" + table)


if __name__ == "__main__":
    app.run(main)
