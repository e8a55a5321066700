r"""Inference speed of keras_tinynet against the models users would pick instead, in one run.

  python benchmarks/inference.py                       # everything; prints its estimated time first
  python benchmarks/inference.py --models ghostnet_d --runtimes keras,tflite --compare mobilenet_v3_small

On the same random images and the same thread count it times (median and p90 latency, images/s at each
--batch_sizes) every deployment path a user would pick (`runners` describes each runtime):
  keras_tinynet's presets (GhostNet-A..D, GhostNet 1.0x, TinyNet-A..E by default): keras (as a user builds
    it), keras_folded, keras_xla, saved_model, tflite, onnxruntime and openvino on our ONNX export, and
    `optimized` (keras_tinynet.inference.optimize_for_inference, in a tf.function) and `compiled`
    (keras_tinynet.compile_for_inference: the one call a user's script makes for the fastest in-process form);
  keras.applications EfficientNetB0 and MobileNetV3Small/Large: keras, keras_folded, keras_xla, tflite,
    onnxruntime and openvino (through the same tf2onnx export as ours);
  timm in PyTorch: torch (default), torch_tuned, torch_compile, and timm's own ONNX export in onnxruntime
    and openvino (ghostnet_100; the TinyNets in torch_tuned and onnxruntime);
  the other Keras implementations of GhostNet 1.0x: kimm (keras, and its TFLite export) and
    keras_cv_attention_models (tf_keras, timed in its own process, and its README's TFLite conversion).
GhostNet 1.0x/B/D, EfficientNetB0 and MobileNetV3Small run every runtime; the other models fewer, to keep
the default run near 30 minutes on 2 cores. Each network is timed with all its implementations (and
GhostNet-B with EfficientNetB0, GhostNet-D with MobileNetV3Small) in --rounds interleaved rounds, so that
drift of the machine hits the paths compared alike (`measurement_groups` says why not all at once). In the
same run it measures the float32 matmul peak and the streaming memory bandwidth, and gives each
measurement's share of the peak and of its roofline bound (`roofline`). Writes inference.json,
inference.md and inference.png to --output_dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import io
import json
import math
import os
import platform
import sys
import tempfile
import time

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roofline  # noqa: E402
import runners  # noqa: E402
import tables  # noqa: E402
from _common import he_normal_kernels, machine, time_calls  # noqa: E402
from op_counts import op_counts  # noqa: E402

from keras_tinynet.files import staged_file, write_atomically  # noqa: E402
from keras_tinynet.presets import PRESETS, builder_name  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One implementation of a network, and the runtimes it can run (and runs by default)."""

    model: str
    network: str
    implementation: str
    runtimes: tuple[str, ...]
    default_runtimes: tuple[str, ...]


OUR_RUNTIMES = (
    "keras",
    "keras_folded",
    "keras_xla",
    "saved_model",
    "tflite",
    "onnxruntime",
    "openvino",
    "optimized",
    "compiled",
)
APPLICATION_RUNTIMES = ("keras", "keras_folded", "keras_xla", "tflite", "onnxruntime", "openvino")
TIMM_RUNTIMES = ("torch", "torch_tuned", "torch_compile", "onnxruntime", "openvino")
# Every runtime by default for these (the targets and the export comparison read them); fewer for the rest.
ALL_RUNTIMES_BY_DEFAULT = ("ghostnet_100", "ghostnet_b", "ghostnet_d", "efficientnet_b0", "mobilenet_v3_small")
FEWER_RUNTIMES = {
    "keras_tinynet": ("keras", "keras_folded", "tflite", "onnxruntime", "openvino", "optimized", "compiled"),
    "tinynet": ("keras", "tflite", "onnxruntime", "openvino"),
    "keras.applications": ("keras", "keras_folded", "tflite", "onnxruntime", "openvino"),
    "timm": ("torch_tuned", "onnxruntime"),
}
# The other GhostNet widths are selectable (--models) but not in the default run, for its time.
DEFAULT_MODELS = [name for name in PRESETS if name not in ("ghostnet_050", "ghostnet_130", "ghostnet_150")]
KERAS_APPLICATIONS = {
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnet_b0": "EfficientNetB0",
}


def default_runtimes(model: str, family: str, runtimes: tuple[str, ...]) -> tuple[str, ...]:
    return runtimes if model in ALL_RUNTIMES_BY_DEFAULT else FEWER_RUNTIMES[family]


