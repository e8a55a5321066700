"""The Keras builders: parameter counts, keras.applications behaviour, naming, saving, precision."""

import keras
import numpy as np
import pytest

import keras_tinynet
from keras_tinynet.counting import count
from keras_tinynet.models import VARIANTS
from keras_tinynet.presets import get_spec


def trainable_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def images(rng, n=2, size=64, channels=3):
    return (rng.random((n, size, size, channels)) * 255).astype("float32")


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_trainable_parameters_equal_the_counter(variant, build_cached):
    spec = get_spec(variant)
    assert trainable_params(build_cached(variant)) == count(spec).params
    no_top = build_cached(variant, include_top=False, activation="hard_swish", classes=10)
    assert trainable_params(no_top) == count(spec, include_top=False).params


def test_hswish_variant_and_custom_classes_count(build_cached):
    model = keras_tinynet.GhostNetD(activation="hard_swish", classes=10, include_preprocessing=False)
    assert model.name == "ghostnet_d_hswish"
    assert trainable_params(model) == count(get_spec("ghostnet_d"), classes=10).params
    assert {type(layer).__name__ for layer in model.layers if layer.name.endswith("ghost1_primary_act")} == {
        "Activation"
    }
    assert model.get_layer("stem_act").get_config()["activation"] in ("hard_swish", "hard_silu")  # Keras aliases
    assert model.get_layer("block0_se_reduce_act").__class__.__name__ == "ReLU"  # SE keeps ReLU


def test_budget_model_counts_match(rng):
    config = keras_tinynet.tiny_formula(80e6)
    model = keras_tinynet.GhostNet(flops=80e6)
    assert model.input_shape == (None, config.image_size, config.image_size, 3)
    assert trainable_params(model) == config.counts.params
    assert model.name == "ghostnet_tiny_80m"


def test_default_input_sizes(build_cached):
    sizes = {
        name: build_cached(name).input_shape[1]
        for name in ("ghostnet_a", "ghostnet_b", "ghostnet_c", "ghostnet_d", "ghostnet_100")
    }
    assert sizes == {"ghostnet_a": 240, "ghostnet_b": 205, "ghostnet_c": 187, "ghostnet_d": 145, "ghostnet_100": 224}


def test_gates_are_relu6_based():
    x = np.linspace(-5, 5, 41).astype("float32")
    relu6 = np.clip(x + 3, 0, 6)
    np.testing.assert_allclose(keras.activations.hard_sigmoid(x), relu6 / 6, atol=1e-6)
    np.testing.assert_allclose(keras.activations.hard_swish(x), x * relu6 / 6, atol=1e-6)


def test_deterministic_layer_names_and_pytorch_padding_and_bn_settings():
    model = keras_tinynet.GhostNet100()
    names = [layer.name for layer in model.layers]
    assert names == [layer.name for layer in keras_tinynet.GhostNet100().layers]
    for name in [
        "stem_conv",
        "stem_bn",
        "block0_ghost1_primary_conv",
        "block0_ghost1_cheap_conv",
        "block1_dw_conv",
        "block3_se_reduce",
        "block3_se_expand",
        "block1_shortcut_dw_conv",
        "block1_shortcut_conv",
        "block15_ghost2_primary_bn",
        "final_conv",
        "conv_head",
        "predictions",
    ]:
        assert name in names
    assert model.get_layer("stem_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("block3_dw_pad").padding == ((2, 2), (2, 2))
    assert model.get_layer("stem_conv").padding == "valid" and model.get_layer("block3_dw_conv").strides == (2, 2)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(bn.epsilon == 1e-5 and bn.momentum == 0.9 for bn in bns)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.name.endswith("_conv")]
    assert not any(layer.use_bias for layer in convs)


def test_input_tensor_and_pooling_and_dynamic_sizes(rng):
    tensor = keras.Input((96, 96, 3))
    model = keras_tinynet.GhostNetD(input_tensor=tensor, include_top=False, pooling="avg")
    assert model.inputs[0] is tensor and model.output_shape == (None, 1680 * 0 + get_spec("ghostnet_d").final_channels)
    dynamic = keras_tinynet.GhostNetD(include_top=False, input_shape=(None, None, 3), pooling="max")
    for size in (32, 77, 160):
        assert dynamic(images(rng, size=size)).shape == (2, get_spec("ghostnet_d").final_channels)
    fmap = keras_tinynet.GhostNetD(include_top=False)
    assert fmap(images(rng, size=97)).shape == (2, 4, 4, get_spec("ghostnet_d").final_channels)


