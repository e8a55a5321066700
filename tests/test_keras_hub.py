"""keras-hub: TinyNetsBackbone / TinyNetsImageClassifier through keras-hub's own harness checks (config round
trip, dir(), serialization, `.keras` reload, pyramid, input sizes, mixed precision, presets, fit), presets from a
registry served on 127.0.0.1, publish-hub --forms keras_hub, bad presets; the plain builders' round trip."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading

import keras
import numpy as np
import pytest
from export_helpers import run_script

from keras_tinynet import models
from keras_tinynet.data import eval_preprocess
from keras_tinynet.files import file_hash
from keras_tinynet.weights.registry import MIRROR_ENV, REGISTRY_ENV, WeightsDownloadError

hub_models = pytest.importorskip("keras_tinynet.keras_hub_models")
keras_hub = pytest.importorskip("keras_hub")

FAMILIES = ("ghostnet_050", "tinynet_e")  # one network of each family (GhostNet blocks, MBConv blocks)
SIZE = 64
# The served checkpoints' transforms differ from the family default, so a test sees which one is applied.
TRANSFORMS = {
    "ghostnet_050": {
        "input_size": 48,
        "crop_pct": 0.9,
        "interpolation": "bilinear",
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    },
    "tinynet_e": {"input_size": 40, "crop_pct": 0.875, "interpolation": "bicubic"},
}


def json_config(instance) -> str:
    return json.dumps(instance.get_config(), sort_keys=True)


def outputs(model, x):
    result = model(x, training=False)  # eager: faster than predict's compiled function for one small batch
    return {k: np.asarray(v) for k, v in result.items()} if isinstance(result, dict) else np.asarray(result)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A random checkpoint of each family (this package's .weights.h5 with the top) and a server for them."""
    root = tmp_path_factory.mktemp("served")
    for variant in FAMILIES:
        model = models.VARIANTS[variant](include_preprocessing=False)
        model.save_weights(root / f"{variant}.weights.h5")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield {"root": root, "base": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()
    server.server_close()


def registry_document(served, base=None):
    def entry(variant):
        path = served["root"] / f"{variant}.weights.h5"
        return {
            "file": path.name,
            "url": f"{base or served['base']}/{path.name}",
            "format": "keras_weights_h5",
            "hash_algorithm": "sha256",
            "hash": file_hash(path),
            "size": path.stat().st_size,
            "source": f"test {variant}",
            "license": "Apache-2.0",
            "top1": 42.5,
            **TRANSFORMS[variant],
        }

    return {"format": 2, "weights": {variant: {"imagenet": entry(variant)} for variant in FAMILIES}}


@pytest.fixture
def registered(served, tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry_document(served)))
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return served


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 57, 70, 3)).astype("float32")


# --- the plain builders ---------------------------------------------------------------------------------


def test_builder_model_keeps_pyramid_outputs_through_config_and_keras_file(tmp_path):
    model = models.GhostNetD(include_top=False)
    x = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    expected = outputs(models.feature_pyramid(model), x)
    revived = type(model).from_config(model.get_config())
    revived.set_weights(model.get_weights())
    path = tmp_path / "d.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for other in (revived, reloaded):
        assert list(other.pyramid_outputs) == ["P1", "P2", "P3", "P4", "P5"]
        got = outputs(models.feature_pyramid(other), x)
        for level, value in expected.items():
            np.testing.assert_array_equal(got[level], value)


def test_keras_tinynet_imports_and_builds_without_keras_hub():
    from conftest import run_python

    code = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "keras_hub" or name.startswith("keras_hub."):
            raise ImportError(f"No module named {name!r} (blocked)")
sys.meta_path.insert(0, Refuse())
import keras_tinynet
model = keras_tinynet.GhostNetD(include_top=False, input_shape=(32, 32, 3))
assert sorted(model.pyramid_outputs) == ["P1", "P2", "P3", "P4", "P5"]
from keras_tinynet import export
try:
    import keras_tinynet.keras_hub_models
except ImportError as error:
    print("ERROR", error)
