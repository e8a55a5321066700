"""TFLite: float32, float16 and full-integer int8 conversion of the frozen, inference-optimized graph, and the
interpreter (XNNPACK) that reads it back: details, prediction and latency."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from keras_tinynet import _compat
from keras_tinynet.data import eval_preprocess
from keras_tinynet.export.exportable import Exportable
from keras_tinynet.export.graph import frozen_function
from keras_tinynet.export.image_decoding import IMAGE_SUFFIXES, decode_and_preprocess
from keras_tinynet.files import write_atomically
from keras_tinynet.spec import IMAGENET_PREPROCESSING

TFLITE_QUANTIZATIONS = ("float32", "float16", "int8")
INT8_IO_TYPES = ("uint8", "int8")


def representative_images(
    source: str, image_size: int, count: int = 100, crop_pct: float = IMAGENET_PREPROCESSING.crop_pct
) -> np.ndarray:
    """Up to `count` eval-preprocessed images, float32 [n, size, size, 3] in [0, 255], from `source`: a folder of
    images (searched recursively for .jpg, .jpeg, .png, .bmp, .gif, in sorted order), `digits` (the embedded
    training images) or `tfds:<name>[:<split>]` (a tensorflow-datasets dataset with an `image` feature, split
    `train` by default; it must already be prepared, as no download is attempted). Grayscale images are
    repeated to RGB, an alpha channel is dropped.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`representative_count` must be a positive integer; received {count!r}.")
    if os.path.isdir(source):
        files = sorted(
            os.path.join(directory, file_name)
            for directory, _, names in os.walk(source)
            for file_name in names
            if file_name.lower().endswith(IMAGE_SUFFIXES)
        )[:count]
        if not files:
            raise ValueError(
                f"`representative_data`={source!r} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})."
            )
        images = []
        for index, path in enumerate(files):
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                images.append(decode_and_preprocess(tf.constant(data), index, image_size, crop_pct).numpy())
            except tf.errors.InvalidArgumentError as error:
                raise ValueError(
                    f"`representative_data`: {path!r} is not a readable image ({error.message.splitlines()[0]})."
                ) from None
        return np.stack(images)
    if source == "digits":  # the embedded training images: what a run on the default dataset calibrates with
        from keras_tinynet import data

        images = [image for image, _ in data.load("digits").train.take(count).as_numpy_iterator()]
        return np.stack([eval_preprocess(tf.constant(image), image_size, crop_pct).numpy() for image in images])
    if source.startswith("tfds:"):
        parts = source[len("tfds:") :].split(":")
        if not parts[0] or len(parts) > 2:
            raise ValueError(f"`representative_data` must be a folder or tfds:<name>[:<split>]; received {source!r}.")
        name, split = parts[0], (parts[1] if len(parts) == 2 else "train")
        import tensorflow_datasets as tfds

        dataset = tfds.load(name, split=split, shuffle_files=False, download=False)
        images = []
        for example in dataset.take(count):
            if "image" not in example:
                raise ValueError(
                    f"`representative_data`={source!r}: the dataset has no 'image' feature ({sorted(example)})."
                )
            image = example["image"]
            channels = image.shape[-1]
            if channels == 1:
                image = tf.repeat(image, 3, axis=-1)
            elif channels == 4:
                image = image[..., :3]
            elif channels != 3:
                raise ValueError(
                    f"`representative_data`={source!r}: images have {channels} channels; 1, 3 or 4 are supported."
                )
            images.append(eval_preprocess(image, image_size, crop_pct).numpy())
        if not images:
            raise ValueError(f"`representative_data`={source!r} has no examples.")
        return np.stack(images)
    raise ValueError(
        f"`representative_data` must be a folder of images, digits or tfds:<name>[:<split>]; received {source!r} "
        "(no such folder)."
    )