@pytest.mark.parametrize("channels", [1, 4])
def test_other_channel_counts_with_random_weights(channels, rng):
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, channels), classes=7)
    out = model(images(rng, channels=channels))
    assert out.shape == (2, 7)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, rtol=1e-5)


def test_logits_without_classifier_activation(rng):
    model = keras_tinynet.GhostNetD(classifier_activation=None, input_shape=(64, 64, 3))
    out = np.asarray(model(images(rng)))
    assert not np.allclose(out.sum(axis=1), 1.0)
    probabilities = keras.ops.softmax(out)
    assert np.allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-5)


def test_builtin_preprocessing_equals_preprocess_input(rng):
    with_pre = keras_tinynet.GhostNetD(input_shape=(64, 64, 3))
    without = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    x = images(rng)
    np.testing.assert_allclose(with_pre(x), without(keras_tinynet.preprocess_input(x, mode="torch")), atol=1e-6)
    assert keras_tinynet.preprocess_input(x) is x


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"input_shape": (31, 64, 3), "include_top": False},
            r"Input size must be at least 32x32; Received: input_shape=\(31, 64, 3\)",
        ),
        ({"weights": "imagenet", "classes": 10}, "`classes` should be 1000. Received: classes=10"),
        ({"weights": "imagnet"}, r"unknown tag weights='imagnet'"),
        ({"weights": "/no/such/file.weights.h5"}, "Received: weights='/no/such/file.weights.h5' \\(no such file\\)"),
        ({"pooling": "mean", "include_top": False}, "`pooling` must be None, 'avg' or 'max'; received pooling='mean'"),
        (
            {"activation": "gelu"},
            "`activation` must be one of \\('relu', 'hard_swish', 'swish'\\); received activation='gelu'",
        ),
        ({"dropout_rate": 1.5}, r"`dropout_rate` must be a number in \[0, 1\); received dropout_rate=1.5"),
        ({"classes": 0}, "`classes` must be a positive integer; received classes=0"),
        ({"input_shape": (64, 64)}, "`input_shape` must be a tuple of three"),
        ({"weights": "imagenet", "input_shape": (64, 64, 1), "include_top": False}, "must have 3 channels"),
        ({"weights": "imagenet", "input_shape": (64, 64, 3)}, r"`input_shape` should be \(145, 145, 3\)"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_tinynet.GhostNetD(**kwargs)


def test_imagenet_without_a_registry_entry_is_an_error_not_random_weights():
    with pytest.raises(ValueError, match="No weights='imagenet' for model 'ghostnet_b': no ImageNet checkpoint"):
        keras_tinynet.GhostNetB(weights="imagenet")


def test_generic_builder_arguments():
    with pytest.raises(ValueError, match="Pass exactly one of `spec`, `flops` and `latency_ms`"):
        keras_tinynet.GhostNet()
    with pytest.raises(ValueError, match="`spec` must be a NetworkSpec, a variant name"):
        keras_tinynet.GhostNet(42)
    from_dict = keras_tinynet.GhostNet(get_spec("ghostnet_d").to_dict(), include_top=False)
    assert trainable_params(from_dict) == count(get_spec("ghostnet_d"), include_top=False).params


def test_odd_widths_build_and_count(rng, tmp_path):
    spec = get_spec("ghostnet_d").to_dict()
    spec["blocks"] = [list(b) for b in spec["blocks"]]
    spec["blocks"][0][1] = 15  # odd mid width: the cheap half drops a channel
    model = keras_tinynet.GhostNet(spec, input_shape=(64, 64, 3))
    assert trainable_params(model) == count(keras_tinynet.NetworkSpec.from_dict(spec)).params
    path = tmp_path / "odd.keras"
    model.save(path)
    x = images(rng)
    np.testing.assert_allclose(keras.saving.load_model(path)(x), model(x), atol=1e-6)


def test_config_and_keras_round_trips_give_identical_outputs(rng, tmp_path):
    model = keras_tinynet.GhostNetD(
        input_shape=(None, None, 3), include_top=False, pooling="avg", drop_connect_rate=0.2
    )
    x = images(rng, size=80)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(x), model(x))
    path = tmp_path / "d.keras"
    model.save(path)
    np.testing.assert_array_equal(keras.saving.load_model(path)(x), model(x))


