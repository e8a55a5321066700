r"""Inference speed of keras_tinynet against the models users would pick instead, in one run.

  python benchmarks/inference.py                       # everything; prints its estimated time first
  python benchmarks/inference.py --models ghostnet_d --runtimes keras,tflite --compare mobilenet_v3_small

On the same random images and the same thread count it times (median and p90 latency, images/s at each
--batch_sizes) every deployment path a user would pick (keras_tinynet.latency and `runners` describe
each runtime):
  keras_tinynet's presets (GhostNet-A..D, GhostNet 1.0x, TinyNet-A..E by default): keras (as a user builds
    it), keras_folded, keras_xla, saved_model, tflite, onnxruntime and openvino on our ONNX export, and
    `optimized` (keras_tinynet.inference.optimize_for_inference, in a tf.function) and `compiled`
    (keras_tinynet.compile_for_inference: the one call a user's script makes for the fastest in-process form);
  keras.applications EfficientNetB0 and MobileNetV3Small/Large: keras, keras_folded, keras_xla, tflite,
    onnxruntime and openvino (through the same tf2onnx export as ours);
  timm in PyTorch: torch (default), torch_tuned, torch_compile, and timm's own ONNX export in onnxruntime
    and openvino (ghostnet_100; the TinyNets in torch_tuned and onnxruntime);
  the other Keras implementations of GhostNet 1.0x: kimm (keras, and its TFLite export) and
    keras_cv_attention_models (tf_keras, timed in its own process, and its README's TFLite conversion).
GhostNet 1.0x/B/D, EfficientNetB0 and MobileNetV3Small run every runtime; the other models fewer, to keep
the default run near 30 minutes on 2 cores. Each network is timed with all its implementations (and
GhostNet-B with EfficientNetB0, GhostNet-D with MobileNetV3Small) in --rounds interleaved rounds, so that
drift of the machine hits the paths compared alike (`catalogue.measurement_groups` says why not all at
once). In the same run it measures the float32 matmul peak and the streaming memory bandwidth, and gives
each measurement's share of the peak and of its roofline bound (`roofline`). Writes inference.json,
inference.md and inference.png to --output_dir.

The stages live beside it: `inference_config` (the flags, parsed once into a `Config`), `catalogue`
(what can be timed), `preparation` (builds, exports and runners), `measuring` (the interleaved rounds)
and `tables` (the report, its figure and the paper's data).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import platform
import tempfile
import time

import bench_flags
import catalogue
import measuring
import roofline
import tables
from _common import command_line, machine_line, utc_now
from absl import app, flags, logging
from inference_config import Config, define_flags
from op_counts import op_counts
from preparation import Preparation

from keras_tinynet.files import write_atomically


def print_estimate(selected, config: Config) -> dict:
    """The run's estimated time, printed before it starts."""
    estimate = catalogue.estimate_seconds(selected, list(config.batch_sizes), config.seconds)
    total = estimate["preparation_s"] + estimate["timing_s"]
    print(
        f"estimated run time: ~{math.ceil(total / 60)} min ({estimate['measurements']} measurements: "
        f"~{estimate['timing_s'] / 60:.0f} min timing, ~{estimate['preparation_s'] / 60:.0f} min builds and exports)",
        flush=True,
    )
    return estimate


