"""TF Hub / Kaggle Models publishing: reusable SavedModels (classification, feature_vector), model cards,
archives; fine-tuning through hub.KerasLayer in tf-keras, hub.load, and keras.layers.TFSMLayer in Keras 3."""

import functools
import os
import tarfile

import export_helpers as H
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
hub = pytest.importorskip("tensorflow_hub")
tf_keras = pytest.importorskip("tf_keras")
keras = pytest.importorskip("keras")

from keras_tinynet import export  # noqa: E402
from keras_tinynet.counting import count  # noqa: E402


@functools.cache
def published():
    trained = H.trained_digits()
    output_dir = os.path.join(H.workdir(), "hub")
    code, out, err = H.run_script(
        "publish_hub",
        f"--spec={trained.spec}",
        f"--weights={trained.weights}",
        f"--labels={trained.labels}",
        "--image_size=64",
        f"--output_dir={output_dir}",
        "--source=https://example.org/keras_tinynet",
    )
    assert code == 0, err
    return output_dir, out


def form_dir(form):
    return os.path.join(published()[0], f"tiny_digits_{form}")


@pytest.mark.slow
def test_layout_cards_and_archives():
    output_dir, stdout = published()
    assert sorted(os.listdir(output_dir)) == sorted(
        f"tiny_digits_{form}{suffix}" for form in export.HUB_FORMS for suffix in ("", ".md", ".tar.gz")
    )
    spec = H.tiny_spec()
    for form in export.HUB_FORMS:
        assert f"{form}: SavedModel {form_dir(form)}" in stdout
        card = open(form_dir(form) + ".md").read()
        counts = count(spec, 64, include_top=form == "classification", classes=10)
        for expected in (
            f"# tiny_digits ({form.replace('_', ' ')})",
            f"| Parameters | {counts.params:,}",
            f"| FLOPs | {counts.flops / 1e6:.1f}M",
            "| License | Apache-2.0 |",
            "| Source | https://example.org/keras_tinynet |",
            "values in [0, 1]",
            "resize the shorter side to 73",
            "center-crop 64x64",
            "@inproceedings{han2020model",
            "`ema.weights.h5` (sha256",
            spec.table().splitlines()[0],
        ):
            assert expected in card, f"{expected!r} missing from the {form} card"
        with tarfile.open(form_dir(form) + ".tar.gz") as archive:
            names = archive.getnames()
        assert "saved_model.pb" in names and "variables/variables.index" in names
        assert not any(name.startswith(("/", "..")) or "tiny_digits" in name for name in names)
    assert "0: zero, 1: one" in open(form_dir("classification") + ".md").read()
    assert "`[batch, 344]`" in open(form_dir("feature_vector") + ".md").read().replace(str(spec.final_channels), "344")


@pytest.mark.slow
def test_archive_loads_after_extraction(tmp_path):
    with tarfile.open(form_dir("classification") + ".tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    module = hub.load(str(tmp_path))
    x = H.trained_digits().x_test[:4]
    np.testing.assert_allclose(
        tf.nn.softmax(module(x / 255.0, training=False)).numpy(),
        H.trained_digits().model.predict(x, verbose=0),
        atol=1e-5,
    )


@pytest.mark.slow
def test_hub_load_classification_matches_keras():
    trained = H.trained_digits()
    module = hub.load(form_dir("classification"))
    assert len(module.variables) > len(module.trainable_variables) > 0
    assert list(module.regularization_losses) == []
    x = trained.x_test[:16]
    logits = module(tf.constant(x / 255.0, tf.float32), training=False)
    assert logits.shape == (16, 10)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), trained.model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_hub_keras_layer_fine_tunes_the_feature_vector():
    trained = H.trained_digits()
    tf_keras.utils.set_random_seed(0)
    layer = hub.KerasLayer(form_dir("feature_vector"), trainable=True)
    model = tf_keras.Sequential([tf_keras.Input((64, 64, 3)), layer, tf_keras.layers.Dense(10)])
    model.compile(tf_keras.optimizers.Adam(1e-3), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert len(layer.trainable_weights) == len(hub.load(form_dir("feature_vector")).trainable_variables)
    moving = [w for w in layer.non_trainable_weights if "moving_mean" in w.name or "moving_variance" in w.name]
    assert moving, [w.name for w in layer.non_trainable_weights][:10]
    before = [w.numpy().copy() for w in moving]
    x, y = trained.x_test[:32] / 255.0, trained.y_test[:32]
    losses = [float(model.train_on_batch(x, y)) for _ in range(6)]
    assert losses[-1] < losses[0], losses
    changed = sum(not np.allclose(b, w.numpy()) for b, w in zip(before, moving))
    assert changed == len(moving), f"only {changed} of {len(moving)} BN statistics moved in training mode"
    # Inference mode leaves them alone.
    after = [w.numpy().copy() for w in moving]
    model.predict(x, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(after, moving))
    # Any image size works for the feature vector.
    assert layer(tf.zeros([2, 96, 80, 3])).shape == (2, H.tiny_spec().final_channels)


@pytest.mark.slow
def test_tfsm_layer_loads_both_forms_in_keras3():
    trained = H.trained_digits()
    x = trained.x_test[:8] / 255.0
    classification = keras.layers.TFSMLayer(form_dir("classification"), call_endpoint="serving_default")
    logits = classification(x)["logits"]
    np.testing.assert_allclose(
        keras.ops.softmax(logits), trained.model.predict(trained.x_test[:8], verbose=0), atol=1e-5
    )
    features = keras.layers.TFSMLayer(form_dir("feature_vector"), call_endpoint="serving_default")
    inputs = keras.Input((64, 64, 3))
    head = keras.layers.Dense(10)
    model = keras.Model(inputs, head(features(inputs)["feature_vector"]))
    assert model.predict(x, verbose=0).shape == (8, 10)
    module = hub.load(form_dir("feature_vector"))
    np.testing.assert_allclose(
        features(x)["feature_vector"], module(tf.constant(x, tf.float32), training=False), rtol=1e-5, atol=1e-5
    )  # features reach ~100: relative


def test_publish_argument_errors(tmp_path):
    code, _, err = H.run_script("publish_hub", "--spec=/nonexistent.json", f"--output_dir={tmp_path}")
    assert code == 2 and "argument --spec: must be a NetworkSpec JSON file" in err
    code, _, err = H.run_script(
        "publish_hub", "--model=ghostnet_d", f"--output_dir={tmp_path}", "--forms=classification,detector"
    )
    assert (
        code == 2
        and "--forms must be a comma-separated subset of classification, feature_vector" in err
        and "detector" in err
    )
    code, _, err = H.run_script("publish_hub", "--model=ghostnet_d")
    assert code == 2 and "--output_dir is required" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_publish_refuses_to_overwrite_without_the_flag(tmp_path):
    exportable = export.load_exportable(spec=H.tiny_spec("tiny_random"))
    export.publish_hub(exportable, tmp_path, forms=["feature_vector"])
    with pytest.raises(ValueError, match="already holds.*pass overwrite=True"):
        export.publish_hub(exportable, tmp_path, forms=["feature_vector"])
    export.publish_hub(exportable, tmp_path, forms=["feature_vector"], overwrite=True)
    assert sorted(os.listdir(tmp_path)) == [
        "tiny_random_feature_vector",
        "tiny_random_feature_vector.md",
        "tiny_random_feature_vector.tar.gz",
    ]
    assert "random initialization (untrained)" in (tmp_path / "tiny_random_feature_vector.md").read_text()
