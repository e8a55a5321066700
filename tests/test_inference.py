"""fold_batch_norm and optimize_for_inference: the same outputs with fewer ops, for any functional model."""

import collections

import keras
import numpy as np
import pytest

import keras_tinynet
from keras_tinynet import export
from keras_tinynet.inference import fold_batch_norm, optimize_for_inference
from keras_tinynet.presets import PRESETS, builder_name


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


# Every preset goes through fold_batch_norm again in test_every_preset_keeps_its_outputs (its first step).
@pytest.mark.parametrize("activation", ["relu", "hard_swish"])
def test_folded_ghostnet_keeps_its_logits(activation, rng):
    model = keras_tinynet.GhostNetD(input_shape=(96, 96, 3), activation=activation, classifier_activation=None)
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


def count_layers(model, kind, **config):
    return sum(
        isinstance(layer, kind) and all(layer.get_config().get(key) == value for key, value in config.items())
        for layer in model.layers
    )


@pytest.fixture(scope="module")
def ghostnet_d_66():
    """GhostNet-D on 66x66 images (the stem pad cannot fold, the later ones can), random BN statistics."""
    model = keras_tinynet.GhostNetD(input_shape=(66, 66, 3), classes=10, classifier_activation=None)
    randomize_batch_norm(model, np.random.default_rng(1))
    return model, optimize_for_inference(model)


def test_optimized_ghostnet_keeps_its_logits_with_fewer_layers(ghostnet_d_66, rng):
    model, optimized = ghostnet_d_66
    images = (rng.random((2, 66, 66, 3)) * 255).astype("float32")
    assert max_difference(model, optimized, images) <= 1e-5
    se_blocks = count_layers(model, keras.layers.Activation, activation="hard_sigmoid")
    assert se_blocks > 0 and count_layers(optimized, keras.layers.Activation, activation="hard_sigmoid") == 0
    assert count_layers(optimized, keras.layers.ReLU, max_value=6.0) == se_blocks
    assert count_layers(optimized, keras.layers.Normalization) == 0
    assert count_layers(optimized, keras.layers.Rescaling) == 1
    assert count_layers(model, keras.layers.Dropout) == 1 and count_layers(optimized, keras.layers.Dropout) == 0
    # "same" pads like ZeroPadding2D on the odd sizes 33, 17 and 9, not on the stem's 66 (0 before, 1 after)
    assert count_layers(model, keras.layers.ZeroPadding2D) == 9
    assert [layer.name for layer in optimized.layers if isinstance(layer, keras.layers.ZeroPadding2D)] == ["stem_pad"]
    assert (
        optimized.get_layer("stem_conv").padding == "valid" and optimized.get_layer("block1_dw_conv").padding == "same"
    )
    assert count_layers(optimized, keras.layers.BatchNormalization) == 0


