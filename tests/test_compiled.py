"""compile_for_inference: the model's own outputs from each in-process runtime; oneDNN turned on at import."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_inference import randomize_batch_norm

import keras_tinynet
from keras_tinynet import _onednn
from keras_tinynet.compiled import compile_for_inference


@pytest.fixture(scope="module")
def logits_model():
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), classifier_activation=None)
    randomize_batch_norm(model, np.random.default_rng(3))
    return model


@pytest.mark.parametrize("runtime", ["auto", "tensorflow", "keras"])  # auto: tflite
def test_compiled_model_gives_the_logits_at_every_batch_size(logits_model, runtime, rng):
    images = (rng.random((3, 64, 64, 3)) * 255).astype("float32")
    expected = logits_model(images, training=False).numpy()
    compiled = compile_for_inference(logits_model, runtime=runtime)
    assert compiled.runtime == ("tflite" if runtime == "auto" else runtime)
    for batch in (3, 1, 3):  # a new batch size converts once, the old one comes back from the cache
        outputs = compiled(images[:batch])
        assert outputs.shape == (batch, 1000)
        np.testing.assert_allclose(outputs, expected[:batch], atol=1e-5, rtol=0)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in compiled.model.layers)


def test_compiled_feature_pyramid_keeps_the_output_structure(rng):
    pyramid = keras_tinynet.feature_pyramid(keras_tinynet.GhostNetD(input_shape=(64, 64, 3), include_top=False))
    images = (rng.random((2, 64, 64, 3)) * 255).astype("float32")
    expected = pyramid(images, training=False)
    outputs = compile_for_inference(pyramid)(images)
    assert type(outputs) is type(expected) and list(outputs) == list(expected)
    for got, want in zip(keras.tree.flatten(outputs), keras.tree.flatten(expected), strict=True):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_compiled_model_rejects_bad_input(logits_model):
    with pytest.raises(ValueError, match=r"`runtime` must be one of .*received runtime='xla'"):
        compile_for_inference(logits_model, runtime="xla")
    with pytest.raises(ValueError, match=r"`num_threads` must be a positive integer or None; received num_threads=0"):
        compile_for_inference(logits_model, num_threads=0)
    compiled = compile_for_inference(logits_model, runtime="tensorflow")
    with pytest.raises(ValueError, match=r"`images` must have shape \[n, 64, 64, 3\]; received shape \(2, 32, 32, 3\)"):
        compiled(np.zeros((2, 32, 32, 3)))


def test_plain_import_turns_onednn_on_before_tensorflow_and_respects_the_user():
    check = "import os, sys, keras_tinynet; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)"
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    for preset, expected in ((None, "1 False"), ("0", "0 False")):
        if preset is not None:
            environment["TF_ENABLE_ONEDNN_OPTS"] = preset
        done = subprocess.run([sys.executable, "-c", check], env=environment, capture_output=True, text=True)
        assert done.stdout.strip() == expected, done.stderr


def test_import_after_tensorflow_warns_only_where_onednn_stays_off(monkeypatch, recwarn):
    import tensorflow  # noqa: F401  (imported: the variable can no longer change anything)

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setattr(_onednn, "tensorflow_turns_it_on", lambda: False)
    with pytest.warns(
        UserWarning, match=r"TensorFlow was imported before keras_tinynet .* set TF_ENABLE_ONEDNN_OPTS=1"
    ):
        _onednn.turn_on()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    monkeypatch.setattr(_onednn, "tensorflow_turns_it_on", lambda: True)
    _onednn.turn_on()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setattr(_onednn, "tensorflow_turns_it_on", lambda: False)
    _onednn.turn_on()
    assert not recwarn.list
