"""Datasets and the tf.data input pipeline of the training recipe.

Sources: the embedded `digits` (scikit-learn's 1,797 handwritten digits, upscaled to RGB: real images
that need no download), `folder:/path` (tfds' ImageFolder layout: `/path/<split>/<class>/<image>`),
and any tensorflow-datasets name (`imagenet2012` with `--data_dir` and `--manual_dir`).

Training images get a random-resized crop (bicubic), a horizontal flip, color jitter and optionally
RandAugment; evaluation images are resized to size / crop_pct and center-cropped exactly as timm does
(tests/test_eval_transform.py pins it). Both yield float32
RGB in [0, 255] (the models normalize inside) and one-hot labels (for label smoothing).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import difflib
import math
import os

import numpy as np
import tensorflow as tf

from keras_tinynet.spec import IMAGENET_PREPROCESSING, INTERPOLATIONS, Preprocessing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
EVAL_SPLIT_NAMES = ("validation", "val", "test")


class DataError(ValueError):
    """A dataset that cannot be used, with what was found and what is expected."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train and an eval split of (uint8 RGB image, int label) examples, and what they hold."""

    name: str
    train: tf.data.Dataset
    eval: tf.data.Dataset
    train_examples: int
    eval_examples: int
    class_names: tuple[str, ...]
    in_memory: bool  # small enough to cache decoded
    typical_size: int | None = None  # the training images' median short side, where known before training

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation: random-resized-crop area range, flip, color jitter, RandAugment (N, M)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_jitter: float = 0.4
    randaugment: tuple[int, int] | None = None

    def __post_init__(self):
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise DataError(f"`crop_scale` must satisfy 0 < min <= max <= 1; received {self.crop_scale}.")
        if not 0 <= self.color_jitter < 1:
            raise DataError(f"`color_jitter` must be in [0, 1); received {self.color_jitter}.")
        if self.randaugment is not None:
            ops, magnitude = self.randaugment
            if not (1 <= ops <= 10 and 0 <= magnitude <= 10):
                raise DataError(
                    f"`randaugment` must be N,M with 1 <= N <= 10 operations and magnitude 0 <= M <= 10; "
                    f"received {self.randaugment}."
                )


def load(name: str, data_dir: str | None = None, manual_dir: str | None = None, seed: int = 0) -> Dataset:
    """Opens a dataset by name: "digits", "folder:/path" or a tensorflow-datasets name."""
    if name == "digits":
        return _digits(seed)
    if name.startswith("folder:"):
        return _image_folder(name[len("folder:") :])
    return _tfds(name, data_dir, manual_dir)


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 8x8 gray levels 0..16 -> 32x32 RGB 0..255, so random crops have pixels to work with.
    gray = tf.image.resize(digits.images[..., None] * (255.0 / 16.0), (32, 32), method="bicubic")
    images = tf.cast(tf.clip_by_value(tf.repeat(gray, 3, axis=-1), 0, 255), tf.uint8).numpy()
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(images))
    train, held_out = order[:cut], order[cut:]

    def split(indices):
        return tf.data.Dataset.from_tensor_slices((images[indices], digits.target[indices].astype(np.int64)))

    return Dataset(
        "digits",
        split(train),
        split(held_out),
        len(train),
        len(held_out),
        tuple(str(d) for d in range(10)),
        in_memory=True,
        typical_size=32,
    )


