"""The step every graph export shares: the model in inference mode as a tf.function, frozen to constants.

Frozen, because converters given the variables keep them as resource variables (TFLite re-reads and
transposes every weight at each call: 5x slower) or as extra graph inputs a caller would have to feed
(tf2onnx leaves the Normalization layer's mean and variance so).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_tinynet import _compat


def frozen_inference_function(model: keras.Model, image_size: int, batch: int | None):
    """The concrete function images [batch, size, size, 3] -> probabilities, with every variable a constant."""
    return frozen_function(model, (batch, image_size, image_size, 3), ("probabilities",))


def frozen_function(model: keras.Model, input_shape, output_names) -> tf.types.experimental.ConcreteFunction:
    """The concrete function `images` of `input_shape` -> {name: float32 output}, one name per model output.

    `frozen.outputs` come sorted by name (tf.nest flattens dicts so), not in the model's order.
    """
    holder = tf.Module(name="inference")
    holder.model_variables = [variable.value for variable in model.variables]

    def outputs(images):
        values = keras.tree.flatten(model(images, training=False))
        return {name: tf.cast(value, tf.float32) for name, value in zip(output_names, values, strict=True)}

    signature = [tf.TensorSpec(input_shape, tf.float32, name="images")]
    holder.function = tf.function(outputs, autograph=False, input_signature=signature)
    return _compat.convert_variables_to_constants(holder.function.get_concrete_function())