def catalogue() -> dict[str, Entry]:
    """Every selectable implementation: ours from PRESETS, then what --compare names."""
    entries = {}
    for name, preset in PRESETS.items():
        family = "tinynet" if preset.architecture.family == "tinynet" else "keras_tinynet"
        entries[name] = Entry(name, name, "keras_tinynet", OUR_RUNTIMES, default_runtimes(name, family, OUR_RUNTIMES))
    for name in KERAS_APPLICATIONS:
        plan = default_runtimes(name, "keras.applications", APPLICATION_RUNTIMES)
        entries[name] = Entry(name, name, "keras.applications", APPLICATION_RUNTIMES, plan)
    for name in DEFAULT_MODELS:
        if PRESETS[name].timm_model:
            plan = TIMM_RUNTIMES if name == "ghostnet_100" else FEWER_RUNTIMES["timm"]
            entries[f"timm_{name}"] = Entry(f"timm_{name}", name, "timm", TIMM_RUNTIMES, plan)
    kimm_runtimes = ("keras", "tflite", "onnxruntime")  # onnxruntime: recorded as not possible, see build_runner
    entries["kimm_ghostnet_100"] = Entry("kimm_ghostnet_100", "ghostnet_100", "kimm", kimm_runtimes, kimm_runtimes)
    kcam_runtimes = ("tf_keras", "tflite")
    entries["kcam_ghostnet_100"] = Entry(
        "kcam_ghostnet_100", "ghostnet_100", "keras_cv_attention_models", kcam_runtimes, kcam_runtimes
    )
    return entries


ENTRIES = catalogue()
OURS = [name for name, entry in ENTRIES.items() if entry.implementation == "keras_tinynet"]
COMPARED = [name for name, entry in ENTRIES.items() if entry.implementation != "keras_tinynet"]
ALL_RUNTIMES = list(dict.fromkeys(runtime for entry in ENTRIES.values() for runtime in entry.runtimes))

# Rough preparation costs on the 2-core reference machine, for the up-front estimate (seconds).
# keras_xla: its compile and its slow calls (10-15x the others' on the CPU).
PREPARATION_SECONDS = {
    "model": 5,
    "tflite": 12,
    "onnx": 15,
    "saved_model": 20,
    "keras_xla": 30,
    "torch_compile": 100,
    "kcam": 25,
}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", DEFAULT_MODELS, f"keras_tinynet models: {', '.join(OURS)}.")
flags.DEFINE_list(
    "runtimes",
    ALL_RUNTIMES,
    f"Runtimes: {', '.join(ALL_RUNTIMES)}. Default: each model's own plan (every runtime for "
    f"{', '.join(ALL_RUNTIMES_BY_DEFAULT)}); given, each model runs those of them it can.",
)
flags.DEFINE_list("compare", COMPARED, f"Models to compare with: {', '.join(COMPARED)}.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes.")
flags.DEFINE_integer("threads", os.cpu_count() or 1, "Threads for every framework (TF intra/inter-op, torch, TFLite).")
flags.DEFINE_integer("tf_intra_op_threads", None, "TensorFlow intra-op threads (default: --threads).")
flags.DEFINE_integer("tf_inter_op_threads", None, "TensorFlow inter-op threads (default: --threads).")
flags.DEFINE_float("seconds", 2.0, "Time each measurement for about this long in all (split over the rounds).")
flags.DEFINE_integer("min_runs", 3, "At least this many timed runs per measurement.")
flags.DEFINE_integer("rounds", 3, "Interleave the measurements in this many rounds over all models.")
flags.DEFINE_integer("warmup", 2, "Untimed runs first (XLA compiles, TFLite allocates, caches fill).")
flags.DEFINE_bool(
    "onednn",
    True,
    "TF_ENABLE_ONEDNN_OPTS for TensorFlow (oneDNN kernels; PyTorch uses oneDNN too). "
    "TensorFlow leaves it off on CPUs without AVX-512 VNNI/BF16/AMX.",
)
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where inference.json, inference.md and inference.png go.",
)