def export_tflite(
    exportable: Exportable,
    path: str | os.PathLike,
    quantization: str = "float32",
    representative_data: np.ndarray | Iterable | None = None,
    int8_io: str = "uint8",
    batch_size: int = 1,
) -> str:
    """Converts the model, optimized for inference and weights frozen, to TFLite and writes it atomically to `path`.

    The model takes float32 images [batch_size, size, size, 3], RGB in [0, 255], and returns the
    probabilities [batch_size, classes]. `quantization`:
    - "float32": no quantization;
    - "float16": float16 weights (computed in float32 where the hardware has no float16);
    - "int8": full-integer quantization of every op (TFLITE_BUILTINS_INT8), calibrated on
      `representative_data` (float32 images [n, size, size, 3] in [0, 255], e.g. `representative_images`),
      with `int8_io` ("uint8" or "int8") input and output tensors; feed them quantized with the scale and
      zero point of the input details (`tflite_predict` does).
    """
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {TFLITE_QUANTIZATIONS}; received quantization={quantization!r}."
        )
    if int8_io not in INT8_IO_TYPES:
        raise ValueError(f"`int8_io` must be one of {INT8_IO_TYPES}; received int8_io={int8_io!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; received batch_size={batch_size!r}.")
    size = exportable.image_size
    converter = tflite_converter(exportable.inference_model, (batch_size, size, size, 3))
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative_data is None:
            raise ValueError("`representative_data` is required for quantization='int8' (images to calibrate on).")
        samples = [np.asarray(image, np.float32) for image in representative_data]
        if not samples or any(sample.shape != (size, size, 3) for sample in samples):
            shapes = sorted({sample.shape for sample in samples})
            raise ValueError(
                f"`representative_data` must hold images of shape ({size}, {size}, 3); received "
                f"{len(samples)} images of shapes {shapes[:3]}."
            )

        def dataset():  # batches of batch_size, the last one filled up from the start
            for start in range(0, len(samples), batch_size):
                yield [np.stack([samples[(start + i) % len(samples)] for i in range(batch_size)])]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, int8_io)
        converter.inference_output_type = getattr(tf, int8_io)
    path = os.fspath(path)
    write_atomically(path, converter.convert())
    return path


def tflite_converter(model, input_shape, output_names=("probabilities",)) -> tf.lite.TFLiteConverter:
    """A converter of `model`, frozen, with one `serving_default` signature: images -> {output_names}."""
    frozen = frozen_function(model, input_shape, output_names)
    # The empty trackable keeps the signature, and `named` its names (frozen outputs come sorted by name).
    # (The signature is spelled out: TensorFlow 2.21's frozen functions have no structured_input_signature.)
    signature = [tf.TensorSpec(input_shape, tf.float32, name="images")]
    named = tf.function(lambda images: dict(zip(sorted(output_names), frozen(images))), input_signature=signature)
    return tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()], tf.Module())


