"""What the benchmarks share beyond their flags: the machine and the command as their reports state them,
and the weights the models get (no TensorFlow import). Timing is keras_tinynet.latency's."""

from __future__ import annotations

import datetime
import os
import sys

from keras_tinynet import latency


def machine_line() -> str:
    """The machine as the reports name it: "<CPU model>, <n> cores"."""
    described = latency.machine()
    return f"{described['cpu']}, {described['cores']} cores"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    """The command that ran this benchmark, as the reports quote it."""
    return f"python benchmarks/{os.path.basename(sys.argv[0])} " + " ".join(sys.argv[1:])


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
