"""TensorFlow's oneDNN CPU kernels, turned on when keras_tinynet is imported before TensorFlow.

TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX. On an AVX2 CPU
they made GhostNet100 inference 1.9x and GhostNet-B training 1.67x faster (README, "Performance";
`benchmarks/onednn.py` measures a plain `import keras_tinynet` against both settings). The switch is
an environment variable TensorFlow reads once, at its import: later, only a warning can help.
"""

from __future__ import annotations

import os
import sys
import warnings

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
CPU_FLAGS_TENSORFLOW_CHECKS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


def tensorflow_turns_it_on() -> bool | None:
    """Whether TensorFlow turns oneDNN on by itself on this CPU; None where the CPU flags cannot be read."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return None
    return any(flag in flags for flag in CPU_FLAGS_TENSORFLOW_CHECKS)


def turn_on() -> None:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set; warns if TensorFlow was imported first with it off."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(VARIABLE, "1")
    elif VARIABLE not in os.environ and tensorflow_turns_it_on() is False:
        warnings.warn(
            f"TensorFlow was imported before keras_tinynet with its oneDNN CPU kernels off: set {VARIABLE}=1 "
            "before importing TensorFlow (or import keras_tinynet first) for 1.6-1.9x faster models on this CPU, "
            "or set it to 0 to keep them off and silence this warning.",
            stacklevel=2,
        )
