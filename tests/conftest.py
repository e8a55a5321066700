"""Shared test set-up.

timm (torch) must be imported before Keras/TensorFlow in one process: the other order crashes
with a segmentation fault on this stack. Importing it here, first, keeps the parity tests in-process.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import keras_tinynet` does (keras_tinynet/_onednn.py)

try:
    import timm  # noqa: F401  (must come before keras)
    import torch  # noqa: F401
except ImportError:
    timm = None

import functools
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@functools.cache
def _built(variant: str, **kwargs):
    from keras_tinynet.models import VARIANTS

    return VARIANTS[variant](**kwargs)


@pytest.fixture(scope="session")
def build_cached():
    """Builds each (variant, arguments) once per session: building is the slow part of these tests."""

    def build(variant, **kwargs):
        return _built(variant, **kwargs)

    return build


def run_python(code: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs Python code in a fresh interpreter (another Keras backend, or a clean import state)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"subprocess failed:\nSTDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr[-4000:]}"
    return result