def _image_folder(root: str) -> Dataset:
    import tensorflow_datasets as tfds

    if not os.path.isdir(root):
        raise DataError(f"Image folder not found: `dataset`='folder:{root}' is not a directory.")
    splits = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in splits), None)
    if "train" not in splits or eval_split is None:
        raise DataError(
            f"Image folder {root!r} must hold a 'train' split and one of {EVAL_SPLIT_NAMES}, each with one "
            f"subfolder per class (/path/<split>/<class>/<image>); found subfolders {splits}."
        )
    files, train_files = [], 0
    for split in ("train", eval_split):
        for class_name in sorted(os.listdir(os.path.join(root, split))):
            class_dir = os.path.join(root, split, class_name)
            if not os.path.isdir(class_dir):
                continue
            images = [os.path.join(class_dir, f) for f in os.listdir(class_dir) if f.lower().endswith(IMAGE_EXTENSIONS)]
            if not images:
                raise DataError(
                    f"Class folder {class_dir!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                    "remove it or add images."
                )
            files += images
        if split == "train":
            train_files = len(files)
    classes = sorted(
        d for d in os.listdir(os.path.join(root, "train")) if os.path.isdir(os.path.join(root, "train", d))
    )
    if len(classes) < 2:
        raise DataError(
            f"Image folder {root!r} must hold at least 2 classes to classify (one subfolder each in train/); "
            f"found {len(classes)}: {classes}."
        )
    unreadable, short_sides = _inspect(files)
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + ("\n  ..." if len(unreadable) > 10 else "")
        raise DataError(
            f"{len(unreadable)} image file(s) in {root!r} cannot be decoded; remove, rename or replace them:\n  {shown}"
        )

    builder = tfds.ImageFolder(root)
    decoders = {"image": tfds.decode.SkipDecoding()}
    train = builder.as_dataset(split="train", shuffle_files=True, decoders=decoders)
    evaluation = builder.as_dataset(split=eval_split, shuffle_files=False, decoders=decoders)

    def decoded(ds):
        return ds.map(lambda ex: (_decode(ex["image"]), ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)

    info = builder.info
    return Dataset(
        f"folder:{root}",
        decoded(train),
        decoded(evaluation),
        info.splits["train"].num_examples,
        info.splits[eval_split].num_examples,
        tuple(info.features["label"].names),
        in_memory=False,
        typical_size=int(np.median(short_sides[:train_files])),
    )


def _inspect(paths: list[str]) -> tuple[list[str], list[int]]:
    """Decodes every file before training (in parallel threads): `path: why` for each one TensorFlow cannot read
    and decode (names that are not UTF-8, which TensorFlow cannot open, dangling links, corrupt or fake
    images), and the short side of each image that decodes, in the order of `paths`. Paths are shown with the
    bytes that are not UTF-8 escaped (\\xff), so that they can be printed."""

    def inspect(path):
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            return f"{shown}: its name is not UTF-8"
        if os.path.islink(path) and not os.path.exists(path):
            return f"{shown}: a dangling symbolic link to {os.readlink(path)!r}"
        try:
            shape = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).shape
            return min(shape[0], shape[1])
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            return f"{shown}: not an image TensorFlow decodes (JPEG, PNG, GIF, BMP)"
        except tf.errors.OpError as error:
            return f"{shown}: {error.message}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(inspect, paths))
    return sorted(r for r in results if isinstance(r, str)), [r for r in results if isinstance(r, int)]


def _decode(encoded):
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _tfds(name: str, data_dir: str | None, manual_dir: str | None) -> Dataset:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = difflib.get_close_matches(name, tfds.list_builders(), n=3)
        hint = f" Did you mean {', '.join(known)}?" if known else ""
        raise DataError(
            f"Unknown dataset `dataset`={name!r}: not 'digits', not 'folder:/path' and not a "
            f"tensorflow-datasets name.{hint}"
        ) from None
    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder.download_and_prepare(download_config=config)
    splits = builder.info.splits
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in splits), None)
    if "train" not in splits or eval_split is None:
        raise DataError(f"Dataset {name!r} needs a 'train' split and one of {EVAL_SPLIT_NAMES}; it has {list(splits)}.")
    features = builder.info.features
    image_key = (
        "image" if "image" in features else next(k for k, f in features.items() if isinstance(f, tfds.features.Image))
    )
    label = features["label"]

    def pairs(split, shuffle):
        ds = builder.as_dataset(split=split, shuffle_files=shuffle, decoders={image_key: tfds.decode.SkipDecoding()})
        return ds.map(lambda ex: (_decode(ex[image_key]), ex["label"]), num_parallel_calls=tf.data.AUTOTUNE)

    return Dataset(
        name,
        pairs("train", True),
        pairs(eval_split, False),
        splits["train"].num_examples,
        splits[eval_split].num_examples,
        tuple(label.names),
        in_memory=False,
        typical_size=min(features[image_key].shape[:2]) if None not in features[image_key].shape[:2] else None,
    )


