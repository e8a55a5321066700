"""What the benchmarks share: timing, the machine's description and the weights the models get (no flags,
no TensorFlow import)."""

from __future__ import annotations

import os
import platform
import time


def time_calls(call, seconds: float, min_runs: int, warmup: int) -> list[float]:
    """Latencies in milliseconds of `call()`, after `warmup` calls, for `seconds` and at least `min_runs`."""
    for _ in range(warmup):
        call()
    latencies, deadline = [], time.perf_counter() + seconds
    while len(latencies) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def he_normal_kernels(model, seed: int = 0) -> None:
    """Draws every convolution and dense kernel of a Keras (or tf-keras) model from He's normal
    distribution, variance 2 / fan-in, in place.

    As built, the models' activations shrink layer by layer (GhostNet 1.0x's pooled features ~1e-7,
    TinyNet-A's ~1e-20): the softmax is uniform to 1e-10, so no comparison of outputs between runtimes
    could fail, and values drift towards the subnormal range, where some CPUs slow down. Variance-preserving
    weights carry a signal through, as trained weights do; speed does not otherwise depend on them.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        depthwise = "Depthwise" in type(layer).__name__  # tf-keras names its kernel depthwise_kernel
        kernel = getattr(layer, "depthwise_kernel" if hasattr(layer, "depthwise_kernel") else "kernel", None)
        if kernel is None or len(kernel.shape) not in (2, 4):
            continue
        shape = tuple(kernel.shape)
        fan_in = shape[0] * shape[1] if depthwise else int(np.prod(shape[:-1]))
        kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32"))