def test_optimized_model_has_its_own_weights(ghostnet_d_66, rng):
    model, optimized = ghostnet_d_66
    images = (rng.random((1, 66, 66, 3)) * 255).astype("float32")
    before = optimized(images, training=False)
    assert not {id(v) for v in optimized.weights} & {id(v) for v in model.weights}
    expand = model.get_layer("block0_se_expand")
    original = expand.get_weights()
    expand.set_weights([w + 1 for w in original])
    try:
        np.testing.assert_array_equal(optimized(images, training=False), before)
    finally:
        expand.set_weights(original)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_keeps_its_outputs(preset, rng):
    """Each variant at 64x64 with 10 classes (the rewrites depend on the blocks, not the size): logits and softmax."""
    model = getattr(keras_tinynet, builder_name(preset))(
        input_shape=(64, 64, 3), classes=10, classifier_activation=None
    )
    randomize_batch_norm(model, rng)
    optimized = optimize_for_inference(model)
    images = (rng.random((2, 64, 64, 3)) * 255).astype("float32")
    logits, optimized_logits = model(images, training=False), optimized(images, training=False)
    np.testing.assert_allclose(optimized_logits, logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(keras.ops.softmax(optimized_logits), keras.ops.softmax(logits), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "builder, arguments",
    [
        ("GhostNetD", {"activation": "hard_swish"}),
        ("GhostNet050", {"activation": "hard_swish", "include_top": False}),
        ("GhostNetD", {"include_top": False, "pooling": "avg"}),
        ("TinyNetE", {"include_top": False, "pooling": "max"}),
    ],
)
def test_optimized_variants_keep_their_outputs(builder, arguments, rng):
    model = getattr(keras_tinynet, builder)(input_shape=(49, 49, 3), **arguments)
    randomize_batch_norm(model, rng)
    images = (rng.random((2, 49, 49, 3)) * 255).astype("float32")
    assert max_difference(model, optimize_for_inference(model), images) <= 1e-5 * max(
        1.0,
        float(np.max(np.abs(model(images, training=False)))),  # features are not normalized like logits
    )


def test_optimized_feature_pyramid_keeps_its_levels(rng):
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), include_top=False)
    randomize_batch_norm(model, rng)
    pyramid = keras_tinynet.feature_pyramid(model)
    optimized = optimize_for_inference(pyramid)
    images = (rng.random((1, 64, 64, 3)) * 255).astype("float32")
    expected, received = pyramid(images, training=False), optimized(images, training=False)
    assert list(received) == ["P1", "P2", "P3", "P4", "P5"]
    for level in expected:
        np.testing.assert_allclose(received[level], expected[level], rtol=1e-5, atol=1e-5)


def test_optimize_works_on_keras_applications(rng):
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    randomize_batch_norm(model, rng)
    images = (rng.random((2, 64, 64, 3)) * 255).astype("float32")
    assert max_difference(model, optimize_for_inference(model), images) < 1e-4  # as fold_batch_norm's test


def test_optimize_keeps_a_gate_whose_product_feeds_a_nonlinear_layer(rng):
    inputs = keras.Input((8, 8, 4))
    gate = keras.layers.Activation("hard_sigmoid")(keras.layers.Conv2D(4, 1)(inputs))
    outputs = keras.layers.ReLU()(keras.layers.Multiply()([inputs, gate]))  # relu(x / 6) * 6 is fine, max(.) not
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(outputs))
    optimized = optimize_for_inference(model)
    assert count_layers(optimized, keras.layers.Activation, activation="hard_sigmoid") == 1
    assert max_difference(model, optimized, rng.normal(size=(2, 8, 8, 4)).astype("float32")) < 1e-6


def test_optimize_rejects_a_model_it_cannot_rewrite():
    with pytest.raises(ValueError, match="`model` must be a functional keras.Model .* received Sequential"):
        optimize_for_inference(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


@pytest.mark.slow
def test_tflite_export_of_ghostnet_d_runs_the_optimized_ops(tmp_path, rng):
    model = keras_tinynet.GhostNetD()
    randomize_batch_norm(model, rng)
    exportable = export.Exportable(
        model=model, spec=keras_tinynet.get_spec("ghostnet_d"), image_size=145, labels=("0",) * 1000
    )
    path = export.export_tflite(exportable, tmp_path / "d.tflite")
    interpreter, error = export.ready_interpreter(path, 1)
    assert error is None  # XNNPACK takes the whole graph
    histogram = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    se_blocks = count_layers(model, keras.layers.Activation, activation="hard_sigmoid")
    # One MUL per SE block (the gate product; the hard sigmoid's / 6 is in the next conv), one ADD for the
    # input normalization and one per residual block, no SUB; 181 ops with fold_batch_norm alone.
    assert histogram["MUL"] == se_blocks and "SUB" not in histogram
    assert histogram["ADD"] == 1 + count_layers(model, keras.layers.Add)
    assert sum(histogram.values()) - histogram["DELEGATE"] == 166
    images = (rng.random((2, 145, 145, 3)) * 255).astype("float32")
    np.testing.assert_allclose(export.tflite_predict(path, images), model(images, training=False), atol=1e-5)