def validate_flags() -> None:
    for name, values, allowed in (
        ("models", FLAGS.models, OURS),
        ("runtimes", FLAGS.runtimes, ALL_RUNTIMES),
        ("compare", FLAGS.compare, COMPARED),
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


def plan() -> list[tuple[Entry, tuple[str, ...]]]:
    """(entry, runtimes) of the run; timm first, so that its process heap is as a user's PyTorch has it."""
    chosen = [ENTRIES[name] for name in FLAGS.compare if ENTRIES[name].implementation == "timm"]
    chosen += [ENTRIES[name] for name in FLAGS.models]
    chosen += [ENTRIES[name] for name in FLAGS.compare if ENTRIES[name].implementation != "timm"]
    selected = []
    for entry in chosen:
        runtimes = entry.runtimes if FLAGS["runtimes"].present else entry.default_runtimes
        runtimes = tuple(runtime for runtime in runtimes if runtime in FLAGS.runtimes)
        if runtimes:
            selected.append((entry, runtimes))
    return selected


def estimate_seconds(selected, batches: list[int]) -> dict:
    """The run's time, roughly: preparation (builds, exports, compiles) and timing (--seconds each)."""
    cost = PREPARATION_SECONDS
    preparation = 0.0
    for entry, runtimes in selected:
        preparation += cost["kcam"] if entry.implementation == "keras_cv_attention_models" else cost["model"]
        preparation += cost["tflite"] * len(batches) * ("tflite" in runtimes)
        preparation += cost["onnx"] * bool({"onnxruntime", "openvino"} & set(runtimes))
        preparation += cost["saved_model"] * ("saved_model" in runtimes)
        for runtime in ("keras_xla", "torch_compile"):  # per batch size
            preparation += cost[runtime] * len(batches) * (runtime in runtimes)
    measurements = sum(len(runtimes) for _, runtimes in selected) * len(batches)
    timing = measurements * FLAGS.seconds * 1.25  # warmups, and runs that outlast --seconds
    return {"measurements": measurements, "preparation_s": preparation, "timing_s": timing}


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


def build_keras(name: str):
    """(model, image size, MACs per image, exportable) of a keras_tinynet preset or keras.applications model."""
    import keras

    import keras_tinynet
    from keras_tinynet import export
    from keras_tinynet.counting import count
    from keras_tinynet.imagenet import class_names

    if name in PRESETS:
        spec = keras_tinynet.get_spec(name)
        model, size, macs = getattr(keras_tinynet, builder_name(name))(), spec.default_size, count(spec).flops
    else:
        size, spec = 224, None
        model = getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None, input_shape=(size, size, 3))
        macs = keras_macs(model)
    he_normal_kernels(model)
    exportable = export.Exportable(model=model, spec=spec, image_size=size, labels=tuple(class_names()))
    return model, size, macs, exportable


@dataclasses.dataclass
class Runner:
    """One (model, runtime, batch) ready to time: `call()` runs the batch and returns its output."""

    entry: Entry
    runtime: str
    batch: int
    image_size: int
    macs: float
    call: object
    timer: object = None  # (seconds, min_runs, warmup) -> latencies, where another process times itself
    max_abs_diff: float = 0.0
    output_range: float = 0.0
    reference_runtime: str = ""
    note: str = ""

    def latencies(self, seconds: float, min_runs: int, warmup: int) -> list[float]:
        if self.timer:
            return self.timer(seconds, min_runs, warmup)
        return time_calls(self.call, seconds, min_runs, warmup)


