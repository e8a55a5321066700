"""The fastest in-process form of a model, in one call: `compile_for_inference(model)`.

A Keras model called as built pays for what inference does not need: BatchNormalization and the SE
gates' arithmetic as separate passes over the activations, and, at small batches, TensorFlow's per-op
dispatch, which costs more than the arithmetic of a 50M-FLOPs network. The compiled form runs the model
rewritten for inference (`inference.optimize_for_inference`) in TFLite's interpreter with XNNPACK, which
TensorFlow ships, or in a tf.function; benchmarks/inference.py measures both beside the model as built
(`compiled`, `optimized` and `keras` rows) and `RUNTIME_BY_DEFAULT` follows that measurement.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_tinynet.inference import optimize_for_inference

RUNTIMES = ("auto", "tflite", "tensorflow", "keras")
RUNTIME_BY_DEFAULT = "tflite"  # on the TensorFlow backend; others run the rewritten model through Keras


def default_threads() -> int:
    """The CPU cores this process may use (its affinity mask, as TensorFlow's own thread pools count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CompiledModel:
    """`model` for inference: call it on images [n, height, width, channels]; it returns numpy arrays
    structured as the model's outputs, equal to `model(images, training=False)` within float32 rounding.

    `runtime` says what runs it; `model` is the rewritten Keras model it was compiled from.
    """

    def __init__(self, model: keras.Model, runtime: str, num_threads: int):
        self.model = model
        self.runtime = runtime
        self.num_threads = num_threads
        self._input_shape = tuple(model.input_shape)
        self._output_names = [f"output_{index:03d}" for index in range(len(model.outputs))]
        self._single_output = not keras.tree.is_nested(model.output)
        # One per input shape: XNNPACK plans a fixed-shape graph best (a dynamic batch ran GhostNet-D 1.2x slower)
        self._interpreters: dict[tuple[int, ...], tuple] = {}  # (interpreter, input index, output indices)
        self._function = None

    def __call__(self, images) -> np.ndarray | list | dict:
        images = np.asarray(images, np.float32)
        expected = self._input_shape[1:]
        if images.ndim != len(self._input_shape) or any(
            size is not None and size != given for size, given in zip(expected, images.shape[1:], strict=True)
        ):
            allowed = ", ".join("any" if size is None else str(size) for size in expected)
            raise ValueError(f"`images` must have shape [n, {allowed}]; received shape {images.shape}.")
        if self.runtime == "tflite":
            outputs = self._tflite(images)
        elif self.runtime == "tensorflow":
            outputs = self._tensorflow(images)
        else:
            outputs = keras.tree.flatten(self.model.predict_on_batch(images))
        if self._single_output:
            return np.asarray(outputs[0])  # the common case, without the tree's per-call cost
        return keras.tree.pack_sequence_as(self.model.output, [np.asarray(output) for output in outputs])

    def _tensorflow(self, images) -> list:
        import tensorflow as tf

        if self._function is None:
            model = self.model
            self._function = tf.function(lambda x: keras.tree.flatten(model(x, training=False)), reduce_retracing=True)
        return [output.numpy() for output in self._function(tf.constant(images))]

    def _tflite(self, images) -> list:
        from keras_tinynet.export.tflite import ready_interpreter, tflite_converter

        ready = self._interpreters.get(images.shape)
        if ready is None:
            converter = tflite_converter(self.model, images.shape, self._output_names)
            interpreter, error = ready_interpreter(None, self.num_threads, model_content=converter.convert())
            if error:
                raise RuntimeError(f"XNNPACK refused {self.model.name} for images of shape {images.shape}: {error}")
            (image_input,) = interpreter.get_input_details()
            outputs = interpreter.get_signature_runner().get_output_details()
            ready = (interpreter, image_input["index"], [outputs[name]["index"] for name in self._output_names])
            self._interpreters[images.shape] = ready
        interpreter, input_index, output_indices = ready
        interpreter.set_tensor(input_index, images)
        interpreter.invoke()
        return [interpreter.get_tensor(index) for index in output_indices]


def compile_for_inference(model: keras.Model, *, runtime: str = "auto", num_threads: int | None = None):
    """The fastest in-process form of a functional Keras model, for inference: a `CompiledModel`.

    The model is rewritten for inference (`optimize_for_inference`: the same outputs, fewer ops) and, on the
    TensorFlow backend, converted in memory for TFLite's interpreter with XNNPACK (`runtime="tflite"`,
    the default: the fastest measured at batch 1 and 32); `runtime="tensorflow"` runs it in a tf.function
    instead, `"keras"` through `predict_on_batch` (the only choice on the JAX and PyTorch backends).
    The first call at each input shape (batch size and image size) converts the model for it (seconds).
    `num_threads` defaults to the cores this process may use.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {RUNTIMES}; received runtime={runtime!r}.")
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"`num_threads` must be a positive integer or None; received num_threads={num_threads!r}.")
    tensorflow_backend = keras.backend.backend() == "tensorflow"
    if runtime == "auto":
        runtime = RUNTIME_BY_DEFAULT if tensorflow_backend else "keras"
    elif runtime != "keras" and not tensorflow_backend:
        raise ValueError(
            f"`runtime`={runtime!r} needs the TensorFlow backend; this is Keras on {keras.backend.backend()!r} "
            "(use runtime='keras' or 'auto')."
        )
    return CompiledModel(optimize_for_inference(model), runtime, num_threads or default_threads())
