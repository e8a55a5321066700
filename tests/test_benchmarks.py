"""The benchmark scripts run end to end on a small configuration and write what they promise.

They assert files, fields and consistency, never speed: speed is what the benchmarks print.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", name), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


@pytest.mark.slow
def test_inference_benchmark_writes_table_json_and_plot(tmp_path):
    result = run_benchmark(
        "inference.py",
        "--models",
        "ghostnet_d",
        "--runtimes",
        "keras_folded,tflite",
        "--compare",
        "mobilenet_v3_small",
        "--batch_sizes",
        "1",
        "--seconds",
        "0.05",
        "--min_runs",
        "2",
        "--warmup",
        "1",
        "--output_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "inference.json").read_text())
    rows = {(r["model"], r["runtime"], r["batch"]): r for r in report["results"]}
    expected = {(m, rt, 1) for m in ("ghostnet_d", "mobilenet_v3_small") for rt in ("keras_folded", "tflite")}
    assert set(rows) == expected
    peak = report["context"]["peak"]["gflop_per_s"]
    for row in rows.values():
        assert row["runs"] >= 2 and 0 < row["median_ms"] <= row["p90_ms"] * 1.0001
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["median_ms"] * 1e3)
        assert row["peak_share"] == pytest.approx(2 * row["macs"] * row["images_per_s"] / 1e9 / peak)
    assert rows["ghostnet_d", "tflite", 1]["macs"] == pytest.approx(52.0e6, rel=0.01)  # the spec's count
    assert rows["mobilenet_v3_small", "tflite", 1]["macs"] == pytest.approx(56e6, rel=0.05)  # published 56M
    (target,) = report["targets"]  # only the TFLite latency target has both sides in this configuration
    assert target["runtime"] == "tflite" and target["goal"] == 1.0
    assert target["value"] == pytest.approx(
        rows["mobilenet_v3_small", "tflite", 1]["median_ms"] / rows["ghostnet_d", "tflite", 1]["median_ms"]
    )
    table = (tmp_path / "inference.md").read_text()
    assert "| ghostnet_d | keras_folded | 52 | " in table and "MobileNetV3Small / GhostNetD TFLite latency" in table
    assert (tmp_path / "inference.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_inference_benchmark_rejects_unknown_names(tmp_path):
    result = run_benchmark("inference.py", "--models", "ghostnet_z", "--output_dir", str(tmp_path))
    assert result.returncode != 0
    assert "--models: unknown ['ghostnet_z']; allowed: ghostnet_a, ghostnet_b" in result.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_train_step_benchmark_times_fit_steps(tmp_path):
    result = run_benchmark(
        "train_step.py",
        "--models",
        "ghostnet_b",
        "--batch_size",
        "2",
        "--steps",
        "2",
        "--warmup_steps",
        "1",
        "--output_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "train_step.json").read_text())
    (row,) = report["results"]
    assert row["model"] == "ghostnet_b" and row["config"] == "cpu" and row["image_size"] == 205
    assert row["steps"] == 2 and row["images_per_s"] == pytest.approx(2 / row["median_ms"] * 1e3)
    assert report["notes"] == ["gpu: skipped, no GPU visible to TensorFlow on this machine."]
    assert "| ghostnet_b | cpu | float32 | no | 205 |" in (tmp_path / "train_step.md").read_text()