class Preparation:
    """Builds each implementation once and makes its runners, exporting each file once; a path that cannot
    run is recorded in `skipped` with its error, never measured as something else."""

    def __init__(self, workdir: str, batches: list[int]):
        import numpy as np

        self.workdir, self.batches = workdir, batches
        self.rng = np.random.default_rng(0)
        self.inputs: dict[tuple[int, int], np.ndarray] = {}
        self.runners: list[Runner] = []
        self.skipped: list[dict] = []
        self.graphs: dict[str, str] = {}  # name -> exported .onnx/.tflite file, for op counts
        self.traffic: dict[str, roofline.Traffic] = {}
        self.kcam = None

    def images(self, size: int, batch: int, channels_first: bool = False):
        if (size, batch) not in self.inputs:
            self.inputs[size, batch] = self.rng.integers(0, 256, (batch, size, size, 3)).astype("float32")
        images = self.inputs[size, batch]
        return images.transpose(0, 3, 1, 2).copy() if channels_first else images

    def images_file(self, size: int, batch: int) -> str:
        """The images as an .npy file, for a process of another Keras."""
        import numpy as np

        path = os.path.join(self.workdir, f"images-{size}-{batch}.npy")
        if not os.path.exists(path):
            np.save(path, self.images(size, batch))
        return path

    def file(self, entry: Entry, kind: str, make) -> str:
        """The exported file `kind` of `entry`, made by `make(path)` on first use."""
        path = os.path.join(self.workdir, f"{entry.model}.{kind}")
        if not os.path.exists(path):
            make(path)
            if kind.endswith(("onnx", "tflite")):
                self.graphs.setdefault(f"{entry.model} {kind.rsplit('.', 1)[-1]}", path)
        return path

    def network_traffic(self, network: str, exportable=None) -> roofline.Traffic:
        """Bytes per image of `network`: from the Keras graph our exports run, the `inference_model` of its
        exportable (the one the exports then reuse; ours stands in for timm, kimm, kcam)."""
        if network not in self.traffic:
            exportable = exportable if exportable is not None else build_keras(network)[3]
            self.traffic[network] = roofline.keras_traffic(exportable.inference_model)
        return self.traffic[network]

    def add(self, entry: Entry, runtimes: tuple[str, ...]) -> None:
        import numpy as np

        start = time.perf_counter()
        try:
            make, size, macs = self.implementation(entry)
        except Exception as error:  # the package or its model does not load on this stack
            for runtime in runtimes:
                self.skip(entry, runtime, error)
            return
        for batch in self.batches:
            reference = None
            for runtime in runtimes:
                try:
                    call, timer, note = make(runtime, batch)
                    output = np.asarray(call())
                except Exception as error:
                    self.skip(entry, runtime, error)
                    continue
                runner = Runner(entry, runtime, batch, size, macs, call, timer, note=note)
                if reference is None:
                    reference = (runtime, output)
                runner.reference_runtime = reference[0]
                runner.max_abs_diff = float(np.max(np.abs(output - reference[1])))
                runner.output_range = float(np.ptp(reference[1]))
                self.runners.append(runner)
        print(f"prepared {entry.model} in {time.perf_counter() - start:.0f} s", flush=True)

    def skip(self, entry: Entry, runtime: str, error: Exception) -> None:
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        print(f"skipped {entry.model} {runtime}: {reason}", flush=True)
        if {"model": entry.model, "runtime": runtime, "reason": reason} not in self.skipped:
            self.skipped.append({"model": entry.model, "runtime": runtime, "reason": reason})

    def implementation(self, entry: Entry):
        """(make(runtime, batch) -> (call, timer, note), image size, MACs per image) of an entry."""
        from keras_tinynet.counting import count
        from keras_tinynet.presets import get_spec

        threads = FLAGS.threads
        if entry.implementation == "timm":
            import timm

            model = timm.create_model(PRESETS[entry.network].timm_model, pretrained=False).eval()
            size = PRESETS[entry.network].image_size
            onnx = lambda: self.file(entry, "onnx", lambda p: runners.timm_onnx(model, p, size))  # noqa: E731

            def make(runtime, batch):
                x = self.images(size, batch, channels_first=True)
                if runtime == "onnxruntime":
                    return runners.onnxruntime_runner(onnx(), x, threads), None, ""
                if runtime == "openvino":
                    return runners.openvino_runner(onnx(), x, threads), None, ""
                return runners.torch_runner(model, runtime, x), None, ""

            self.network_traffic(entry.network)
            return make, size, count(get_spec(entry.network)).flops
        if entry.implementation == "keras_cv_attention_models":
            self.kcam = self.kcam or runners.KcamWorker(threads, FLAGS.onednn)
            size = 224
            tflite = lambda: self.file(entry, "tflite", lambda p: self.kcam.ask(op="tflite", path=p))  # noqa: E731

            def make(runtime, batch):
                x = self.images(size, batch)
                if runtime == "tflite":
                    return runners.tflite_runner(tflite(), x, threads), None, ""
                inputs = self.images_file(size, batch)
                return self.kcam.runner(inputs), self.kcam.timer(inputs), "tf-keras, timed in its own process"

            self.network_traffic(entry.network)
            return make, size, count(get_spec(entry.network)).flops
        if entry.implementation == "kimm":
            import kimm

            size = 224
            model = kimm.models.GhostNetW100(weights=None, input_shape=(size, size, 3))
            he_normal_kernels(model)
            exportable, macs = None, count(get_spec(entry.network)).flops
            self.network_traffic(entry.network)
        else:
            model, size, macs, exportable = build_keras(entry.model)
            self.network_traffic(entry.network, exportable)

        def tflite(batch):
            if exportable is None:

                def make_file(path):  # Keras's export prints the whole signature to stdout
                    with contextlib.redirect_stdout(io.StringIO()):
                        kimm.export.export_tflite(model, size, path, batch_size=batch)

            else:
                from keras_tinynet import export

                make_file = lambda p: export.export_tflite(exportable, p, batch_size=batch)  # noqa: E731
            return self.file(entry, f"{batch}.tflite", make_file)

        def onnx():
            if exportable is None:
                raise NotImplementedError(
                    "kimm.export.export_onnx runs on the torch Keras backend only (channels_first); "
                    "this process runs Keras on TensorFlow"
                )
            from keras_tinynet import export

            return self.file(entry, "onnx", lambda p: export.export_onnx(exportable, p))

        def make(runtime, batch):
            x = self.images(size, batch)
            if runtime == "tflite":
                return runners.tflite_runner(tflite(batch), x, threads), None, ""
            if runtime == "onnxruntime":
                return runners.onnxruntime_runner(onnx(), x, threads), None, ""
            if runtime == "openvino":
                return runners.openvino_runner(onnx(), x, threads), None, ""
            if runtime == "compiled":
                return runners.compiled_runner(model, x, threads), None, ""
            if runtime == "saved_model":
                from keras_tinynet import export

                make_directory = lambda p: export.export_saved_model(exportable, p, version=1)  # noqa: E731
                directory = self.file(entry, "saved_model", make_directory)
                return runners.saved_model_runner(os.path.join(directory, exportable.name, "1"), x), None, ""
            return runners.tf_function_runner(model, runtime, x), None, ""

        return make, size, macs


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