def test_weights_files_load_by_name(rng, tmp_path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = keras_tinynet.GhostNetD(input_shape=(64, 64, 3))
    x = images(rng)
    expected = source(x)
    source.save_weights(tmp_path / "d.weights.h5")
    source.save(tmp_path / "d.keras")
    with h5py.File(tmp_path / "legacy.h5", "w") as f:  # a Keras 2 weights-only file
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    for name in ("d.weights.h5", "d.keras", "legacy.h5"):
        loaded = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), weights=str(tmp_path / name))
        np.testing.assert_array_equal(loaded(x), expected, err_msg=name)
    # Top weights into a model without the top: the extra layers of the file are ignored.
    no_top = keras_tinynet.GhostNetD(include_top=False, weights=str(tmp_path / "d.keras"), pooling="avg")
    np.testing.assert_array_equal(no_top.get_layer("final_conv").kernel, source.get_layer("final_conv").kernel)


def test_weights_of_another_variant_name_the_layer_and_both_shapes(tmp_path):
    keras_tinynet.GhostNetD(include_top=False).save_weights(tmp_path / "d.weights.h5")
    with pytest.raises(
        ValueError,
        match=r"layer 'stem_conv' variable .* has shape \(3, 3, 3, 16\) in the model but \(3, 3, 3, 16\)|"
        r"layer '\w+' variable .* has shape \(.*\) in the model but \(.*\) in the file",
    ):
        keras_tinynet.GhostNetC(include_top=False, weights=str(tmp_path / "d.weights.h5"))
    no_top = tmp_path / "d_notop.keras"
    keras_tinynet.GhostNetD(include_top=False).save(no_top)
    with pytest.raises(ValueError, match=r"no weights for 2 layer\(s\) \('conv_head', 'predictions'\)"):
        keras_tinynet.GhostNetD(weights=str(no_top))
    with pytest.raises(ValueError, match="must end with one of"):
        bad = tmp_path / "weights.bin"
        bad.write_bytes(b"x")
        keras_tinynet.GhostNetD(weights=str(bad))


def test_weights_of_a_stochastic_depth_build_load_into_a_plain_one(rng, tmp_path):
    """Dropout layers shift Keras' positional keys; the layer names in the file keep the mapping right."""
    trained = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), drop_connect_rate=0.2)
    trained.save_weights(tmp_path / "sd.weights.h5")
    plain = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), weights=str(tmp_path / "sd.weights.h5"))
    x = images(rng)
    np.testing.assert_array_equal(plain(x), trained(x, training=False))


def test_failed_load_leaves_the_model_untouched(tmp_path):
    from keras_tinynet.weights.loading import load_weights

    keras_tinynet.GhostNetD(include_top=False).save_weights(tmp_path / "d.weights.h5")
    model = keras_tinynet.GhostNetC(include_top=False)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError):
        load_weights(model, tmp_path / "d.weights.h5")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", ["ghostnet_a", "ghostnet_050", "tinynet_e"])
def test_feature_pyramid_has_five_stages(variant, rng):
    strides = (2, 4, 8, 16, 32)
    spec = get_spec(variant)
    pyramid = keras_tinynet.feature_pyramid(keras_tinynet.models.VARIANTS[variant](include_top=False))
    out = pyramid(images(rng, size=224))
    assert list(out) == ["P1", "P2", "P3", "P4", "P5"]
    for level, stride in zip(out, strides):
        assert out[level].shape[1:3] == (224 // stride, 224 // stride)
    assert [out[k].shape[-1] for k in out] == [spec.blocks[i].out_channels for i in spec.stage_ends]
    with pytest.raises(ValueError, match="must be a GhostNet built by keras_tinynet"):
        keras_tinynet.feature_pyramid(keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)]))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_outputs_float32(policy, rng):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3))
        features = keras_tinynet.GhostNetD(include_top=False)
        pyramid = keras_tinynet.feature_pyramid(features)
        x = images(rng)
        assert model.get_layer("block3_ghost1_primary_conv").compute_dtype == policy.split("_")[1]
        out = model(x)
        assert keras.backend.standardize_dtype(out.dtype) == "float32" and np.isfinite(out).all()
        assert keras.backend.standardize_dtype(features(x).dtype) == "float32"
        assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in pyramid(x).values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_dtype_argument_reaches_every_layer(rng):
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), dtype="mixed_bfloat16")
    policies = {layer.dtype_policy.name for layer in model.layers if layer.weights and layer.name != "predictions"}
    assert policies == {"mixed_bfloat16"}
    assert keras.backend.standardize_dtype(model(images(rng)).dtype) == "float32"