def set_up_frameworks(selected, config: Config) -> None:
    """Threads and oneDNN as the flags ask, PyTorch imported first where timm runs (the other order crashes on
    this stack). Process-wide, and before the frameworks' first op: the benchmark's whole process is one run."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if config.onednn else "0"
    if any(entry.implementation == "timm" for entry, _ in selected):
        import timm  # noqa: F401  (before TensorFlow/Keras)
        import torch

        torch.set_num_threads(config.threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(config.tf_intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(config.tf_inter_op_threads)


def measure_groups(selected, config: Config, peak: dict, bandwidth: dict):
    """Every group prepared, timed and released in turn: (measurements, skipped paths, op counts)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="keras_tinynet_bench-") as workdir:
        preparation = Preparation(workdir, config)
        try:
            for group in catalogue.measurement_groups(selected):
                for entry, runtimes in group:
                    preparation.add(entry, runtimes)
                latencies = measuring.measure(preparation.runners, config)
                results += [
                    measuring.measurement(
                        runner,
                        latencies[id(runner)],
                        preparation.traffic[runner.entry.network],
                        peak["gflop_per_s"],
                        bandwidth["gb_per_s"],
                    )
                    for runner in preparation.runners
                ]
                preparation.runners.clear()  # their interpreters, sessions and buffers go before the next group
                gc.collect()
        finally:
            preparation.close()
        graphs = {name: op_counts(path) for name, path in preparation.graphs.items()}
    return results, preparation.skipped, graphs


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in (
        "tensorflow",
        "keras",
        "torch",
        "timm",
        "onnxruntime",
        "openvino",
        "tf2onnx",
        "ai-edge-litert",
        "kimm",
        "keras-cv-attention-models",
        "tf_keras",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def write_report(results, skipped, graphs, context: dict, output_dir: str) -> str:
    """inference.json, inference.md and inference.png in `output_dir`; returns the markdown."""
    checks = tables.targets(results)
    os.makedirs(output_dir, exist_ok=True)
    report = {
        "context": context,
        "results": [dataclasses.asdict(r) for r in results],
        "fastest_paths": tables.fastest_paths(results),
        "export_comparison": tables.export_comparison(results),
        "op_counts": graphs,
        "skipped": skipped,
        "targets": checks,
        "published_top1": tables.PUBLISHED_TOP1,
    }
    write_atomically(os.path.join(output_dir, "inference.json"), json.dumps(report, indent=1))
    markdown = tables.markdown(results, checks, context, graphs, skipped)
    write_atomically(os.path.join(output_dir, "inference.md"), markdown)
    tables.plot(results, os.path.join(output_dir, "inference.png"), context)
    return markdown


def main(argv):
    bench_flags.check_no_arguments(argv)
    config = Config.from_flags(flags.FLAGS)
    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel writer logs every save at INFO
    selected = config.plan()
    estimate = print_estimate(selected, config)
    set_up_frameworks(selected, config)
    started = time.perf_counter()
    peak = roofline.matmul_peak(config.threads)
    bandwidth = roofline.stream_bandwidth()
    print(f"float32 matmul peak: {peak['gflop_per_s']:.1f} GFLOP/s {peak['by_framework_and_size']}", flush=True)
    print(f"memory bandwidth: {bandwidth}", flush=True)
    results, skipped, graphs = measure_groups(selected, config, peak, bandwidth)
    for r in results:
        print(
            f"{r.model:20s} {r.runtime:13s} batch {r.batch:3d}: {r.median_ms:9.2f} ms median, "
            f"{r.images_per_s:8.1f} img/s, {r.peak_share:6.1%} of peak, {r.roofline_share:6.1%} of roofline, "
            f"max abs diff {r.max_abs_diff:.1e} (output range {r.output_range:.1e}) vs {r.reference_runtime}",
            flush=True,
        )
    context = {
        "date": utc_now(),
        "machine": machine_line(),
        "threads": config.threads,
        "onednn": config.onednn,
        "peak": peak,
        "bandwidth": bandwidth,
        "versions": versions(),
        "tf_threads": {"intra_op": config.tf_intra_op_threads, "inter_op": config.tf_inter_op_threads},
        "command": command_line(),
        "estimated_s": estimate,
        "took_s": time.perf_counter() - started,
        "published_top1_sources": tables.PUBLISHED_SOURCES,
    }
    print("\n" + write_report(results, skipped, graphs, context, config.output_dir))


if __name__ == "__main__":
    define_flags()
    app.run(main)
