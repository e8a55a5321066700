"""The runtimes of the other implementations, which keras_tinynet.latency (the package's deployment
runtimes: Keras forms, compiled, saved_model, tflite, onnxruntime, openvino) does not run:

  torch           timm in eager mode under inference_mode, NCHW, glibc's default malloc (timm's default)
  torch_tuned     + channels_last and the malloc thresholds raised (measuring.raised_malloc_thresholds)
  torch_compile   + torch.compile (inductor; needs a C++ compiler)
  tf_keras        keras_cv_attention_models under tf-keras, in its own process (`KcamWorker`)

Each factory returns a callable that runs one batch, already on its input, and returns the output as a
numpy array (so that every path's numbers can be compared with the others').
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
from kcam_worker import MARK


def torch_runner(model, runtime: str, x):
    """timm's model: `torch` as it runs by default, `torch_tuned` channels_last (the malloc thresholds are
    raised for all but `torch`, by `measuring.measure`), `torch_compile` the tuned model through torch.compile."""
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
    (TF_USE_LEGACY_KERAS=1 cannot share a process with Keras 3), timed there by the same
    `keras_tinynet.latency.time_calls`.

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
