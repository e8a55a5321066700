"""The graph of every network: `build_graph(spec, ...)` lays out stem, blocks, final conv and top from a spec.

It checks nothing and loads nothing (the builders in `models` validate the arguments before it and load
`weights=` after it), so another face of the same network (a keras-hub Backbone) can reuse it. It
records the stage outputs at strides 2..32 as `pyramid_outputs`, keras-hub's name, while building.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_tinynet import blocks as B
from keras_tinynet.spec import IMAGENET_PREPROCESSING, NetworkSpec


@keras.saving.register_keras_serializable(package="keras_tinynet")
class Network(keras.Model):
    """A functional keras.Model that keeps its own dtype policy and its `pyramid_outputs` through get_config,
    from_config and `.keras`.

    Keras' functional models save their layers' policies but not their own, and compile() reads the
    model's policy to wrap the optimizer in a LossScaleOptimizer under mixed_float16. The pyramid is
    saved as the name of the layer that makes each level, so a reloaded model finds the same tensors.
    """

    def get_config(self):
        config = {**super().get_config(), "dtype": keras.dtype_policies.serialize(self.dtype_policy)}
        pyramid = getattr(self, "pyramid_outputs", None)
        if pyramid:
            config["pyramid_outputs"] = {
                level: tensor._keras_history.operation.name for level, tensor in pyramid.items()
            }
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        dtype = config.pop("dtype", None)
        pyramid = config.pop("pyramid_outputs", None)
        model = super().from_config(config, custom_objects)
        if dtype is not None:
            model.dtype_policy = keras.dtype_policies.deserialize(dtype)
        if pyramid:
            model.pyramid_outputs = {level: model.get_layer(name).output for level, name in pyramid.items()}
        return model


def build_graph(
    spec: NetworkSpec,
    *,
    input_shape: tuple,
    input_tensor=None,
    include_top: bool = True,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation="softmax",
    include_preprocessing: bool = True,
    activation: str,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.0,
    dtype=None,
    name: str,
) -> keras.Model:
    """The Network of `spec` on an input of `input_shape` (or `input_tensor`), with its `pyramid_outputs`."""
    image_input = _image_input(input_tensor, input_shape)
    x = image_input
    if include_preprocessing:
        x = _preprocessing(x, input_shape[-1], dtype)
    x, pyramid = _backbone(x, spec, activation, drop_connect_rate, dtype)
    if include_top:
        x = classifier_head(x, spec, classes, classifier_activation, activation, dropout_rate, dtype)
    else:
        x = _pooled_features(x, pooling, dtype)
    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else image_input
    model = Network(inputs, x, name=name)
    if dtype is not None:
        # The model's own policy, not only its layers': compile() adds loss scaling under mixed_float16.
        model.dtype_policy = keras.dtype_policies.get(dtype)
    model.pyramid_outputs = pyramid  # keras-hub's name: the stage outputs at strides 2..32, from the spec
    return model


def _image_input(input_tensor, input_shape: tuple):
    if input_tensor is None:
        return layers.Input(shape=input_shape, name="images")
    if keras.backend.is_keras_tensor(input_tensor):
        return input_tensor
    return layers.Input(tensor=input_tensor, shape=input_shape, name="images")


def _backbone(x, spec: NetworkSpec, activation: str, drop_connect_rate: float, dtype) -> tuple:
    """Stem, blocks and final conv; returns the features and the stage ends {"P1": ..., "P5": ...}."""
    x = B.conv_bn(x, spec.stem_channels, 3, "stem", stride=2, activation=activation, dtype=dtype)
    stage_ends = spec.stage_ends
    pyramid = {}
    for index, block in enumerate(spec.blocks):
        drop_rate = drop_connect_rate * index / len(spec.blocks)
        x = B.BLOCK_BUILDERS[block.kind](x, block, f"block{index}", activation, drop_rate, dtype)
        if index in stage_ends:
            pyramid[f"P{len(pyramid) + 1}"] = x
    x = B.conv_bn(x, spec.final_channels, 1, "final", activation=activation, dtype=dtype)
    return x, pyramid


def classifier_head(x, spec: NetworkSpec, classes: int, classifier_activation, activation: str, dropout_rate, dtype):
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool", dtype=dtype)(x)
    if spec.head_channels:
        x = layers.Conv2D(spec.head_channels, 1, kernel_initializer=B.CONV_INITIALIZER, name="conv_head", dtype=dtype)(
            x
        )
        x = B.activation_layer(activation, "conv_head_act", dtype)(x)
    x = layers.Flatten(name="flatten", dtype=dtype)(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="top_dropout", dtype=dtype)(x)
    # Float32 logits and softmax, also under mixed precision.
    return layers.Dense(
        classes,
        activation=classifier_activation,
        kernel_initializer=B.DENSE_INITIALIZER,
        name="predictions",
        dtype="float32",
    )(x)


def _pooled_features(x, pooling: str | None, dtype):
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool", dtype=dtype)(x)
    return as_float32(x, "features")


def as_float32(x, name: str):
    """Casts a mixed-precision output to float32 (a no-op layer is not added for float32 outputs)."""
    if keras.backend.standardize_dtype(x.dtype) == "float32":
        return x
    return layers.Activation("linear", dtype="float32", name=name)(x)


def _preprocessing(x, channels: int, dtype):
    """RGB in [0, 255] -> ImageNet mean/std; other channel counts use the mean of the RGB statistics."""
    mean, std = IMAGENET_PREPROCESSING.mean, IMAGENET_PREPROCESSING.std
    if channels != 3:
        mean, std = [sum(mean) / 3] * channels, [sum(std) / 3] * channels
    x = layers.Rescaling(1.0 / 255.0, name="rescaling", dtype=dtype)(x)
    return layers.Normalization(mean=mean, variance=[s * s for s in std], name="normalization", dtype=dtype)(x)