# Networks timed in the same interleaved rounds as another's (the targets compare them); the rest by network.
MEASURED_WITH = {"efficientnet_b0": "ghostnet_b", "mobilenet_v3_small": "ghostnet_d"}


def measurement_groups(selected) -> list[list[tuple[Entry, tuple[str, ...]]]]:
    """The run's entries in groups, each prepared, timed in interleaved rounds and released before the next:
    held all at once, the default run's interpreters, sessions and batch-32 buffers filled 23 GB and stalled
    the machine. A group is a network with every implementation of it (and MEASURED_WITH's partners), so
    each comparison the tables make is timed side by side. Every entry timed with PyTorch's default malloc
    (`torch`) joins the first group: the thresholds are raised after it, for good."""
    groups: dict[str, list] = {}
    for entry, runtimes in selected:
        key = "torch" if "torch" in runtimes else MEASURED_WITH.get(entry.network, entry.network)
        groups.setdefault(key, []).append((entry, runtimes))
    if "torch" in groups:  # the rest of the first timm network's group joins it
        first = groups.pop("torch")
        networks = {entry.network for entry, _ in first}
        for key in [key for key in groups if key in networks]:
            first += groups.pop(key)
        return [first, *groups.values()]
    return list(groups.values())


def measure(runners_: list[Runner]) -> dict[int, list[float]]:
    """Latencies of every runner, in --rounds interleaved rounds (so that drift of the machine hits all alike)."""
    latencies = {id(runner): [] for runner in runners_}
    per_round = -(-FLAGS.min_runs // FLAGS.rounds)
    # PyTorch with glibc's default malloc first and on its own: mallopt cannot give the default back.
    for runner in runners_:
        if runner.runtime == "torch":
            latencies[id(runner)] = runner.latencies(FLAGS.seconds, FLAGS.min_runs, FLAGS.warmup)
    set_malloc_thresholds(RAISED_MALLOC_THRESHOLD)
    interleaved = [runner for runner in runners_ if runner.runtime != "torch"]
    for round_index in range(FLAGS.rounds):
        for runner in interleaved:
            warmup = FLAGS.warmup if round_index == 0 else 1
            latencies[id(runner)] += runner.latencies(FLAGS.seconds / FLAGS.rounds, per_round, warmup)
        print(f"round {round_index + 1}/{FLAGS.rounds} done", flush=True)
    return latencies


def measurement(runner: Runner, times: list[float], traffic, peak: float, bandwidth: float) -> tables.Measurement:
    import numpy as np

    median, p90 = float(np.median(times)), float(np.percentile(times, 90))
    rate = runner.batch / median * 1e3
    bound = roofline.roofline(runner.macs, traffic, runner.batch, peak, bandwidth)
    return tables.Measurement(
        model=runner.entry.model,
        network=runner.entry.network,
        implementation=runner.entry.implementation,
        runtime=runner.runtime,
        batch=runner.batch,
        image_size=runner.image_size,
        macs=runner.macs,
        median_ms=median,
        p90_ms=p90,
        runs=len(times),
        images_per_s=rate,
        gflop_per_s=2 * runner.macs * rate / 1e9,
        peak_share=2 * runner.macs * rate / 1e9 / peak,
        **bound,
        roofline_share=rate / bound["roofline_images_per_s"],
        max_abs_diff=runner.max_abs_diff,
        output_range=runner.output_range,
        reference_runtime=runner.reference_runtime,
        note=runner.note,
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


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in (
        "tensorflow",
        "keras",
        "torch",
        "timm",
        "onnxruntime",
        "openvino",
        "tf2onnx",
        "ai-edge-litert",
        "kimm",
        "keras-cv-attention-models",
        "tf_keras",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    validate_flags()
    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel writer logs every save at INFO
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
    batches = [int(b) for b in FLAGS.batch_sizes]
    selected = plan()
    estimate = estimate_seconds(selected, batches)
    total = estimate["preparation_s"] + estimate["timing_s"]
    print(
        f"estimated run time: ~{math.ceil(total / 60)} min ({estimate['measurements']} measurements: "
        f"~{estimate['timing_s'] / 60:.0f} min timing, ~{estimate['preparation_s'] / 60:.0f} min builds and exports)",
        flush=True,
    )
    if any(entry.implementation == "timm" for entry, _ in selected):
        import timm  # noqa: F401  (before TensorFlow/Keras: the other order crashes on this stack)
        import torch

        torch.set_num_threads(FLAGS.threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.tf_intra_op_threads or FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.tf_inter_op_threads or FLAGS.threads)

    started = time.perf_counter()
    peak = matmul_peak(FLAGS.threads)
    bandwidth = roofline.stream_bandwidth()
    print(f"float32 matmul peak: {peak['gflop_per_s']:.1f} GFLOP/s {peak['by_framework_and_size']}", flush=True)
    print(f"memory bandwidth: {bandwidth}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="keras_tinynet_bench-") as workdir:
        preparation = Preparation(workdir, batches)
        try:
            for group in measurement_groups(selected):
                for entry, runtimes in group:
                    preparation.add(entry, runtimes)
                latencies = measure(preparation.runners)
                results += [
                    measurement(
                        runner,
                        latencies[id(runner)],
                        preparation.traffic[runner.entry.network],
                        peak["gflop_per_s"],
                        bandwidth["gb_per_s"],
                    )
                    for runner in preparation.runners
                ]
                preparation.runners.clear()  # their interpreters, sessions and buffers go before the next group
                gc.collect()
        finally:
            if preparation.kcam:
                preparation.kcam.close()
        graphs = {name: op_counts(path) for name, path in preparation.graphs.items()}
    for r in results:
        print(
            f"{r.model:20s} {r.runtime:13s} batch {r.batch:3d}: {r.median_ms:9.2f} ms median, "
            f"{r.images_per_s:8.1f} img/s, {r.peak_share:6.1%} of peak, {r.roofline_share:6.1%} of roofline, "
            f"max abs diff {r.max_abs_diff:.1e} (output range {r.output_range:.1e}) vs {r.reference_runtime}",
            flush=True,
        )
    checks = tables.targets(results)
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "threads": FLAGS.threads,
        "onednn": FLAGS.onednn,
        "peak": peak,
        "bandwidth": bandwidth,
        "versions": versions(),
        "tf_threads": {
            "intra_op": FLAGS.tf_intra_op_threads or FLAGS.threads,
            "inter_op": FLAGS.tf_inter_op_threads or FLAGS.threads,
        },
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:]),
        "estimated_s": estimate,
        "took_s": time.perf_counter() - started,
        "published_top1_sources": PUBLISHED_SOURCES,
    }
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    report = {
        "context": context,
        "results": [dataclasses.asdict(r) for r in results],
        "fastest_paths": tables.fastest_paths(results),
        "export_comparison": tables.export_comparison(results),
        "op_counts": graphs,
        "skipped": preparation.skipped,
        "targets": checks,
        "published_top1": PUBLISHED_TOP1,
    }
    write_atomically(os.path.join(FLAGS.output_dir, "inference.json"), json.dumps(report, indent=1))
    markdown = tables.markdown(results, checks, context, graphs, preparation.skipped)
    write_atomically(os.path.join(FLAGS.output_dir, "inference.md"), markdown)
    plot(results, os.path.join(FLAGS.output_dir, "inference.png"), context)
    print("\n" + markdown)


if __name__ == "__main__":
    app.run(main)
