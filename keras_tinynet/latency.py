"""How fast a model runs in a deployment runtime on this machine: `measure_latency(model, runtime=...)`.

The package's one home of "run a model the way it is deployed and time it", used by the latency budget of
the tiny formula (`twist --latency_ms`) and by benchmarks/ (which adds the other implementations' runtimes:
timm, kimm, keras_cv_attention_models). Each runtime runs the model as the package's own exports build it
(`optimize_for_inference`, frozen; see `keras_tinynet.export`), `threads` threads:

  keras, keras_folded, keras_xla, optimized   the Keras model in a tf.function (`keras`: as built;
                  `keras_folded`: `fold_batch_norm`; `keras_xla`: jit_compile=True; `optimized`:
                  `optimize_for_inference`). TensorFlow's threads are the process's, set before its first op.
  compiled        `compile_for_inference(model)`: the package's one call for in-process inference
  saved_model     `export_saved_model`, reloaded, its serving_default signature
  tflite          a .tflite file (`export_tflite`, the batch fixed) in the TFLite interpreter with XNNPACK
  onnxruntime     an .onnx file (`export_onnx`), CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads
  openvino        the same .onnx file, its batch made static, CPU plugin, PERFORMANCE_HINT LATENCY, float32
                  (INFERENCE_PRECISION_HINT f32: on CPUs with AVX-512 BF16 OpenVINO's default is bfloat16)

Importing this module does not import TensorFlow or Keras; building a runner does.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from keras_tinynet.machine import machine  # re-exported: what a latency depends on beyond the model


def time_calls(call: Callable[[], object], seconds: float, min_runs: int, warmup: int) -> list[float]:
    """Latencies in milliseconds of `call()`, after `warmup` calls, for `seconds` and at least `min_runs`."""
    for _ in range(warmup):
        call()
    latencies, deadline = [], time.perf_counter() + seconds
    while len(latencies) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def _tf_function(model, images: np.ndarray, jit_compile: bool = False):
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
    x = tf.constant(images)
    return lambda: function(x).numpy()


def _keras(model, images: np.ndarray, threads: int):
    """The model as a user builds it, `model(x, training=False)` in a tf.function (what `predict_on_batch`
    runs too, without its per-call data-adapter overhead)."""
    return _tf_function(model, images)


def _keras_folded(model, images: np.ndarray, threads: int):
    from keras_tinynet.inference import fold_batch_norm

    return _tf_function(fold_batch_norm(model), images)


def _keras_xla(model, images: np.ndarray, threads: int):
    return _tf_function(model, images, jit_compile=True)


def _optimized(model, images: np.ndarray, threads: int):
    from keras_tinynet.inference import optimize_for_inference

    return _tf_function(optimize_for_inference(model), images)


def _compiled(model, images: np.ndarray, threads: int):
    from keras_tinynet.compiled import compile_for_inference

    compiled = compile_for_inference(model, num_threads=threads)
    return lambda: compiled(images)


def _saved_model(path: str, images: np.ndarray, threads: int):
    """The serving_default signature of a SavedModel version directory (TensorFlow's threads are the process's)."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    x = tf.constant(images)
    return lambda: signature(images=x)["probabilities"].numpy()


