"""training.evaluate offline: a weights file with the family's transform, a tag with its published one.

The tag's weights are served from 127.0.0.1 through a registry of one entry (crop_pct 0.95, bilinear);
the 1000-class ImageNet stand-in is an image folder of tiny noise images (one per class for training,
a few of several shapes for evaluation). The Keras cache is a temporary KERAS_HOME.
"""

import functools
import hashlib
import http.server
import json
import threading

import keras
import numpy as np
import pytest
from PIL import Image

from keras_tinynet import data, training
from keras_tinynet.models import GhostNet
from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING
from keras_tinynet.weights.registry import REGISTRY_ENV

VARIANT, FILE = "ghostnet_050", "ghostnet_050_evaluate.weights.h5"
PUBLISHED_CROP_PCT, PUBLISHED_INTERPOLATION = 0.95, "bilinear"
EVAL_SHAPES = [(40, 60), (60, 40), (50, 50), (31, 77)]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def write_registry(path, url: str, weights_path) -> None:
    contents = open(weights_path, "rb").read()
    entry = {
        "file": FILE,
        "url": url,
        "format": "keras_weights_h5",
        "hash_algorithm": "sha256",
        "hash": hashlib.sha256(contents).hexdigest(),
        "size": len(contents),
        "source": "test weights",
        "license": "Apache-2.0",
        "top1": 50.0,
        "crop_pct": PUBLISHED_CROP_PCT,
        "interpolation": PUBLISHED_INTERPOLATION,
    }
    path.write_text(json.dumps({"format": 2, "weights": {VARIANT: {"imagenet": entry}}}))


@pytest.fixture
def served_tag(tmp_path, monkeypatch):
    """A random GhostNet 0.5x (randomized BN statistics, spread logits) registered as 'imagenet' and served
    from 127.0.0.1."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = GhostNet(VARIANT)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            statistics = [rng.normal(0, 0.2, c), rng.uniform(0.5, 2, c)]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), *statistics])
    head = model.get_layer("predictions")
    head.set_weights([head.get_weights()[0] * 20, head.get_weights()[1]])
    served = tmp_path / "served"
    served.mkdir()
    model.save_weights(served / FILE)
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    registry_path = tmp_path / "registry.json"
    write_registry(registry_path, f"http://127.0.0.1:{server.server_address[1]}/{FILE}", served / FILE)
    monkeypatch.setenv(REGISTRY_ENV, str(registry_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()


def write_imagenet_stand_in(root) -> list:
    """1000 classes; the validation split holds noise images of EVAL_SHAPES. Returns them with their labels."""
    rng = np.random.default_rng(0)
    names = [f"n{index:04d}" for index in range(IMAGENET_CLASSES)]
    for name in names:
        (root / "train" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(root / "train" / name / "0.png")
    examples = []
    for index, shape in enumerate(EVAL_SHAPES):
        label = index * 97
        image = rng.integers(0, 256, (*shape, 3), np.uint8)
        (root / "validation" / names[label]).mkdir(parents=True)
        Image.fromarray(image).save(root / "validation" / names[label] / "0.png")
        examples.append((image, label))
    return examples


@pytest.mark.slow
def test_a_tag_is_evaluated_with_its_published_transform(served_tag, tmp_path, monkeypatch):
    examples = write_imagenet_stand_in(tmp_path / "imagenet")
    applied = []

    def recording_eval_preprocess(image, image_size, crop_pct, interpolation):
        applied.append((image_size, crop_pct, interpolation))
        return eval_preprocess(image, image_size, crop_pct, interpolation)

    eval_preprocess = data.eval_preprocess
    monkeypatch.setattr(data, "eval_preprocess", recording_eval_preprocess)
    config = training.TrainConfig(model=VARIANT, dataset=f"folder:{tmp_path / 'imagenet'}", batch_size=4)
    result = training.evaluate(config, "imagenet")
    assert set(applied) == {(224, PUBLISHED_CROP_PCT, PUBLISHED_INTERPOLATION)}
    assert (result["crop_pct"], result["interpolation"]) == (PUBLISHED_CROP_PCT, PUBLISHED_INTERPOLATION)
    assert result["examples"] == len(EVAL_SHAPES)
    # The served weights were loaded: the loss is the served model's own on the published transform.
    published = (PUBLISHED_CROP_PCT, PUBLISHED_INTERPOLATION)
    images = np.stack([eval_preprocess(image, 224, *published) for image, _ in examples])
    probabilities = served_tag.predict(images, verbose=0)
    expected = np.mean([-np.log(probabilities[i, label]) for i, (_, label) in enumerate(examples)])
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4)


def test_a_weights_file_is_evaluated_with_the_family_transform(tmp_path):
    config = training.resolve(training.TrainConfig())  # GhostNet-D on the embedded digits
    keras.utils.set_random_seed(0)
    path = str(tmp_path / "digits.weights.h5")
    training.build_model(config, 10).save_weights(path)
    result = training.evaluate(config, path)
    assert (result["crop_pct"], result["interpolation"]) == (
        IMAGENET_PREPROCESSING.crop_pct,
        IMAGENET_PREPROCESSING.interpolation,
    )
    assert (result["dataset"], result["examples"]) == ("digits", 360) and 0 <= result["top1"] <= 1


def test_a_tag_on_a_dataset_of_other_classes_is_refused(served_tag):
    config = training.TrainConfig(model=VARIANT, dataset="digits")
    with pytest.raises(training.TrainingError, match=r"`weights`='imagenet' classifies the 1000 .* has 10"):
        training.evaluate(config, "imagenet")


def test_an_unregistered_tag_is_named(served_tag):
    config = training.TrainConfig(model="ghostnet_100", dataset="digits")
    with pytest.raises(ValueError, match=r"No weights='imagenet' for model 'ghostnet_100'"):
        training.evaluate(config, "imagenet")
