"""What the benchmarks share: timing and the machine's description (no flags, no TensorFlow)."""

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