def make_interpreter(
    path: str | None = None, num_threads: int | None = None, xnnpack: bool = True, model_content: bytes | None = None
):
    """A TFLite interpreter of a file or of `model_content`: ai-edge-litert's where installed, else
    TensorFlow's (deprecated, same results)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(
        model_path=path,
        model_content=model_content,
        num_threads=num_threads,
        experimental_op_resolver_type=resolver,
    )


def ready_interpreter(path: str | None, num_threads: int | None = None, model_content: bytes | None = None):
    """Allocated interpreter with XNNPACK (the default delegate); without it where XNNPACK refuses the model."""
    interpreter = make_interpreter(path, num_threads, xnnpack=True, model_content=model_content)
    try:
        interpreter.allocate_tensors()
        return interpreter, None
    except RuntimeError as error:
        interpreter = make_interpreter(path, num_threads, xnnpack=False, model_content=model_content)
        interpreter.allocate_tensors()
        return interpreter, str(error).strip()


def _delegated(interpreter) -> bool | None:
    """Whether a delegate (XNNPACK, the only default one) took nodes; None where it cannot be told."""
    try:
        return any(op["op_name"] == "DELEGATE" for op in _compat.tflite_ops(interpreter))
    except (AttributeError, KeyError, ValueError):
        return None


def tflite_details(path: str | os.PathLike) -> dict:
    """Input and output tensor details (name, shape, dtype, quantization) and the file size."""
    path = os.fspath(path)
    interpreter = make_interpreter(path, xnnpack=False)
    interpreter.allocate_tensors()

    def describe(details):
        return [
            {
                "name": d["name"],
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])},
            }
            for d in details
        ]

    return {
        "path": path,
        "bytes": os.path.getsize(path),
        "inputs": describe(interpreter.get_input_details()),
        "outputs": describe(interpreter.get_output_details()),
    }


def format_tflite_details(details: dict) -> str:
    lines = [f"{details['path']} ({details['bytes'] / 1e6:.2f} MB)"]
    for kind in ("inputs", "outputs"):
        for d in details[kind]:
            q = d["quantization"]
            quant = f", quantization scale={q['scale']:.6g} zero_point={q['zero_point']}" if q["scale"] else ""
            lines.append(f"  {kind[:-1]:6} {d['name']}: shape={d['shape']} dtype={d['dtype']}{quant}")
    return "\n".join(lines)


def tflite_predict(path: str | os.PathLike, images, num_threads: int | None = None) -> np.ndarray:
    """Runs a TFLite model from `export_tflite` on float32 images [n, size, size, 3] in [0, 255].

    Quantizes the input and dequantizes the output of an int8 model; returns float32 probabilities.
    """
    interpreter, _ = ready_interpreter(os.fspath(path), num_threads)
    (input_details,) = interpreter.get_input_details()
    (output_details,) = interpreter.get_output_details()
    images = np.asarray(images, np.float32)
    expected = tuple(input_details["shape"][1:])
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"`images` must have shape [n, {', '.join(map(str, expected))}]; received {images.shape}.")
    batch = int(input_details["shape"][0])
    outputs = []
    for start in range(0, len(images), batch):
        value = images[start : start + batch]
        count = len(value)
        if count < batch:  # a fixed-batch model: pad the last chunk, drop the padding's outputs
            value = np.concatenate([value, np.zeros((batch - count, *expected), np.float32)])
        scale, zero_point = input_details["quantization"]
        if scale:
            info = np.iinfo(input_details["dtype"])
            value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
        interpreter.set_tensor(input_details["index"], value.astype(input_details["dtype"]))
        interpreter.invoke()
        output = interpreter.get_tensor(output_details["index"]).astype(np.float32)
        scale, zero_point = output_details["quantization"]
        if scale:
            output = (output - zero_point) * scale
        outputs.append(output[:count])
    return np.concatenate(outputs)


def benchmark_tflite(path: str | os.PathLike, runs: int = 50, warmup: int = 5, num_threads: int | None = None) -> dict:
    """Latency of one inference with the TFLite interpreter and XNNPACK (its default CPU delegate).

    Returns milliseconds (median, mean, min, p90 over `runs` invocations after `warmup`), the thread
    count and the delegate that ran it ("XNNPACK", or "none" with the reason where XNNPACK refused).
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive integer; received runs={runs!r}.")
    num_threads = num_threads or os.cpu_count() or 1
    interpreter, xnnpack_error = ready_interpreter(os.fspath(path), num_threads)
    (input_details,) = interpreter.get_input_details()
    rng = np.random.default_rng(0)
    dtype = np.dtype(input_details["dtype"])
    if dtype.kind == "f":
        value = rng.uniform(0, 255, input_details["shape"]).astype(dtype)
    else:
        info = np.iinfo(dtype)
        value = rng.integers(info.min, info.max, input_details["shape"], endpoint=True).astype(dtype)
    interpreter.set_tensor(input_details["index"], value)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    delegated = _delegated(interpreter)
    if xnnpack_error:
        delegate = f"none (XNNPACK refused the model: {xnnpack_error})"
    else:
        delegate = {True: "XNNPACK", False: "none (XNNPACK took no node)", None: "XNNPACK (default delegate)"}[
            delegated
        ]
    return {
        "median_ms": float(np.median(times)),
        "mean_ms": float(np.mean(times)),
        "min_ms": float(np.min(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": runs,
        "num_threads": num_threads,
        "delegate": delegate,
    }
