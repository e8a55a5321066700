"""Timing the prepared runners of a group in interleaved rounds, and what each timing becomes (a row of
the tables, with its share of the peak and of its roofline bound)."""

from __future__ import annotations

import contextlib
import dataclasses

import roofline
import tables
from catalogue import Entry

from keras_tinynet.latency import time_calls


@dataclasses.dataclass
class Runner:
    """One (model, runtime, batch) ready to time: `call()` runs the batch and returns its output."""

    entry: Entry
    runtime: str
    batch: int
    image_size: int
    macs: float
    call: object
    timer: object = None  # (seconds, min_runs, warmup) -> latencies, where another process times itself
    max_abs_diff: float = 0.0
    output_range: float = 0.0
    reference_runtime: str = ""
    note: str = ""

    def latencies(self, seconds: float, min_runs: int, warmup: int) -> list[float]:
        if self.timer:
            return self.timer(seconds, min_runs, warmup)
        return time_calls(self.call, seconds, min_runs, warmup)


RAISED_MALLOC_THRESHOLD = 2**31 - 1
GLIBC_INITIAL_THRESHOLD = 128 * 1024  # M_MMAP_THRESHOLD's and M_TRIM_THRESHOLD's values at start


def set_malloc_thresholds(bytes_: int) -> None:
    """Sets glibc's mmap and trim thresholds (mallopt), where glibc is the allocator; a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, ctypes.c_int(bytes_))  # M_MMAP_THRESHOLD
        libc.mallopt(-1, ctypes.c_int(bytes_))  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def raised_malloc_thresholds():
    """glibc's mmap and trim thresholds raised inside, back to their initial 128 KiB after.

    PyTorch's CPU allocator takes each large activation from malloc; under glibc's defaults those above
    32 MiB come from fresh mmap pages, returned after use, so every batch-32 forward pass page-faults its
    activations again (timm ghostnet_100: 80 img/s; 139 img/s with the thresholds raised, as jemalloc or
    tcmalloc would). TensorFlow keeps its buffers and is unaffected (measured: 200 img/s both ways).
    glibc's own raising of the mmap threshold stays off after any mallopt: `torch` (glibc's defaults, as
    timm runs) is timed before the first raise.
    """
    set_malloc_thresholds(RAISED_MALLOC_THRESHOLD)
    try:
        yield
    finally:
        set_malloc_thresholds(GLIBC_INITIAL_THRESHOLD)


def measure(runners: list[Runner], config) -> dict[int, list[float]]:
    """Latencies of every runner, in `config.rounds` interleaved rounds (so that drift of the machine hits
    all alike); `torch` first and on its own, with glibc's default malloc."""
    latencies = {id(runner): [] for runner in runners}
    per_round = -(-config.min_runs // config.rounds)
    for runner in runners:
        if runner.runtime == "torch":
            latencies[id(runner)] = runner.latencies(config.seconds, config.min_runs, config.warmup)
    interleaved = [runner for runner in runners if runner.runtime != "torch"]
    with raised_malloc_thresholds():
        for round_index in range(config.rounds):
            for runner in interleaved:
                warmup = config.warmup if round_index == 0 else 1
                latencies[id(runner)] += runner.latencies(config.seconds / config.rounds, per_round, warmup)
            print(f"round {round_index + 1}/{config.rounds} done", flush=True)
    return latencies


def measurement(runner: Runner, times: list[float], traffic, peak: float, bandwidth: float) -> tables.Measurement:
    import numpy as np

    median, p90 = float(np.median(times)), float(np.percentile(times, 90))
    rate = runner.batch / median * 1e3
    bound = roofline.roofline(runner.macs, traffic, runner.batch, peak, bandwidth)
    return tables.Measurement(
        model=runner.entry.model,
        network=runner.entry.network,
        implementation=runner.entry.implementation,
        runtime=runner.runtime,
        batch=runner.batch,
        image_size=runner.image_size,
        macs=runner.macs,
        median_ms=median,
        p90_ms=p90,
        runs=len(times),
        images_per_s=rate,
        gflop_per_s=2 * runner.macs * rate / 1e9,
        peak_share=2 * runner.macs * rate / 1e9 / peak,
        **bound,
        roofline_share=rate / bound["roofline_images_per_s"],
        max_abs_diff=runner.max_abs_diff,
        output_range=runner.output_range,
        reference_runtime=runner.reference_runtime,
        note=runner.note,
    )
