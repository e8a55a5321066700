"""The eval transform is timm's: the same pixels, within 1 grey level, on real photos of several shapes.

timm (imported first by conftest) transforms PIL images; the images are compared in [0, 255] before
normalization (the models normalize inside). Published accuracies are reproducible only with this.
"""

import numpy as np
import pytest
from conftest import timm

from keras_tinynet import data
from keras_tinynet.spec import IMAGENET_PREPROCESSING
from keras_tinynet.weights import registry

pytestmark = pytest.mark.skipif(timm is None, reason="needs the `parity` extra (torch, timm)")

MAX_GREY_LEVELS = 1.0


def photos() -> dict:
    """scikit-image's photos: square, landscape and (transposed) portrait, all larger than the resize."""
    from skimage import data as skimage_data

    rocket, chelsea = skimage_data.rocket(), skimage_data.chelsea()
    return {
        "astronaut 512x512": skimage_data.astronaut(),
        "chelsea 300x451": chelsea,
        "coffee 400x600": skimage_data.coffee(),
        "rocket 427x640": rocket,
        "rocket 640x427 (portrait)": rocket.transpose(1, 0, 2),
        "chelsea 451x300 (portrait)": chelsea.transpose(1, 0, 2),
    }


def timm_pixels(transform, image: np.ndarray) -> np.ndarray:
    """timm's transform up to, not including, its conversion to a normalized tensor: the uint8 crop."""
    from PIL import Image

    pil_image = Image.fromarray(image)
    for step in transform.transforms:
        if "ToTensor" in type(step).__name__:
            break
        pil_image = step(pil_image)
    return np.asarray(pil_image, dtype=np.float32)


def max_difference(transform, image_size: int, crop_pct: float, interpolation: str) -> dict:
    differences = {}
    for name, image in photos().items():
        expected = timm_pixels(transform, image)
        ours = data.eval_preprocess(image, image_size, crop_pct, interpolation).numpy()
        assert ours.shape == expected.shape, name
        differences[name] = float(np.abs(ours - expected).max())
    return differences


def test_eval_transform_matches_timms_ghostnet_100_data_config():
    config = timm.data.resolve_data_config({}, model=timm.create_model("ghostnet_100"))
    transform = timm.data.create_transform(**config)
    published = registry.resolve_entry("ghostnet_100", "imagenet").entry
    assert (config["crop_pct"], config["interpolation"]) == (published["crop_pct"], published["interpolation"])
    assert (config["crop_pct"], config["interpolation"]) == (
        IMAGENET_PREPROCESSING.crop_pct,
        IMAGENET_PREPROCESSING.interpolation,
    )
    differences = max_difference(transform, config["input_size"][-1], config["crop_pct"], config["interpolation"])
    print(f"timm ghostnet_100 data config {config}: max |ours - timm| per photo {differences}")
    assert max(differences.values()) <= MAX_GREY_LEVELS, differences


def registered_transforms() -> list:
    """The (crop_pct, interpolation) of every shipped entry that carries them, and a bilinear one."""
    entries = [entry for tags in registry.load_registry().values() for entry in tags.values()]
    carried = {(e["crop_pct"], e["interpolation"]) for e in entries if "crop_pct" in e and "interpolation" in e}
    return sorted(carried | {(0.9, "bilinear")})


@pytest.mark.parametrize("crop_pct, interpolation", registered_transforms())
@pytest.mark.parametrize("image_size", [224, 160])
def test_eval_transform_matches_timm_for_registered_crop_and_interpolation(image_size, crop_pct, interpolation):
    transform = timm.data.create_transform(
        input_size=(3, image_size, image_size), crop_pct=crop_pct, interpolation=interpolation
    )
    differences = max_difference(transform, image_size, crop_pct, interpolation)
    print(f"size {image_size}, crop_pct {crop_pct}, {interpolation}: max |ours - timm| per photo {differences}")
    assert max(differences.values()) <= MAX_GREY_LEVELS, differences


def test_unknown_interpolation_is_named():
    with pytest.raises(data.DataError, match=r"`interpolation` must be one of .*received interpolation='nearest'"):
        data.eval_preprocess(np.zeros((40, 40, 3), np.uint8), 32, 0.875, "nearest")
