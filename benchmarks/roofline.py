"""Both sides of the roofline: the machine's float32 matmul peak and streaming bandwidth, the bytes a model
moves per image, and the bound min(peak, intensity x bandwidth) that a measured rate is a share of.

FLOPs are 2 x multiply-adds throughout, as in the matmul peak's share.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

from keras_tinynet.latency import time_calls

FLOAT32_BYTES = 4


def matmul_peak(threads: int) -> dict:
    """Best float32 GFLOP/s of square matrix multiplies (2 n^3 per product) in TensorFlow and PyTorch
    (where torch is already imported: after TensorFlow it crashes on this stack)."""
    import tensorflow as tf

    results = {}
    for n in (1024, 2048):
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        product = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        best = min(time_calls(lambda product=product: product().numpy(), 2.0, 5, 2))
        results[f"tensorflow_{n}"] = 2 * n**3 / best / 1e6
    torch = sys.modules.get("torch")
    if torch is not None:
        for n in (1024, 2048):
            a, b = torch.randn(n, n), torch.randn(n, n)
            best = min(time_calls(lambda a=a, b=b: torch.mm(a, b), 2.0, 5, 2))
            results[f"torch_{n}"] = 2 * n**3 / best / 1e6
    return {"gflop_per_s": max(results.values()), "by_framework_and_size": results, "threads": threads}


def last_level_cache_bytes(default: int = 32 * 2**20) -> int:
    """The largest CPU cache of cpu0 as Linux describes it (sysfs), else `default`."""
    sizes = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, index, "size")) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes, default=default)


def stream_bandwidth(repeats: int = 10) -> dict:
    """STREAM-like copy (a = b) and triad (a = b + s c) in GB/s over float32 arrays of 4x the last-level
    cache each, so that every pass goes to memory; best of `repeats`. PyTorch's kernels where torch is
    already imported (on torch's threads), numpy's (one thread) otherwise. Triad is the roofline's bandwidth."""
    elements = 4 * last_level_cache_bytes() // FLOAT32_BYTES
    torch = sys.modules.get("torch")  # never imported here: after TensorFlow it crashes on this stack
    if torch is not None:
        a, b, c = (torch.rand(elements) for _ in range(3))
        kernels = {"copy": (lambda: a.copy_(b), 2), "triad": (lambda: torch.add(b, c, alpha=3.0, out=a), 3)}
        library, threads = "torch", torch.get_num_threads()
    else:
        import numpy as np

        a, b, c = (np.random.rand(elements).astype(np.float32) for _ in range(3))
        kernels = {
            "copy": (lambda: np.copyto(a, b), 2),
            "triad": (lambda: (np.multiply(c, 3.0, out=a), np.add(a, b, out=a)), 5),  # two passes
        }
        library, threads = "numpy", 1
    results = {}
    for name, (kernel, arrays) in kernels.items():
        kernel()
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            kernel()
            best = min(best, time.perf_counter() - start)
        results[f"{name}_gb_per_s"] = arrays * elements * FLOAT32_BYTES / best / 1e9
    return {
        "gb_per_s": results["triad_gb_per_s"],
        **results,
        "array_mib": elements * FLOAT32_BYTES / 2**20,
        "library": library,
        "threads": threads,
    }


@dataclasses.dataclass(frozen=True)
class Traffic:
    """Bytes one image moves through a model (float32): activations per image and weights per batch."""

    activation_bytes: float  # each layer output written once and read by each consumer, per image
    weight_bytes: float  # every variable read once per batch

    def bytes_per_image(self, batch: int) -> float:
        return self.activation_bytes + self.weight_bytes / batch


def keras_traffic(model) -> Traffic:
    """The Traffic of a functional Keras model from its graph: for every node, its inputs read and its
    outputs written (the model's input images are read, not written). An activation whose input is the
    output of a convolution or dense layer read by nothing else moves nothing: runtimes apply it in that
    layer's kernel before writing (XNNPACK, oneDNN, ONNX Runtime and OpenVINO all fuse it). Give it the
    graph the runtimes run (`optimize_for_inference(model)`: BN folded, no Dropout) for the bytes they move."""
    import keras

    from keras_tinynet import _compat
    from keras_tinynet.inference.layer_graph import LayerGraph

    def elements(tensor) -> int:
        return math.prod(dim for dim in tensor.shape[1:])

    graph = LayerGraph(model)  # without the input nodes: the images are read, not written
    fusing = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    activations = 0
    for node in graph.nodes:
        if isinstance(node.operation, (keras.layers.ReLU, keras.layers.Activation)) and len(node.input_tensors) == 1:
            (tensor,) = node.input_tensors
            if isinstance(_compat.producer(tensor), fusing) and len(graph.readers[id(tensor)]) == 1:
                continue
        activations += sum(elements(t) for t in node.input_tensors)
        activations += sum(elements(t) for t in node.output_tensors)
    weights = sum(math.prod(variable.shape) for variable in model.weights)
    return Traffic(float(activations * FLOAT32_BYTES), float(weights * FLOAT32_BYTES))


def roofline(macs: float, traffic: Traffic, batch: int, peak_gflop_per_s: float, bandwidth_gb_per_s: float) -> dict:
    """Arithmetic intensity (FLOP/byte), the roofline bound in images/s and which side bounds it."""
    flops = 2 * macs
    intensity = flops / traffic.bytes_per_image(batch)
    bound_gflop_per_s = min(peak_gflop_per_s, intensity * bandwidth_gb_per_s)
    return {
        "bytes_per_image": traffic.bytes_per_image(batch),
        "flop_per_byte": intensity,
        "roofline_images_per_s": bound_gflop_per_s * 1e9 / flops,
        "bound": "memory" if intensity * bandwidth_gb_per_s < peak_gflop_per_s else "compute",
    }
