"""The machine a latency was measured on (CPU model, cores): recorded beside every measured latency
(`latency`, the twist's curves file) and compared when a latency curve is used elsewhere. Plain Python.
"""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """What a latency depends on beyond the model: the CPU model, its cores and those this process may use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 1
    return {"cpu": cpu, "cores": os.cpu_count(), "affinity": affinity, "platform": platform.platform()}