def random_resized_crop(image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A random crop of `scale` of the area and `ratio` aspect, resized (bicubic) to size x size."""
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, crop_size)
    resized = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method="bicubic")
    resized.set_shape([size, size, 3])
    return resized


def color_jitter(image, strength: float):
    """Random brightness, contrast and saturation, each by a factor in [1 - strength, 1 + strength]."""
    factors = tf.random.uniform([3], 1 - strength, 1 + strength)
    image = image * factors[0]
    mean = tf.reduce_mean(image)
    image = (image - mean) * factors[1] + mean
    gray = tf.reduce_mean(image, axis=-1, keepdims=True)
    return (image - gray) * factors[2] + gray


def train_preprocess(image, size: int, augmentation: Augmentation, randaugment=None):
    image = random_resized_crop(image, size, augmentation.crop_scale, augmentation.crop_ratio)
    if augmentation.flip:
        image = tf.image.random_flip_left_right(image)
    if augmentation.color_jitter:
        image = color_jitter(image, augmentation.color_jitter)
    image = tf.clip_by_value(image, 0.0, 255.0)
    if randaugment is not None:
        image = tf.clip_by_value(tf.cast(randaugment(image), tf.float32), 0.0, 255.0)
    return image


def resize_size(height, width, image_size: int, crop_pct: float = IMAGENET_PREPROCESSING.crop_pct):
    """(height, width) after resizing the shorter side to floor(image_size / crop_pct), as timm's eval does.

    torchvision's rule: the long side becomes int(scale_size * long / short). Works on ints or int tensors.
    """
    scale_size = tf.constant(math.floor(image_size / crop_pct), tf.float64)
    h64, w64 = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    width_is_short = width <= height
    new_h = tf.where(width_is_short, tf.floor(scale_size * h64 / w64), scale_size)
    new_w = tf.where(width_is_short, scale_size, tf.floor(scale_size * w64 / h64))
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def eval_preprocess(
    image,
    image_size: int,
    crop_pct: float = IMAGENET_PREPROCESSING.crop_pct,
    interpolation: str = IMAGENET_PREPROCESSING.interpolation,
):
    """One decoded image [h, w, 3] (any dtype, values in [0, 255]) -> float32 [size, size, 3] of grey levels.

    The eval transform of the published weights (timm `transforms_imagenet_eval` on PIL images): resize
    the shorter side to floor(size / crop_pct) with antialiased `interpolation` ("bicubic" or "bilinear"),
    then center-crop size x size (offsets rounded half to even, like Python's round). PIL resizes the
    width, rounds to uint8, then resizes the height and rounds again; doing the same, rather than one
    float resize, keeps every pixel of a downscaled photo within 1 grey level of timm's (one float
    resize differed by up to 8 at saturated edges, where PIL clips the first pass's overshoot).
    """
    if interpolation not in INTERPOLATIONS:
        raise DataError(f"`interpolation` must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}.")
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    shape = tf.shape(image)
    new_h, new_w = resize_size(shape[0], shape[1], image_size, crop_pct)
    resized = image[None]
    for pass_size in (tf.stack([shape[0], new_w]), tf.stack([new_h, new_w])):
        resized = tf.image.resize(resized, pass_size, method=interpolation, antialias=True)
        resized = tf.clip_by_value(tf.floor(resized + 0.5), 0.0, 255.0)  # PIL's uint8 rounding
    top = tf.cast(tf.round(tf.cast(new_h - image_size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - image_size, tf.float64) / 2.0), tf.int32)
    cropped = resized[0, top : top + image_size, left : left + image_size]
    return tf.ensure_shape(cropped, [image_size, image_size, 3])


def pipeline(
    dataset: Dataset,
    training: bool,
    image_size: int,
    batch_size: int,
    augmentation: Augmentation = Augmentation(),
    seed: int | None = None,
    preprocessing: Preprocessing = IMAGENET_PREPROCESSING,
) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 255], one-hot labels) of the global `batch_size`.

    Evaluation images get `eval_preprocess` with the `crop_pct` and `interpolation` of `preprocessing`
    (the published weights' own, to reproduce their accuracy).

    Decoding and augmentation run in parallel; under a tf.distribute strategy Keras splits each global
    batch between the replicas (the batch size must be divisible by their number).
    """
    ds = dataset.train if training else dataset.eval
    if dataset.in_memory:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(min(dataset.train_examples, 20_000), seed=seed, reshuffle_each_iteration=True)
        randaugment = None
        if augmentation.randaugment is not None:
            import keras

            ops, magnitude = augmentation.randaugment
            randaugment = keras.layers.RandAugment(value_range=(0, 255), num_ops=ops, factor=magnitude / 10, seed=seed)

        def prepare(image, label):
            return train_preprocess(image, image_size, augmentation, randaugment), label
    else:

        def prepare(image, label):
            return eval_preprocess(image, image_size, preprocessing.crop_pct, preprocessing.interpolation), label

    num_classes = dataset.num_classes
    ds = ds.map(lambda image, label: prepare(image, label), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda image, label: (image, tf.one_hot(label, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
