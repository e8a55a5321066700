"""The input pipeline on real images: shapes, value ranges, crops inside the image, deterministic eval."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_tinynet import data


def write_image_folder(root, classes=("cat", "dog"), per_class=4, size=(40, 30), seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "validation"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (rng.random((*size, 3)) * 80 + index * 150).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_digits_are_real_rgb_images():
    dataset = data.load("digits")
    assert (dataset.train_examples, dataset.eval_examples, dataset.num_classes) == (1437, 360, 10)
    image, label = next(iter(dataset.train))
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8 and 0 <= int(label) <= 9
    assert int(tf.reduce_max(image)) > 200 and int(tf.reduce_min(image)) == 0


def test_train_pipeline_shapes_ranges_and_one_hot_labels():
    dataset = data.load("digits")
    batches = data.pipeline(dataset, True, 48, 16, data.Augmentation(randaugment=(2, 9)), seed=1)
    images, labels = next(iter(batches))
    assert images.shape == (16, 48, 48, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 255.0
    assert labels.shape == (16, 10) and np.allclose(labels.numpy().sum(axis=1), 1.0)
    assert len(list(batches)) == dataset.train_examples // 16  # drop_remainder in training


def test_random_resized_crops_stay_inside_the_image():
    # A flat image inside: any padding from outside the image would pull values towards 0.
    image = tf.fill([60, 90, 3], tf.constant(200, tf.uint8))
    for seed in range(20):
        tf.random.set_seed(seed)
        crop = data.random_resized_crop(image, 32, scale=(0.08, 1.0))
        assert crop.shape == (32, 32, 3)
        np.testing.assert_allclose(crop.numpy(), 200.0, atol=1e-3)


def test_crop_area_follows_the_scale_range():
    image = tf.reshape(tf.range(100 * 100, dtype=tf.int32), [100, 100, 1])
    areas = []
    for seed in range(30):
        tf.random.set_seed(seed)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.shape(image),
            tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            min_object_covered=0.0,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.25, 0.5),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        areas.append(int(size[0]) * int(size[1]) / 10000)
        assert int(begin[0]) + int(size[0]) <= 100 and int(begin[1]) + int(size[1]) <= 100
    assert min(areas) >= 0.2 and max(areas) <= 0.55


def test_eval_preprocessing_is_a_deterministic_center_crop():
    # Left half dark, right half bright: a center crop keeps both halves in equal parts.
    image = np.zeros((100, 160, 3), np.uint8)
    image[:, 80:] = 255
    first = data.eval_preprocess(tf.constant(image), 64).numpy()
    second = data.eval_preprocess(tf.constant(image), 64).numpy()
    np.testing.assert_array_equal(first, second)
    assert first.shape == (64, 64, 3) and first.min() >= 0 and first.max() <= 255
    np.testing.assert_allclose(first[:, :30].mean(), 0, atol=1)
    np.testing.assert_allclose(first[:, 34:].mean(), 255, atol=1)


def test_image_folder_dataset(tmp_path):
    dataset = data.load(f"folder:{write_image_folder(tmp_path)}")
    assert dataset.class_names == ("cat", "dog") and (dataset.train_examples, dataset.eval_examples) == (8, 8)
    images, labels = next(iter(data.pipeline(dataset, False, 32, 8)))
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8, 2)


def test_corrupt_image_is_named(tmp_path):
    root = write_image_folder(tmp_path)
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(data.DataError, match=r"(?s)1 image file\(s\) .* cannot be decoded.*broken.jpg"):
        data.load(f"folder:{root}")


def test_unreadable_file_names_and_dangling_links_are_named(tmp_path):
    root = write_image_folder(tmp_path)
    cat = root / "train" / "cat"
    os.rename(cat / "0.jpg", os.path.join(os.fsencode(cat), b"bad\xff.jpg"))
    os.symlink(tmp_path / "gone.jpg", cat / "link.jpg")
    with pytest.raises(data.DataError) as raised:
        data.load(f"folder:{root}")
    message = str(raised.value)
    assert "2 image file(s)" in message and "cannot be decoded" in message
    assert f"{cat}/bad\\xff.jpg: its name is not UTF-8" in message
    assert f"{cat}/link.jpg: a dangling symbolic link to '{tmp_path / 'gone.jpg'}'" in message
    message.encode("utf-8")  # printable


def test_empty_class_folder_is_named(tmp_path):
    root = write_image_folder(tmp_path)
    (root / "train" / "bird").mkdir()
    with pytest.raises(data.DataError, match=r"Class folder .*bird' holds no images"):
        data.load(f"folder:{root}")


def test_folder_layout_errors(tmp_path):
    with pytest.raises(data.DataError, match="is not a directory"):
        data.load(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "train").mkdir()
    with pytest.raises(data.DataError, match=r"must hold a 'train' split and one of \('validation', 'val', 'test'\)"):
        data.load(f"folder:{tmp_path}")


def test_unknown_dataset_name_suggests_close_ones():
    with pytest.raises(data.DataError, match=r"Unknown dataset `dataset`='mnistt'.*Did you mean mnist"):
        data.load("mnistt")


def test_augmentation_arguments_are_checked():
    with pytest.raises(data.DataError, match="`randaugment` must be N,M"):
        data.Augmentation(randaugment=(0, 9))
    with pytest.raises(data.DataError, match="`crop_scale` must satisfy"):
        data.Augmentation(crop_scale=(0.9, 0.5))
