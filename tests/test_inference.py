"""fold_batch_norm: the same outputs with BN merged into the convolutions, for any functional model."""

import keras
import numpy as np
import pytest

import keras_tinynet
from keras_tinynet import export
from keras_tinynet.inference import fold_batch_norm


def randomize_batch_norm(model, rng):
    """Non-trivial BN statistics, so that a wrong fold changes the outputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)]
            )


def max_difference(model, folded, images):
    return float(np.max(np.abs(model(images, training=False) - folded(images, training=False))))


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["GhostNetA", "GhostNetD", "GhostNet100"])
@pytest.mark.parametrize("activation", ["relu", "hard_swish"])
def test_folded_ghostnet_keeps_its_logits(builder, activation, rng):
    model = getattr(keras_tinynet, builder)(activation=activation, classifier_activation=None)
    randomize_batch_norm(model, rng)
    folded = fold_batch_norm(model)
    images = (rng.random((2, *model.input_shape[1:])) * 255).astype("float32")
    assert max_difference(model, folded, images) < 1e-5
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert folded.get_layer("stem_conv").use_bias and folded.get_layer("block0_ghost1_cheap_conv").use_bias
    # Same layer names, BN dropped; its own variables (the original is untouched).
    assert {layer.name for layer in folded.layers} == {
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.BatchNormalization)
    }
    assert not {id(v) for v in folded.weights} & {id(v) for v in model.weights}


def test_folded_tinynet_e_keeps_its_logits(rng):
    model = keras_tinynet.TinyNetE(classifier_activation=None)
    randomize_batch_norm(model, rng)
    folded = fold_batch_norm(model)
    images = (rng.random((2, 106, 106, 3)) * 255).astype("float32")
    assert max_difference(model, folded, images) < 1e-5
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert folded.get_layer("block1_expand_conv").use_bias and folded.get_layer("block0_dw_conv").use_bias


def test_fold_keeps_a_conv_whose_output_has_another_consumer(rng):
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="shared_conv")(inputs)
    normalized = keras.layers.BatchNormalization(name="bn")(conv)
    outputs = keras.layers.Add()([normalized, conv])  # the raw conv output is used twice: no fold
    dw = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=True, name="dw")(outputs)
    outputs = keras.layers.BatchNormalization(name="dw_bn")(dw)
    model = keras.Model(inputs, outputs)
    randomize_batch_norm(model, rng)
    folded = fold_batch_norm(model)
    assert [layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)] == ["bn"]
    assert max_difference(model, folded, rng.normal(size=(2, 8, 8, 3)).astype("float32")) < 1e-5


@pytest.mark.slow
def test_fold_works_on_keras_applications(rng):
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3), classifier_activation=None)
    randomize_batch_norm(model, rng)
    folded = fold_batch_norm(model)
    images = (rng.random((2, 96, 96, 3)) * 255).astype("float32")
    assert max_difference(model, folded, images) < 1e-4  # logits of an untrained net reach ~1e2
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers) == 0


def test_fold_rejects_a_model_it_cannot_rewrite():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="`model` must be a functional keras.Model .* received Subclassed"):
        fold_batch_norm(Subclassed())
    with pytest.raises(ValueError, match="received str"):
        fold_batch_norm("ghostnet_d")


@pytest.mark.slow
def test_tflite_export_is_frozen_folded_and_batched(tmp_path, rng):
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), classes=10)
    randomize_batch_norm(model, rng)
    exportable = export.Exportable(
        model=model, spec=keras_tinynet.get_spec("ghostnet_d"), image_size=64, labels=tuple("abcdefghij")
    )
    path = export.export_tflite(exportable, tmp_path / "d4.tflite", batch_size=4)
    interpreter, _ = export.ready_interpreter(path, 1)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not ops & {"VAR_HANDLE", "READ_VARIABLE", "RSQRT", "TRANSPOSE"}  # weights are constants, BN folded
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"], "outputs": ["probabilities"]}}
    images = (rng.random((6, 64, 64, 3)) * 255).astype("float32")  # 6 = one full batch of 4 and a padded one
    probabilities = export.tflite_predict(path, images)
    assert probabilities.shape == (6, 10)
    np.testing.assert_allclose(probabilities, model(images, training=False), atol=1e-5)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer; received batch_size=0"):
        export.export_tflite(exportable, tmp_path / "bad.tflite", batch_size=0)
