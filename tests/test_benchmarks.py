"""The benchmark scripts run end to end on a small configuration and write what they promise, and their
table logic (fastest path, export comparison, targets, roofline, op counts) gives known answers on known
numbers.

They assert files, fields and consistency, never speed: speed is what the benchmarks print.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import op_counts  # noqa: E402
import roofline  # noqa: E402
import tables  # noqa: E402


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
        "keras_folded,tflite,onnxruntime",
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
    runtimes = ("keras_folded", "tflite", "onnxruntime")
    assert set(rows) == {(m, rt, 1) for m in ("ghostnet_d", "mobilenet_v3_small") for rt in runtimes}
    peak = report["context"]["peak"]["gflop_per_s"]
    bandwidth = report["context"]["bandwidth"]["gb_per_s"]
    assert bandwidth > 0
    for row in rows.values():
        assert row["runs"] >= 2 and 0 < row["median_ms"] <= row["p90_ms"] * 1.0001
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["median_ms"] * 1e3)
        assert row["peak_share"] == pytest.approx(2 * row["macs"] * row["images_per_s"] / 1e9 / peak)
        intensity = 2 * row["macs"] / row["bytes_per_image"]
        assert row["flop_per_byte"] == pytest.approx(intensity)
        bound = min(peak, intensity * bandwidth) * 1e9 / (2 * row["macs"])
        assert row["roofline_images_per_s"] == pytest.approx(bound)
        assert row["roofline_share"] == pytest.approx(row["images_per_s"] / bound)
        # every path computes the same outputs as the first (keras_folded) on the same images
        assert row["reference_runtime"] == "keras_folded" and row["max_abs_diff"] <= 1e-4 * row["output_range"] + 1e-7
    assert set(report["op_counts"]) == {
        f"{m} {kind}" for m in ("ghostnet_d", "mobilenet_v3_small") for kind in ("tflite", "onnx")
    }
    assert report["op_counts"]["ghostnet_d onnx"]["Conv"] > 50
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
    result = run_benchmark("inference.py", "--runtimes", "tflite,onnx", "--output_dir", str(tmp_path))
    assert result.returncode != 0
    assert "--runtimes: unknown ['onnx']; allowed: keras, keras_folded" in result.stderr
    assert not os.listdir(tmp_path)


def measurement(model, network, implementation, runtime, batch, images_per_s, macs=100e6):
    """A Measurement with known speed; the fields the tables do not read are placeholders."""
    return tables.Measurement(
        model=model,
        network=network,
        implementation=implementation,
        runtime=runtime,
        batch=batch,
        image_size=224,
        macs=macs,
        median_ms=batch / images_per_s * 1e3,
        p90_ms=batch / images_per_s * 1e3,
        runs=3,
        images_per_s=images_per_s,
        gflop_per_s=2 * macs * images_per_s / 1e9,
        peak_share=0.5,
        bytes_per_image=1e6,
        flop_per_byte=200.0,
        roofline_images_per_s=2 * images_per_s,
        bound="compute",
        roofline_share=0.5,
        max_abs_diff=0.0,
        output_range=1.0,
        reference_runtime=runtime,
    )


KNOWN = [
    measurement("ghostnet_100", "ghostnet_100", "keras_tinynet", "keras", 1, 40.0),
    measurement("ghostnet_100", "ghostnet_100", "keras_tinynet", "keras_folded", 1, 50.0),
    measurement("ghostnet_100", "ghostnet_100", "keras_tinynet", "tflite", 1, 250.0),
    measurement("ghostnet_100", "ghostnet_100", "keras_tinynet", "onnxruntime", 1, 120.0),
    measurement("ghostnet_100", "ghostnet_100", "keras_tinynet", "tflite", 32, 200.0),
    measurement("timm_ghostnet_100", "ghostnet_100", "timm", "torch", 1, 50.0),
    measurement("timm_ghostnet_100", "ghostnet_100", "timm", "onnxruntime", 1, 300.0),
    measurement("timm_ghostnet_100", "ghostnet_100", "timm", "torch_tuned", 32, 250.0),
    measurement("kimm_ghostnet_100", "ghostnet_100", "kimm", "keras", 1, 20.0),
    measurement("kimm_ghostnet_100", "ghostnet_100", "kimm", "tflite", 1, 125.0),
    measurement("ghostnet_b", "ghostnet_b", "keras_tinynet", "tflite", 32, 150.0, macs=300e6),
    measurement("ghostnet_b", "ghostnet_b", "keras_tinynet", "openvino", 32, 180.0, macs=300e6),
    measurement("efficientnet_b0", "efficientnet_b0", "keras.applications", "tflite", 32, 100.0, macs=386e6),
    measurement("efficientnet_b0", "efficientnet_b0", "keras.applications", "openvino", 32, 130.0, macs=386e6),
]


def test_fastest_paths_name_the_fastest_of_all_and_of_ours():
    rows = {(row["network"], row["batch"]): row for row in tables.fastest_paths(KNOWN)}
    assert set(rows) == {("ghostnet_100", 1), ("ghostnet_100", 32), ("ghostnet_b", 32), ("efficientnet_b0", 32)}
    assert rows["ghostnet_100", 1]["fastest"] == "timm_ghostnet_100 onnxruntime"
    assert rows["ghostnet_100", 1]["ours"] == "ghostnet_100 tflite"
    assert rows["ghostnet_100", 1]["ours_over_fastest"] == pytest.approx(250 / 300)
    assert rows["ghostnet_100", 32]["fastest"] == "timm_ghostnet_100 torch_tuned"
    assert rows["ghostnet_b", 32]["ours_over_fastest"] == 1.0
    assert rows["efficientnet_b0", 32]["ours"] is None


def test_export_comparison_sets_our_fastest_form_against_each_other_implementation_per_runtime():
    rows = {(r["engine"], r["batch"], r["other"]): r for r in tables.export_comparison(KNOWN)}
    assert set(rows) == {
        ("TF", 1, "kimm_ghostnet_100 keras"),
        ("TFLite", 1, "kimm_ghostnet_100 tflite"),
        ("ONNX Runtime", 1, "timm_ghostnet_100 onnxruntime"),
    }
    assert rows["TF", 1, "kimm_ghostnet_100 keras"]["ours"] == "ghostnet_100 keras_folded"
    assert rows["TF", 1, "kimm_ghostnet_100 keras"]["ours_over_other"] == pytest.approx(2.5)
    assert rows["TFLite", 1, "kimm_ghostnet_100 tflite"]["ours_over_other"] == pytest.approx(2.0)
    assert rows["ONNX Runtime", 1, "timm_ghostnet_100 onnxruntime"]["ours_over_other"] == pytest.approx(0.4)


def test_targets_compare_each_side_on_its_fastest_path():
    checks = {(c["target"], c["runtime"], c["versus"]): c for c in tables.targets(KNOWN)}
    best = checks["GhostNetB / EfficientNetB0 images/s, batch 32, each on its fastest path", "openvino", "openvino"]
    assert best["value"] == pytest.approx(180 / 130) and not best["met"]
    assert checks["GhostNetB / EfficientNetB0 images/s, batch 32", "tflite", "tflite"]["value"] == pytest.approx(1.5)
    assert checks["GhostNetB / EfficientNetB0 images/s, batch 32", "tflite", "tflite"]["met"]
    batch1 = "GhostNet100 / timm ghostnet_100 images/s, batch 1"
    assert checks[batch1, "tflite", "torch"]["value"] == pytest.approx(5.0)  # against timm as it runs by default
    assert checks[batch1, "onnxruntime", "onnxruntime"]["value"] == pytest.approx(0.4)
    assert checks[batch1 + ", each on its fastest path", "tflite", "onnxruntime"]["value"] == pytest.approx(250 / 300)
    table = tables.markdown(KNOWN, list(checks.values()), CONTEXT, {"ghostnet_100 onnx": {"Conv": 3, "Relu": 2}}, [])
    assert "| ghostnet_100 | 1 | timm_ghostnet_100 onnxruntime | 300.0 | ghostnet_100 tflite | 250.0 | 0.83x |" in table
    assert "| TFLite | 1 | ghostnet_100 tflite | 250.0 | kimm_ghostnet_100 tflite | 125.0 | 2.00x |" in table
    assert "| ghostnet_100 onnx | 5 | Conv 3, Relu 2 |" in table


CONTEXT = {
    "date": "today",
    "machine": "test",
    "threads": 2,
    "onednn": True,
    "peak": {"gflop_per_s": 100.0},
    "bandwidth": {"gb_per_s": 10.0, "copy_gb_per_s": 12.0},
    "tf_threads": {"intra_op": 2, "inter_op": 2},
    "command": "test",
}


def test_roofline_takes_the_lower_of_peak_and_intensity_times_bandwidth():
    traffic = roofline.Traffic(activation_bytes=1e6, weight_bytes=4e6)
    assert traffic.bytes_per_image(4) == 2e6 and traffic.bytes_per_image(1) == 5e6
    compute = roofline.roofline(macs=1e8, traffic=traffic, batch=4, peak_gflop_per_s=100.0, bandwidth_gb_per_s=10.0)
    assert compute["flop_per_byte"] == pytest.approx(100.0)  # 2e8 FLOPs / 2e6 bytes
    assert compute["bound"] == "compute" and compute["roofline_images_per_s"] == pytest.approx(500.0)  # 100 GFLOP/s
    memory = roofline.roofline(macs=1e8, traffic=traffic, batch=1, peak_gflop_per_s=100.0, bandwidth_gb_per_s=1.0)
    assert memory["flop_per_byte"] == pytest.approx(40.0)
    assert memory["bound"] == "memory" and memory["roofline_images_per_s"] == pytest.approx(200.0)  # 40 GFLOP/s


def test_keras_traffic_counts_each_output_written_once_and_read_by_each_consumer():
    import keras

    images = keras.Input((4, 4, 3))
    conv = keras.layers.Conv2D(2, 1)(images)  # reads 48, writes 32
    relu = keras.layers.ReLU()(conv)  # reads 32, writes 32
    total = keras.layers.Add()([conv, relu])  # reads 64, writes 32
    traffic = roofline.keras_traffic(keras.Model(images, total))
    assert traffic.activation_bytes == (48 + 32 + 32 + 32 + 64 + 32) * 4
    assert traffic.weight_bytes == (3 * 2 + 2) * 4
    # A ReLU that is its conv's only reader runs in the conv's kernel: it moves nothing.
    fused = keras.layers.ReLU()(keras.layers.Conv2D(2, 1)(images))
    assert roofline.keras_traffic(keras.Model(images, fused)).activation_bytes == (48 + 32) * 4


def test_op_counts_of_tiny_onnx_and_tflite_graphs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Relu", ["a"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ],
        "tiny",
        [value("x", TensorProto.FLOAT, [1, 4])],
        [value("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "tiny.onnx"))
    assert op_counts.op_counts(str(tmp_path / "tiny.onnx")) == {"Relu": 2, "Add": 1}

    import tensorflow as tf

    def tiny(x):  # no op here can take another as its fused activation
        return tf.concat([tf.nn.relu(tf.tanh(x)), tf.nn.relu(x)], axis=1)

    function = tf.function(tiny, input_signature=[tf.TensorSpec([1, 4])])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    (tmp_path / "tiny.tflite").write_bytes(converter.convert())
    assert op_counts.op_counts(str(tmp_path / "tiny.tflite")) == {"RELU": 2, "TANH": 1, "CONCATENATION": 1}
