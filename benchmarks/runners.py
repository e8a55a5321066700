"""One factory per runtime: each returns a callable that runs one batch, already on its input, and
returns the output as a numpy array (so that every path's numbers can be compared with the others').

Runtimes (each path as its users would set it up, `threads` threads):
  keras, keras_folded, keras_xla, optimized   a Keras model in a tf.function (see `tf_function_runner`)
  compiled        keras_tinynet.compile_for_inference(model): the package's one call for in-process inference
  saved_model     export.export_saved_model, reloaded, its serving_default signature
  tflite          a .tflite file in the TFLite interpreter with XNNPACK
  onnxruntime     an .onnx file, CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads = threads
  openvino        the same .onnx file, reshaped to the batch, CPU plugin, PERFORMANCE_HINT LATENCY, float32
                  (INFERENCE_PRECISION_HINT f32: on CPUs with AVX-512 BF16 OpenVINO's default is bfloat16)
  torch           timm in eager mode under inference_mode, NCHW, glibc's default malloc (timm's default)
  torch_tuned     + channels_last and the malloc thresholds raised
  torch_compile   + torch.compile (inductor; needs a C++ compiler)
  tf_keras        keras_cv_attention_models under tf-keras, in its own process (`KcamWorker`)
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
from kcam_worker import MARK


def tf_function_runner(model, runtime: str, x):
    """`keras`: the model as a user builds it, `model(x, training=False)` in a tf.function (what
    `predict_on_batch` runs too, without its per-call data-adapter overhead); `keras_folded`:
    keras_tinynet.fold_batch_norm(model); `keras_xla`: jit_compile=True; `optimized`:
    keras_tinynet.inference.optimize_for_inference(model)."""
    import tensorflow as tf

    from keras_tinynet import inference

    if runtime == "keras_folded":
        model = inference.fold_batch_norm(model)
    elif runtime == "optimized":
        model = inference.optimize_for_inference(model)
    function = tf.function(lambda images: model(images, training=False), jit_compile=runtime == "keras_xla")
    x = tf.constant(x)
    return lambda: function(x).numpy()


def compiled_runner(model, x, threads: int):
    import keras_tinynet

    compiled = keras_tinynet.compile_for_inference(model, num_threads=threads)
    return lambda: compiled(x)


def saved_model_runner(path: str, x):
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    x = tf.constant(x)
    return lambda: signature(images=x)["probabilities"].numpy()


def tflite_runner(path: str, x, threads: int):
    """The interpreter with XNNPACK, its input resized to the batch where the file has a dynamic batch."""
    from keras_tinynet import export

    interpreter = export.make_interpreter(path, threads)
    (input_details,) = interpreter.get_input_details()
    if tuple(input_details["shape"]) != x.shape:
        interpreter.resize_tensor_input(input_details["index"], x.shape)
    interpreter.allocate_tensors()
    (output_details,) = interpreter.get_output_details()

    def run():
        interpreter.set_tensor(input_details["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(output_details["index"])

    return run


def onnxruntime_runner(path: str, x, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)[0]


def openvino_runner(path: str, x, threads: int):
    """OpenVINO on the ONNX file, its batch made static (what OpenVINO's latency guide advises)."""
    import openvino

    core = openvino.Core()
    model = core.read_model(path)
    model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def run():
        request.infer({0: x}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


def torch_runner(model, runtime: str, x):
    """timm's model: `torch` as it runs by default, `torch_tuned` channels_last (the malloc thresholds are
    raised for all but `torch`, by the caller), `torch_compile` the tuned model through torch.compile."""
    import torch

    x = torch.from_numpy(x)
    if runtime != "torch":  # a copy: `.to` converts a module in place
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if runtime == "torch_compile":
        model = torch.compile(model)

    def run():
        with torch.inference_mode():
            return model(x).numpy()

    return run


def timm_onnx(model, path: str, size: int) -> str:
    """timm's own ONNX export (timm.utils.onnx.onnx_export: torch.onnx.export, dynamic batch)."""
    from timm.utils.onnx import onnx_export

    onnx_export(model, path, batch_size=1, input_size=(3, size, size))
    return path


class KcamWorker:
    """keras_cv_attention_models' GhostNet_100 in a process of its own under tf-keras
    (TF_USE_LEGACY_KERAS=1 cannot share a process with Keras 3), timed there by the same `time_calls`.

    It answers JSON lines on stdin: the output for an input file, latencies for an input file, and the
    TFLite conversion its README shows (TFLiteConverter.from_keras_model), which this process then times.
    """

    def __init__(self, threads: int, onednn: bool):
        env = {
            **os.environ,
            "TF_USE_LEGACY_KERAS": "1",
            "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        env.pop("KECAM_BACKEND", None)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kcam_worker.py")
        self.process = subprocess.Popen(
            [sys.executable, script, str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARK):
                answer = json.loads(line[len(MARK) :])
                if "error" in answer:
                    raise RuntimeError(f"keras_cv_attention_models worker: {answer['error']}")
                return answer
        raise RuntimeError(f"keras_cv_attention_models worker exited with {self.process.wait()}")

    def runner(self, inputs_path: str):
        return lambda: np.load(self.ask(op="predict", inputs=inputs_path)["output"])

    def timer(self, inputs_path: str):
        def time_remotely(seconds: float, min_runs: int, warmup: int) -> list[float]:
            answer = self.ask(op="time", inputs=inputs_path, seconds=seconds, min_runs=min_runs, warmup=warmup)
            return answer["latencies_ms"]

        return time_remotely

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
