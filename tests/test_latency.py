"""keras_tinynet.latency: every installed runtime runs the model's own outputs and times at least min_runs calls;
bad runtimes are one-line errors; importing it leaves TensorFlow unimported."""

import numpy as np
import pytest
from conftest import run_python
from test_inference import randomize_batch_norm

import keras_tinynet
from keras_tinynet import latency


@pytest.fixture(scope="module")
def tiny_model():
    model = keras_tinynet.GhostNetD(input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    randomize_batch_norm(model, np.random.default_rng(3))
    return model


def installed(runtime: str) -> bool:
    try:
        latency.check_runtime(runtime)
    except ImportError:
        return False
    return True


@pytest.mark.slow  # an export or a compile per runtime: seconds each
@pytest.mark.parametrize("runtime", latency.RUNTIMES)
def test_every_installed_runtime_gives_the_model_outputs_and_a_latency(tiny_model, runtime, tmp_path):
    if not installed(runtime):
        pytest.skip(f"{runtime} is not installed")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = tiny_model(images, training=False).numpy()
    call = latency.runner(tiny_model, runtime, images, threads=1, workdir=str(tmp_path))
    outputs = call()
    assert outputs.shape == (2, 10)
    np.testing.assert_allclose(outputs, expected, atol=1e-4, rtol=0)
    if runtime in ("keras", "tflite"):  # the others would export or compile again
        measured = latency.measure_latency(tiny_model, runtime, batch_size=2, threads=1, seconds=0.0, min_runs=4)
        assert (measured.runtime, measured.batch_size, measured.threads) == (runtime, 2, 1)
        assert measured.runs >= 4 and 0 < measured.p10_ms <= measured.median_ms <= measured.p90_ms
        assert measured.to_dict()["runs"] == measured.runs


def test_time_calls_keeps_min_runs_and_warmup():
    calls = []
    times = latency.time_calls(lambda: calls.append(1), seconds=0.0, min_runs=5, warmup=2)
    assert len(times) == 5 and len(calls) == 7 and all(t >= 0 for t in times)


def test_machine_names_the_cpu_and_its_cores():
    described = latency.machine()
    assert set(described) == {"cpu", "cores", "affinity", "platform"}
    assert described["cpu"] and 1 <= described["affinity"] <= described["cores"]


def test_unknown_runtime_is_a_one_line_error_naming_the_argument(tiny_model):
    with pytest.raises(ValueError, match=r"^`runtime` must be one of keras, .*; received runtime='onnx'\.$"):
        latency.measure_latency(tiny_model, runtime="onnx")
    with pytest.raises(ValueError, match=r"`min_runs` must be an integer >= 1; received min_runs=0"):
        latency.measure_latency(tiny_model, min_runs=0)


def test_missing_runtime_package_names_the_extra(monkeypatch):
    real_find_spec = latency.importlib.util.find_spec
    monkeypatch.setattr(
        latency.importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real_find_spec(name)
    )
    with pytest.raises(ImportError, match=r"`runtime`='onnxruntime' needs onnxruntime.*keras_tinynet\[export\]"):
        latency.check_runtime("onnxruntime")


def test_importing_latency_leaves_tensorflow_unimported():
    run_python(
        "import sys, keras_tinynet.latency\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, sorted(sys.modules)"
    )