def test_drop_connect_is_stochastic_depth_in_training_only(rng):
    model = keras_tinynet.GhostNetD(input_shape=(64, 64, 3), drop_connect_rate=0.5, dropout_rate=0.0)
    drops = [layer for layer in model.layers if layer.name.endswith("_drop")]
    assert len(drops) == len(get_spec("ghostnet_d").blocks) - 1  # block 0 has rate 0
    assert drops[-1].rate == pytest.approx(0.5 * 12 / 13) and drops[0].noise_shape == (None, 1, 1, 1)
    x = images(rng)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=True))


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_fit_step_reaches_every_trainable_variable(variant, rng):
    import tensorflow as tf

    model = keras_tinynet.models.VARIANTS[variant](input_shape=(64, 64, 3), classes=5, dropout_rate=0.0)
    x, y = images(rng, n=4), np.array([0, 1, 2, 3])
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    zero = [v.path for v, g in zip(model.trainable_variables, grads) if g is None or not np.any(np.asarray(g))]
    assert not zero, zero
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss_fn)
    before = model.get_layer("stem_conv").kernel.numpy().copy()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before, model.get_layer("stem_conv").kernel.numpy())


def test_decode_predictions_offline():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 1], preds[0, 2], preds[1, 999] = 0.7, 0.2, 0.9
    decoded = keras_tinynet.decode_predictions(preds, top=2)
    assert decoded[0] == [
        ("n01443537", "goldfish", pytest.approx(0.7)),
        ("n01484850", "great_white_shark", pytest.approx(0.2)),
    ]
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\).*Received array with shape: \(2, 10\)"):
        keras_tinynet.decode_predictions(np.zeros((2, 10)))


def test_variants_share_one_docstring_template():
    for name, builder in VARIANTS.items():
        assert builder.__doc__.startswith("Instantiates the ")
        assert f"Default input size {get_spec(name).default_size}x" in builder.__doc__
        assert builder.__name__ in keras_tinynet.__all__


def test_tinynet_e_is_efficientnet_blocks_with_swish(build_cached):
    model = build_cached("tinynet_e")
    spec, names = get_spec("tinynet_e"), [layer.name for layer in model.layers]
    assert model.name == "tinynet_e" and model.input_shape == (None, 106, 106, 3)
    assert trainable_params(model) == count(spec).params == 2_042_972
    assert model.get_layer("stem_act").get_config()["activation"] in ("swish", "silu")  # Keras aliases
    assert model.get_layer("block1_se_reduce_act").get_config()["activation"] in ("swish", "silu")
    assert model.get_layer("block1_se_gate").get_config()["activation"] == "sigmoid"
    assert model.get_layer("block0_dw_conv").strides == (1, 1) and "block0_expand_conv" not in names
    assert model.get_layer("block1_expand_conv").filters == 48 and model.get_layer("block1_dw_pad").padding == (
        (1, 1),
        (1, 1),
    )
    assert "conv_head" not in names and model.get_layer("predictions").kernel.shape == (1280, 1000)
    identity = [i for i, b in enumerate(spec.blocks) if b.has_identity_shortcut]
    assert [n for n in names if n.endswith("_add")] == [f"block{i}_add" for i in identity]


def test_tinynet_other_activation_and_budget_and_spec():
    relu = keras_tinynet.TinyNetE(activation="relu", include_top=False)
    assert relu.name == "tinynet_e_relu" and relu.get_layer("block1_se_reduce_act").__class__.__name__ == "ReLU"
    config = keras_tinynet.tiny_formula(60e6, base="efficientnet_b0")
    model = keras_tinynet.TinyNet(flops=60e6, include_top=False)
    assert model.name == "tinynet_tiny_60m" and model.input_shape == (None, None, None, 3)
    assert trainable_params(model) == count(config.spec, include_top=False).params
    assert {b.kind for b in config.spec.blocks} == {"ds", "mbconv"}
    from_spec = keras_tinynet.TinyNet(get_spec("tinynet_e").to_dict(), include_top=False)
    assert trainable_params(from_spec) == count(get_spec("tinynet_e"), include_top=False).params
    with pytest.raises(ValueError, match="Pass exactly one of `spec`, `flops` and `latency_ms`"):
        keras_tinynet.TinyNet()


@pytest.mark.parametrize("variant", ["ghostnet_d", "tinynet_e"])
def test_the_model_itself_takes_the_dtype_policy(variant, tmp_path):
    model = VARIANTS[variant](input_shape=(64, 64, 3), dtype="mixed_float16")
    assert model.dtype_policy.name == "mixed_float16"
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert type(model).from_config(model.get_config()).dtype_policy.name == "mixed_float16"
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").dtype_policy.name == "mixed_float16"
    assert VARIANTS[variant](input_shape=(64, 64, 3)).dtype_policy.name == "float32"