def _tflite(path: str, images: np.ndarray, threads: int):
    """The interpreter with XNNPACK, its input resized to the batch where the file has another."""
    from keras_tinynet import export

    interpreter = export.make_interpreter(path, threads)
    (input_details,) = interpreter.get_input_details()
    if tuple(input_details["shape"]) != images.shape:
        interpreter.resize_tensor_input(input_details["index"], images.shape)
    interpreter.allocate_tensors()
    (output_details,) = interpreter.get_output_details()

    def run():
        interpreter.set_tensor(input_details["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(output_details["index"])

    return run


def _onnxruntime(path: str, images: np.ndarray, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images}
    return lambda: session.run(None, feed)[0]


def _openvino(path: str, images: np.ndarray, threads: int):
    """OpenVINO on the ONNX file, its batch made static (what OpenVINO's latency guide advises)."""
    import openvino

    core = openvino.Core()
    model = core.read_model(path)
    model.reshape({model.inputs[0].get_any_name(): list(images.shape)})
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    request = core.compile_model(model, "CPU", config).create_infer_request()

    def run():
        request.infer({0: images}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How one runtime runs a model: `make(model, images, threads)` in process where `export` is None, else
    `make(path, images, threads)` on the file of kind `export` (`write_export`); `package`, beyond
    TensorFlow, runs it and `extra` installs it."""

    export: str | None
    make: Callable[..., Callable[[], np.ndarray]]
    package: str | None = None
    extra: str | None = None


# The one table of runtimes, in the order the benchmark reports them.
RUNTIME_TABLE = {
    "keras": Runtime(None, _keras),
    "keras_folded": Runtime(None, _keras_folded),
    "keras_xla": Runtime(None, _keras_xla),
    "saved_model": Runtime("saved_model", _saved_model),
    "tflite": Runtime("tflite", _tflite),
    "onnxruntime": Runtime("onnx", _onnxruntime, "onnxruntime", "export"),
    "openvino": Runtime("onnx", _openvino, "openvino", "bench"),
    "optimized": Runtime(None, _optimized),
    "compiled": Runtime(None, _compiled),
}
RUNTIMES = tuple(RUNTIME_TABLE)
EXPORT_KINDS = tuple(dict.fromkeys(r.export for r in RUNTIME_TABLE.values() if r.export))
EXPORTERS = {"onnx": ("tf2onnx", "export")}  # the package beyond TensorFlow that writes a kind, and its extra


def check_runtime(runtime: str, exporting: bool = True) -> None:
    """A ValueError for a runtime this module does not know, an ImportError for one whose package (or, where
    `exporting`, its exporter's) is missing."""
    if runtime not in RUNTIME_TABLE:
        raise ValueError(f"`runtime` must be one of {', '.join(RUNTIMES)}; received runtime={runtime!r}.")
    spec = RUNTIME_TABLE[runtime]
    needed = [(spec.package, spec.extra)] if spec.package else []
    if exporting and spec.export in EXPORTERS:
        needed.insert(0, EXPORTERS[spec.export])
    for package, extra in needed:
        if importlib.util.find_spec(package) is None:
            raise ImportError(
                f"`runtime`={runtime!r} needs {package}, which is not installed: "
                f'pip install "keras_tinynet[{extra}]" (or choose one of {", ".join(RUNTIMES)}).'
            )


def in_process_runner(model, runtime: str, images: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    """A call running `model` on `images` in an in-process runtime (`export_kind(runtime)` is None)."""
    check_runtime(runtime)
    if RUNTIME_TABLE[runtime].export is not None:
        raise ValueError(f"`runtime`={runtime!r} runs an exported {RUNTIME_TABLE[runtime].export} file, not the model.")
    return RUNTIME_TABLE[runtime].make(model, images, threads)


def write_export(exportable, kind: str, path: str, batch_size: int) -> str:
    """Writes the file of `kind` ("tflite" for `batch_size`, "onnx" for any batch, "saved_model") to `path`,
    as the package's exports build it, and returns what `file_runner` opens (a SavedModel: its version)."""
    from keras_tinynet import export

    if kind == "tflite":
        return export.export_tflite(exportable, path, batch_size=batch_size)
    if kind == "onnx":
        return export.export_onnx(exportable, path)
    return export.export_saved_model(exportable, path, version=1)


def file_runner(runtime: str, path: str, images: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    """A call running the exported file (or SavedModel directory) `path` on `images` in `runtime`; the file
    may come from another exporter (timm's ONNX, kimm's TFLite) where the runtime can read it."""
    check_runtime(runtime, exporting=False)
    if RUNTIME_TABLE[runtime].export is None:
        raise ValueError(f"`runtime`={runtime!r} runs the Keras model in process, not a file.")
    return RUNTIME_TABLE[runtime].make(path, images, threads)


def export_kind(runtime: str) -> str | None:
    """The kind of file `runtime` runs ("saved_model", "tflite", "onnx"), None for the in-process ones."""
    check_runtime(runtime, exporting=False)
    return RUNTIME_TABLE[runtime].export


def exportable_of(model, image_size: int):
    """`model` as the package's exports take it (any Keras classifier on [0, 255] images, numbered labels)."""
    from keras_tinynet.export import Exportable

    classes = model.output_shape[-1]
    return Exportable(model=model, spec=None, image_size=image_size, labels=tuple(map(str, range(classes))))


def runner(model, runtime: str, images: np.ndarray, threads: int, workdir: str | None = None):
    """A call that runs one batch, `images` [n, size, size, 3], through `model` in `runtime` and returns the
    output. Exported runtimes write their file into a new directory in `workdir` (kept), or in a temporary
    directory removed with the call where `workdir` is None."""
    check_runtime(runtime)
    images = np.ascontiguousarray(images, np.float32)
    kind = RUNTIME_TABLE[runtime].export
    if kind is None:
        return RUNTIME_TABLE[runtime].make(model, images, threads)
    prefix = "keras_tinynet_latency-"
    temporary = tempfile.TemporaryDirectory(prefix=prefix) if workdir is None else None
    directory = tempfile.mkdtemp(prefix=prefix, dir=workdir) if temporary is None else temporary.name
    path = os.path.join(directory, f"{model.name}.{images.shape[0]}.{kind}")
    exported = write_export(exportable_of(model, images.shape[1]), kind, path, images.shape[0])
    run = RUNTIME_TABLE[runtime].make(exported, images, threads)
    if temporary is None:
        return run

    def run_beside_its_directory():
        return run()

    run_beside_its_directory.directory = temporary  # removed when the call is garbage-collected
    return run_beside_its_directory


@dataclasses.dataclass(frozen=True)
class Latency:
    """Latency of one batch of a model in a runtime, over `runs` timed calls."""

    runtime: str
    batch_size: int
    threads: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def measure_latency(
    model,
    runtime: str = "tflite",
    batch_size: int = 1,
    threads: int | None = None,
    seconds: float = 1.0,
    min_runs: int = 10,
    warmup: int = 3,
    image_size: int | None = None,
) -> Latency:
    """Times `model` on random images [batch_size, image_size, image_size, 3] in `runtime`, `threads`
    threads (default: the cores this process may use), for `seconds` and at least `min_runs` calls after
    `warmup` untimed ones. `image_size` defaults to the model's input size."""
    check_runtime(runtime)
    for name, value, least in (("batch_size", batch_size, 1), ("min_runs", min_runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"`{name}` must be an integer >= {least}; received {name}={value!r}.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"`threads` must be a positive integer or None; received threads={threads!r}.")
    if not seconds >= 0:
        raise ValueError(f"`seconds` must be >= 0; received seconds={seconds!r}.")
    size = image_size or model.input_shape[1]
    if size is None:
        raise ValueError(f"`image_size` is required: the model {model.name!r} takes any image size.")
    threads = threads or machine()["affinity"]
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype(np.float32)
    times = time_calls(runner(model, runtime, images, threads), seconds, min_runs, warmup)
    median, p10, p90 = (float(value) for value in np.percentile(times, [50, 10, 90]))
    return Latency(runtime, batch_size, threads, median, p10, p90, len(times))