"""
    result = run_python(code)
    assert 'needs keras-hub: pip install "keras_tinynet[keras_hub]"' in result.stdout


# --- the backbone: keras-hub's run_vision_backbone_test / run_serialization_test / run_precision_test ----


@pytest.mark.parametrize("variant", FAMILIES)
def test_backbone_config_dir_serialization_and_keras_file(variant, tmp_path):
    backbone = hub_models.TinyNetsBackbone(spec=variant)
    config, names = json_config(backbone), set(dir(backbone))
    revived = hub_models.TinyNetsBackbone.from_config(backbone.get_config())
    assert json_config(revived) == config and set(dir(revived)) == names
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(backbone)))
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is hub_models.TinyNetsBackbone and json_config(deserialized) == config
    x = np.random.default_rng(2).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is hub_models.TinyNetsBackbone
    np.testing.assert_array_equal(outputs(reloaded, x), outputs(backbone, x))
    assert list(reloaded.pyramid_outputs) == list(backbone.pyramid_outputs)


@pytest.mark.parametrize("variant", FAMILIES)
def test_backbone_pyramid_strides_and_variable_input_sizes(variant):
    backbone = hub_models.TinyNetsBackbone(spec=variant)
    pyramid = keras.Model(backbone.input, backbone.pyramid_outputs)
    for size in (32, 48, SIZE):
        x = np.zeros((1, size, size, 3), "float32")
        levels = pyramid(x)
        assert [levels[f"P{i}"].shape[1:3] for i in range(1, 6)] == [
            (-(-size // 2**i),) * 2 for i in range(1, 6)
        ]  # 'same' padding rounds up
        assert backbone(x).shape == (1, -(-size // 32), -(-size // 32), backbone.output_shape[-1])


@pytest.mark.parametrize("variant", FAMILIES)
def test_mixed_precision_policy_reaches_every_layer_and_the_model(variant):
    backbone = hub_models.TinyNetsBackbone(spec=variant, dtype="mixed_float16")
    assert backbone.dtype_policy.name == "mixed_float16"
    # All but the input and the float32 cast of the output ("features").
    computing = [layer for layer in backbone.layers[1:] if layer.name != "features"]
    assert {layer.dtype_policy.name for layer in computing} == {"mixed_float16"}
    revived = hub_models.TinyNetsBackbone.from_config(backbone.get_config())
    assert revived.dtype_policy.name == "mixed_float16"
    assert backbone(np.zeros((1, 32, 32, 3), "float32")).dtype == "float32"


# --- the task -----------------------------------------------------------------------------------------


def small_classifier(variant, classes=3):
    converter = hub_models.TinyNetsImageConverter(image_size=(32, 32))
    return hub_models.TinyNetsImageClassifier(
        hub_models.TinyNetsBackbone(spec=variant),
        classes,
        preprocessor=hub_models.TinyNetsImageClassifierPreprocessor(converter),
    )


@pytest.mark.parametrize("variant", FAMILIES)
def test_task_config_round_trip_and_one_fit_step(variant, images):
    classifier = small_classifier(variant)
    config, names = json_config(classifier), set(dir(classifier))
    revived = hub_models.TinyNetsImageClassifier.from_config(classifier.get_config())
    assert json_config(revived) == config and set(dir(revived)) == names
    classifier.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.copy() for w in classifier.get_weights()]
    history = classifier.fit(images, np.array([0, 1, 2]), batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, classifier.get_weights()))
    assert classifier.predict(images, verbose=0).shape == (3, 3)


# --- presets ------------------------------------------------------------------------------------------


def test_preset_names_cover_every_registered_checkpoint_and_the_configuration_only_networks():
    names = hub_models.preset_names()
    assert {
        "ghostnet_050_imagenet",
        "ghostnet_100_imagenet",
        "ghostnet_130_imagenet_ssld",
        "tinynet_e_imagenet",
    } <= set(names)
    assert {"ghostnet_a", "ghostnet_b", "ghostnet_c", "ghostnet_d"} <= set(names)
    backbone = hub_models.TinyNetsBackbone.from_preset("ghostnet_a")  # configuration only: no download
    assert backbone.spec.name == "ghostnet_a"


@pytest.mark.parametrize("variant", FAMILIES)
def test_named_preset_matches_the_evaluation_transform_and_round_trips_offline(variant, registered, images, tmp_path):
    classifier = hub_models.TinyNetsImageClassifier.from_preset(f"{variant}_imagenet", activation="softmax")
    transform = TRANSFORMS[variant]
    converter = classifier.preprocessor.image_converter
    assert converter.image_size == (transform["input_size"],) * 2 and converter.crop_pct == transform["crop_pct"]
    # keras-tinynet evaluate: eval_preprocess with the entry's transform, then the builder's model.
    size = transform["input_size"]
    reference = models.VARIANTS[variant](
        weights=str(registered["root"] / f"{variant}.weights.h5"), input_shape=(size, size, 3)
    )
    mean, std = (
        np.array(transform.get("mean", [0.485, 0.456, 0.406])),
        np.array(transform.get("std", [0.229, 0.224, 0.225])),
    )
    prepared = np.stack([eval_preprocess(i, size, transform["crop_pct"], transform["interpolation"]) for i in images])
    if "mean" in transform:  # the builder's own normalization is ImageNet's: give it the image it would see
        prepared = (
            (prepared / 255.0 - mean) / std * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
        ) * 255.0
    expected = reference.predict(prepared, verbose=0)
    got = classifier.predict(images, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # save_to_preset / from_preset, with the network gone.
    preset_dir = tmp_path / "preset"
    hub_models.save_preset(classifier, preset_dir, source="test")
    os.environ[MIRROR_ENV] = "http://127.0.0.1:9"  # nothing listens there
    try:
        revived = hub_models.TinyNetsImageClassifier.from_preset(str(preset_dir))
        backbone = hub_models.TinyNetsBackbone.from_preset(str(preset_dir))
    finally:
        del os.environ[MIRROR_ENV]
    np.testing.assert_array_equal(revived.predict(images, verbose=0), got)
    assert json.loads((preset_dir / "metadata.json").read_text())["source"] == "test"
    np.testing.assert_array_equal(
        backbone.predict(np.ones((1, 32, 32, 3)), verbose=0),
        classifier.backbone.predict(np.ones((1, 32, 32, 3)), verbose=0),
    )


def test_named_preset_offline_fails_as_weights_imagenet_does(served, tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry_document(served, base="http://127.0.0.1:9")))
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_home"))
    with pytest.raises(WeightsDownloadError) as from_builder:
        models.VARIANTS["tinynet_e"](weights="imagenet")
    with pytest.raises(WeightsDownloadError) as from_preset:
        hub_models.TinyNetsBackbone.from_preset("tinynet_e_imagenet")
    assert str(from_preset.value) == str(from_builder.value)


def test_unknown_preset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown preset 'ghostnet_999'.*ghostnet_100_imagenet.*tinynet_e_imagenet"):
        hub_models.TinyNetsImageClassifier.from_preset("ghostnet_999")


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("presets") / "tinynet_e"
    return hub_models.save_preset(small_classifier("tinynet_e"), path, source="test")


def test_preset_of_another_model_is_refused(tmp_path):
    other = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=(None, None, 3),
    )
    other.save_to_preset(tmp_path / "resnet")
    for cls in (hub_models.TinyNetsBackbone, hub_models.TinyNetsImageClassifier):
        with pytest.raises(ValueError, match=r"holds a ResNetBackbone, not a TinyNetsBackbone"):
            cls.from_preset(str(tmp_path / "resnet"))


def test_truncated_weights_file_is_one_clear_error(preset_dir, tmp_path):
    broken = shutil.copytree(preset_dir, tmp_path / "broken")
    weights = os.path.join(broken, "model.weights.h5")
    with open(weights, "r+b") as handle:
        handle.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(ValueError, match=r"weights file that cannot be read.*truncated or corrupt"):
        hub_models.TinyNetsBackbone.from_preset(str(broken))


def test_config_with_a_wrong_class_count_is_one_clear_error(preset_dir, tmp_path):
    broken = shutil.copytree(preset_dir, tmp_path / "broken")
    task = os.path.join(broken, "task.json")
    config = json.loads(open(task).read())
    config["config"]["num_classes"] = 5
    with open(task, "w") as handle:
        json.dump(config, handle)
    with pytest.raises(ValueError) as error:
        hub_models.TinyNetsImageClassifier.from_preset(str(broken))
    assert str(error.value) == (
        f"Preset {str(broken)!r}: its config does not match its weights: layer 'predictions' is (1280, 5) in the "
        "config and (1280, 3) in the weights file (e.g. another class count); fix the config or save the preset again."
    )


def test_publish_hub_writes_a_keras_hub_preset(registered, tmp_path, images):
    code, out, err = run_script(
        "publish_hub",
        "--model",
        "tinynet_e",
        "--weights",
        "imagenet",
        "--forms",
        "keras_hub",
        "--output_dir",
        str(tmp_path),
    )
    assert code == 0, err
    preset = tmp_path / "tinynet_e_keras_hub"
    assert {"config.json", "model.weights.h5", "task.json", "preprocessor.json", "metadata.json"} <= set(
        os.listdir(preset)
    )
    metadata = json.loads((preset / "metadata.json").read_text())
    assert (metadata["source"], metadata["license"], metadata["top1"]) == ("test tinynet_e", "Apache-2.0", 42.5)
    published = hub_models.TinyNetsImageClassifier.from_preset(str(preset))
    named = hub_models.TinyNetsImageClassifier.from_preset("tinynet_e_imagenet")
    np.testing.assert_allclose(published.predict(images, verbose=0), named.predict(images, verbose=0), atol=1e-5)


def test_publish_hub_forms_error_lists_keras_hub(tmp_path):
    code, _, err = run_script(
        "publish_hub", "--model=ghostnet_d", f"--output_dir={tmp_path}", "--forms=keras_hub,detector"
    )
    assert code == 2 and "--forms must be a comma-separated subset of classification, feature_vector, keras_hub" in err


def test_readme_fine_tuning_example_runs(registered, tmp_path):
    """The README's keras-hub fine-tuning block, on a written folder, the served TinyNet-E and one epoch."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    section = readme.split("## keras-hub: backbones", 1)[1]
    code = section.split("```python\n")[2].split("```")[0]
    rng = np.random.default_rng(3)
    for name in ("daisy", "tulip"):
        (tmp_path / "flowers" / name).mkdir(parents=True)
        for index in range(2):
            keras.utils.save_img(tmp_path / "flowers" / name / f"{index}.png", rng.integers(0, 256, (40, 50, 3)))
    replacements = {
        '"flowers"': repr(str(tmp_path / "flowers")),
        "image_size=(256, 256)": "image_size=(48, 48)",
        '"ghostnet_100_imagenet"': '"tinynet_e_imagenet"',
        "epochs=3": "epochs=1, verbose=0",
    }
    for old, new in replacements.items():
        assert old in code
        code = code.replace(old, new)
    scope = {"TinyNetsImageClassifier": hub_models.TinyNetsImageClassifier}
    exec(code, scope)
    assert scope["classifier"].num_classes == 2 and np.isfinite(scope["classifier"].history.history["loss"][0])
