"""What a configuration costs before it is trained: FLOPs and parameters (the package's counter), its measured
latency in a deployment runtime (`keras_tinynet.latency`, cached by spec), and the bytes its graph moves.

Latency needs no trained weights, so a latency budget is met before any training. TensorFlow is imported only
when a latency is measured.
"""

from __future__ import annotations

import math

from keras_tinynet.counting import count
from keras_tinynet.spec import NetworkSpec
from keras_tinynet.twist.sampling import spec_key

FLOAT32_BYTES = 4


def flops(spec: NetworkSpec) -> float:
    """The budget's FLOPs: the package's counter, with the 1000-class top like every FLOPs figure it prints."""
    return float(count(spec).flops)


class Latency:
    """Measured latency (median ms) of a spec in a runtime, each spec measured once (cached by its digest).

    `cache` maps spec digests to measurements (`to_dict()` of `keras_tinynet.latency.Latency` plus the bytes the
    graph moves), so that a rerun of a search reads the latencies it planned with instead of measuring again.
    """

    def __init__(self, runtime: str, batch_size: int = 1, threads: int | None = None, seconds: float = 1.0, cache=None):
        self.runtime, self.batch_size, self.threads, self.seconds = runtime, batch_size, threads, seconds
        self.cache: dict[str, dict] = dict(cache or {})

    def __call__(self, spec: NetworkSpec) -> float:
        return self.measure(spec)["median_ms"]

    def measure(self, spec: NetworkSpec) -> dict:
        key = spec_key(spec)
        if key not in self.cache:
            self.cache[key] = _measure(spec, self.runtime, self.batch_size, self.threads, self.seconds)
        return self.cache[key]

    def settings(self) -> dict:
        return {"runtime": self.runtime, "batch_size": self.batch_size, "threads": self.threads}


def _measure(spec: NetworkSpec, runtime: str, batch_size: int, threads: int | None, seconds: float) -> dict:
    import keras

    from keras_tinynet import latency
    from keras_tinynet.models import build

    model = build(spec, weights=None)
    measured = latency.measure_latency(model, runtime=runtime, batch_size=batch_size, threads=threads, seconds=seconds)
    result = {**measured.to_dict(), **graph_bytes(model)}
    del model
    keras.backend.clear_session(free_memory=True)
    return result


def graph_bytes(model) -> dict:
    """Megabytes (float32) one image writes as layer outputs, and the weights a batch reads: the traffic that,
    more than FLOPs, sets the time of small networks on CPUs."""
    activations = sum(
        math.prod(tensor.shape[1:])
        for layer in model.layers
        if not layer.__class__.__name__ == "InputLayer"
        for tensor in _outputs(layer)
    )
    weights = sum(math.prod(variable.shape) for variable in model.weights)
    return {
        "activation_mb": round(activations * FLOAT32_BYTES / 1e6, 3),
        "weight_mb": round(weights * FLOAT32_BYTES / 1e6, 3),
    }


def _outputs(layer) -> list:
    output = layer.output
    return list(output) if isinstance(output, (list, tuple)) else [output]


def figures(spec: NetworkSpec) -> dict:
    """FLOPs and parameters as the package counts them (1000-class top)."""
    counts = count(spec)
    return {"flops": counts.flops, "params": counts.params}
