"""Shared by tests/test_export*.py: a small GhostNet trained on real images, and the exports made from it.

Everything expensive is computed once per test process (functools.cache), whichever export test file
asks first: training the model (about a minute on 2 CPU cores) and running scripts/export.py over it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import importlib.util
import io
import json
import os
import shutil
import tempfile

import numpy as np

from keras_tinynet import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def tiny_spec(name: str = "tiny_digits"):
    """GhostNet-A scaled to 64x64, depth 0.3, width 0.25: 11 blocks, 0.77M parameters, 3M FLOPs."""
    from keras_tinynet.presets import TINYNET_GHOSTNET
    from keras_tinynet.spec import scale

    return scale(TINYNET_GHOSTNET, SIZE / 240, 0.3, 0.25, name=name)


@functools.cache
def workdir() -> str:
    path = tempfile.mkdtemp(prefix="keras_tinynet_export_tests-")
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def digits():
    """scikit-learn's 1,797 handwritten digits (8x8, 0..16) as 64x64 RGB in [0, 255], shuffled once."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype("float32")[..., None] * (255.0 / 16.0)
    images = tf.image.resize(images, [SIZE, SIZE], method="bilinear").numpy()
    images = np.repeat(np.clip(images, 0, 255), 3, axis=-1)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order], data.target[order].astype("int64")


@dataclasses.dataclass(frozen=True)
class Trained:
    model: object  # keras.Model holding the EMA weights
    weights: str  # .weights.h5 written from the EMA weights, as the training script does
    spec: str  # NetworkSpec JSON
    labels: str  # labels file
    x_test: np.ndarray
    y_test: np.ndarray
    accuracy: float


@functools.cache
def trained_digits() -> Trained:
    """Trains the tiny GhostNet on 1,200 digits for 3 epochs with EMA, and saves the EMA weights.

    A stand-in for the training script: optimizer EMA (`use_ema=True`), then the EMA values copied into
    the model (what the SwapEMAWeights callback does) and written as `.weights.h5`. Stochastic depth is on,
    as in a real recipe, so the file's layer order differs from a plain inference build.
    """
    import keras

    from keras_tinynet import GhostNet

    keras.utils.set_random_seed(0)
    x, y = digits()
    x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]
    model = GhostNet(tiny_spec(), input_shape=(SIZE, SIZE, 3), classes=10, dropout_rate=0.0, drop_connect_rate=0.05)
    optimizer = keras.optimizers.Adam(3e-3, use_ema=True, ema_momentum=0.8)
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=False)
    model.fit(x_train, y_train, batch_size=50, epochs=3, verbose=0)
    optimizer.finalize_variable_values(model.trainable_variables)
    accuracy = float(np.mean(np.argmax(model.predict(x_test, batch_size=200, verbose=0), -1) == y_test))

    directory = os.path.join(workdir(), "trained")
    os.makedirs(directory)
    weights = os.path.join(directory, "ema.weights.h5")
    model.save_weights(weights)
    spec = os.path.join(directory, "tiny_digits.json")
    with open(spec, "w") as handle:
        json.dump(tiny_spec().to_dict(), handle)
    labels = os.path.join(directory, "labels.txt")
    with open(labels, "w") as handle:
        handle.write("\n".join(DIGIT_NAMES) + "\n")
    return Trained(model, weights, spec, labels, x_test, y_test, accuracy)


def write_images(images, directory: str, fmt: str = "png") -> list[str]:
    """Writes uint8-rounded images (an array or a list of arrays of any sizes) as PNG or JPEG files; returns paths."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        pixels = tf.constant(np.clip(np.round(image), 0, 255).astype(np.uint8))
        data = tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels, quality=95)
        path = os.path.join(directory, f"{index:04d}.{fmt}")
        with open(path, "wb") as handle:
            handle.write(data.numpy())
        paths.append(path)
    return paths


def run_script(command: str, *args: str) -> tuple[int, str, str]:
    """Runs `keras-tinynet <command>` (publish_hub: publish-hub) in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([command.replace("_", "-"), *args])
    return code, out.getvalue(), err.getvalue()


@dataclasses.dataclass(frozen=True)
class Exported:
    export_dir: str
    saved_model: str
    tflite: dict  # quantization -> path
    onnx: str
    stdout: str
    calibration_dir: str


@functools.cache
def exported_digits() -> Exported:
    """scripts/export.py over the trained digits model, every format, int8 calibrated on a PNG folder."""
    trained = trained_digits()
    x, _ = digits()
    calibration_dir = os.path.join(workdir(), "calibration")
    write_images(x[:100], calibration_dir)  # training images, never the test split
    export_dir = os.path.join(workdir(), "exported")
    formats = "saved_model,tflite_float32,tflite_float16,tflite_int8"
    if importlib.util.find_spec("tf2onnx") is not None:  # the ONNX tests skip without it
        formats += ",onnx"
    code, stdout, stderr = run_script(
        "export",
        f"--spec={trained.spec}",
        f"--weights={trained.weights}",
        f"--labels={trained.labels}",
        f"--image_size={SIZE}",
        f"--output_dir={export_dir}",
        f"--formats={formats}",
        f"--representative_data={calibration_dir}",
        "--benchmark_runs=20",
        "--threads=2",
    )
    assert code == 0, f"scripts/export.py failed ({code}):\n{stdout}\n{stderr}"
    tflite = {q: os.path.join(export_dir, f"tiny_digits.{q}.tflite") for q in ("float32", "float16", "int8")}
    return Exported(
        export_dir,
        os.path.join(export_dir, "tiny_digits", "1"),
        tflite,
        os.path.join(export_dir, "tiny_digits.onnx"),
        stdout,
        calibration_dir,
    )
