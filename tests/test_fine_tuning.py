"""Fine-tuning: training from a pretrained file on a folder dataset with other classes, backbone frozen or not."""

import dataclasses

import numpy as np
import pytest
from test_data import write_image_folder

import keras_tinynet
from keras_tinynet import recipe, training

SIZE = 32


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A GhostNet-D with 1000 classes and randomized BN statistics, saved as a weights file."""
    model = keras_tinynet.GhostNetD(input_shape=(SIZE, SIZE, 3))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    path = tmp_path_factory.mktemp("pretrained") / "ghostnet_d.weights.h5"
    model.save_weights(path)
    return path, {layer.name: [np.array(w) for w in layer.weights] for layer in model.layers if layer.weights}


def config(tmp_path, weights, **changes):
    root = write_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=4)
    return training.TrainConfig(
        model="ghostnet_d",
        dataset=f"folder:{root}",
        image_size=SIZE,
        batch_size=4,
        epochs=1,
        steps_per_epoch=2,
        ema_momentum=0,
        weights=str(weights),
        model_dir=str(tmp_path / "run"),
        **changes,
    )


def test_weights_turn_the_recipe_into_fine_tuning(tmp_path):
    scratch, _ = recipe.fit_to_data(
        training.resolve(training.TrainConfig(dataset="folder:x", model_dir=str(tmp_path))), 1_281_167
    )
    tuned = training.resolve(
        dataclasses.replace(scratch, epochs=None, learning_rate=None, warmup_epochs=None, weights="w")
    )
    assert tuned.epochs == recipe.FINE_TUNING_RECIPE["epochs"] < scratch.epochs
    assert tuned.learning_rate == pytest.approx(scratch.learning_rate * recipe.FINE_TUNING_LR_FACTOR)
    assert tuned.warmup_epochs < scratch.warmup_epochs
    with pytest.raises(training.TrainingError, match=r"`freeze_backbone`=True needs `weights`.*received weights=None"):
        training.resolve(training.TrainConfig(freeze_backbone=True, model_dir=str(tmp_path)))


@pytest.mark.slow
def test_frozen_backbone_keeps_weights_and_bn_statistics_and_trains_a_new_classifier(tmp_path, pretrained):
    path, before = pretrained
    summary = training.train(config(tmp_path, path, freeze_backbone=True), verbose=0)
    assert summary["config"]["weights"] == str(path) and summary["config"]["freeze_backbone"] is True
    final = keras_tinynet.GhostNetD(input_shape=(SIZE, SIZE, 3), classes=3, weights=summary["outputs"]["weights"])
    for layer in final.layers:
        if layer.weights and layer.name != "predictions":
            for expected, actual in zip(before[layer.name], layer.weights):
                np.testing.assert_array_equal(expected, np.array(actual), err_msg=layer.name)
    assert final.get_layer("predictions").kernel.shape[-1] == 3  # a new classifier for the three classes


@pytest.mark.slow
def test_unfrozen_fine_tuning_starts_from_the_file_and_moves_the_backbone(tmp_path, pretrained):
    path, before = pretrained
    summary = training.train(config(tmp_path, path), verbose=0)
    final = keras_tinynet.GhostNetD(input_shape=(SIZE, SIZE, 3), classes=3, weights=summary["outputs"]["weights"])
    stem = np.array(final.get_layer("stem_conv").kernel)
    assert not np.array_equal(stem, before["stem_conv"][0])
    assert np.abs(stem - before["stem_conv"][0]).max() < 0.05  # small steps from the pretrained kernel
