"""keras_cv_attention_models' GhostNet_100 as its users run it on TensorFlow >= 2.16: under tf-keras
(TF_USE_LEGACY_KERAS=1, set by `runners.KcamWorker`), the model called in a tf.function. Answers the JSON
requests of `KcamWorker` on stdin, one line each, prefixed with MARK on stdout.

  python benchmarks/kcam_worker.py THREADS
"""

from __future__ import annotations

import json
import sys
import traceback

from _common import he_normal_kernels

from keras_tinynet.latency import time_calls

MARK = "KCAM_WORKER "  # before each answer on stdout, where the package also prints


def main(threads: int) -> None:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from keras_cv_attention_models import ghostnet

    model = ghostnet.GhostNet_100(pretrained=None)
    he_normal_kernels(model)
    function = tf.function(lambda x: model(x, training=False))
    inputs = {}

    def images(path):
        if path not in inputs:
            inputs[path] = tf.constant(np.load(path))
        return inputs[path]

    def answer(request):
        if request["op"] == "predict":
            output = request["inputs"] + ".kcam.npy"
            np.save(output, function(images(request["inputs"])).numpy())
            return {"output": output}
        if request["op"] == "time":
            x = images(request["inputs"])
            call = lambda: function(x).numpy()  # noqa: E731
            return {"latencies_ms": time_calls(call, request["seconds"], request["min_runs"], request["warmup"])}
        if request["op"] == "tflite":
            with open(request["path"], "wb") as handle:
                handle.write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
            return {"path": request["path"]}
        raise ValueError(f"unknown request {request!r}")

    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except Exception as error:  # reported to the parent, which records it
            traceback.print_exc()
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(MARK + json.dumps(reply), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
