"""Keras functional builders: one `build` from a spec, its `GhostNet` and `TinyNet` faces, and the named variants.

The public signature mirrors keras.applications (include_top, weights, input_tensor, input_shape,
pooling, classes, classifier_activation, include_preprocessing, name), plus the knobs of this
family (activation, dropout_rate, drop_connect_rate) and keras-hub's `dtype`.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from keras_tinynet import blocks as B
from keras_tinynet.counting import count
from keras_tinynet.presets import PRESETS, builder_name, get_spec, model_name, resolve_spec
from keras_tinynet.spec import ACTIVATIONS, IMAGENET_CLASSES, IMAGENET_PREPROCESSING, MIN_SIZE, NetworkSpec
from keras_tinynet.weights import loading, registry


@keras.saving.register_keras_serializable(package="keras_tinynet")
class Network(keras.Model):
    """A functional keras.Model that keeps its own dtype policy through get_config, from_config and `.keras`.

    Keras' functional models save their layers' policies but not their own, and compile() reads the
    model's policy to wrap the optimizer in a LossScaleOptimizer under mixed_float16.
    """

    def get_config(self):
        return {**super().get_config(), "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        dtype = config.pop("dtype", None)
        model = super().from_config(config, custom_objects)
        if dtype is not None:
            model.dtype_policy = keras.dtype_policies.deserialize(dtype)
        return model


def GhostNet(spec: NetworkSpec | str | dict | None = None, *, flops: float | None = None, **kwargs) -> keras.Model:
    """Builds a GhostNet from a `spec` (a NetworkSpec, a preset name or a spec dict) or a `flops` budget.

    `GhostNet(flops=200e6)` runs the tiny formula on GhostNet-A and builds a 200M-FLOPs GhostNet at the
    image size it chose. `GhostNet(flops=200e6, curves="curves.json")` uses the curves a `keras-tinynet twist`
    search fitted instead, and `GhostNet(latency_ms=1.0, curves="curves.json")` those of a latency search.
    All other arguments are those of `build` and the variant builders (see `GhostNetA`).
    """
    return build(spec, flops=flops, base="ghostnet_a", **kwargs)


def TinyNet(spec: NetworkSpec | str | dict | None = None, *, flops: float | None = None, **kwargs) -> keras.Model:
    """Builds a TinyNet from a `spec` or a `flops` budget: the tiny formula on EfficientNet-B0, as in the paper.

    `TinyNet(flops=100e6)` is a 100M-FLOPs TinyNet; `curves=` and `latency_ms=` as in `GhostNet`; other
    arguments as `build` and `TinyNetA`.
    """
    return build(spec, flops=flops, base="efficientnet_b0", **kwargs)


def build(
    spec: NetworkSpec | str | dict | None = None,
    *,
    flops: float | None = None,
    base: str = "ghostnet_a",
    latency_ms: float | None = None,
    curves=None,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape=None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation="softmax",
    include_preprocessing: bool = True,
    activation: str | None = None,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.0,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """The one builder of every network: a `spec` (a NetworkSpec, a preset name or a spec dict), a `flops` budget
    for the tiny formula on `base` (with a twist search's `curves` if given), or a `latency_ms` budget with the
    `curves` of a latency search. `activation` None is the spec's own."""
    spec = _twisted_spec(spec, flops, latency_ms, curves, base)
    activation = spec.activation if activation is None else activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; received activation={activation!r}.")
    for arg, rate in (("dropout_rate", dropout_rate), ("drop_connect_rate", drop_connect_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"`{arg}` must be a number in [0, 1); received {arg}={rate!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'; received pooling={pooling!r}.")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer; received classes={classes!r}.")
    _check_weights_argument(weights, include_top, classes)
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_tinynet supports only the 'channels_last' image data format; received "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}."
        )

    input_shape = _input_shape(input_shape, input_tensor, spec.default_size, include_top, weights)
    if registry.is_tag(weights):
        registry.resolve_entry(spec.name, weights)  # before building: a one-line error naming what exists
    if input_tensor is None:
        image_input = layers.Input(shape=input_shape, name="images")
    elif keras.backend.is_keras_tensor(input_tensor):
        image_input = input_tensor
    else:
        image_input = layers.Input(tensor=input_tensor, shape=input_shape, name="images")

    x = image_input
    if include_preprocessing:
        x = _preprocessing(x, input_shape[-1], dtype)
    x = B.conv_bn(x, spec.stem_channels, 3, "stem", stride=2, activation=activation, dtype=dtype)
    stage_ends = spec.stage_ends
    pyramid = {}
    for index, block in enumerate(spec.blocks):
        drop_rate = drop_connect_rate * index / len(spec.blocks)
        x = B.BLOCK_BUILDERS[block.kind](x, block, f"block{index}", activation, drop_rate, dtype)
        if index in stage_ends:
            pyramid[f"P{len(pyramid) + 1}"] = x
    x = B.conv_bn(x, spec.final_channels, 1, "final", activation=activation, dtype=dtype)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool", dtype=dtype)(x)
        if spec.head_channels:
            x = layers.Conv2D(
                spec.head_channels, 1, kernel_initializer=B.CONV_INITIALIZER, name="conv_head", dtype=dtype
            )(x)
            x = B.activation_layer(activation, "conv_head_act", dtype)(x)
        x = layers.Flatten(name="flatten", dtype=dtype)(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout", dtype=dtype)(x)
        # Float32 logits and softmax, also under mixed precision.
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=B.DENSE_INITIALIZER,
            name="predictions",
            dtype="float32",
        )(x)
    else:
        if pooling == "avg":
            x = layers.GlobalAveragePooling2D(name="avg_pool", dtype=dtype)(x)
        elif pooling == "max":
            x = layers.GlobalMaxPooling2D(name="max_pool", dtype=dtype)(x)
        x = as_float32(x, "features")

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else image_input
    model = Network(inputs, x, name=model_name(spec, activation) if name is None else name)
    if dtype is not None:
        # The model's own policy, not only its layers': compile() adds loss scaling under mixed_float16.
        model.dtype_policy = keras.dtype_policies.get(dtype)
    model.pyramid_outputs = pyramid  # keras-hub's name: the stage outputs at strides 2..32, from the spec
    if registry.is_tag(weights):
        loading.load_pretrained_weights(model, spec.name, weights)
    elif weights is not None:
        loading.load_weights(model, weights)
    return model


def _twisted_spec(spec, flops, latency_ms, curves, base: str) -> NetworkSpec:
    given = {k: v for k, v in (("spec", spec), ("flops", flops), ("latency_ms", latency_ms)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one of `spec`, `flops` and `latency_ms`; received "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
            + "."
        )
    if curves is None and latency_ms is not None:
        raise ValueError(f"`latency_ms`={latency_ms!r} needs `curves`: the curves file of a twist --latency_ms search.")
    if spec is not None:
        if curves is not None:
            raise ValueError(f"`curves`={curves!r} applies to a `flops` or `latency_ms` budget, not to a `spec`.")
        return resolve_spec(spec=spec)
    if curves is None:
        return resolve_spec(flops=flops, base=base)
    from keras_tinynet.formula import tiny_formula
    from keras_tinynet.presets import ARCHITECTURES
    from keras_tinynet.twist.curves import load_curves

    if latency_ms is not None:
        return load_curves(curves).latency_spec(latency_ms, family=ARCHITECTURES[base].family)
    return tiny_formula(flops, base=base, curves=curves).spec


def as_float32(x, name: str):
    """Casts a mixed-precision output to float32 (a no-op layer is not added for float32 outputs)."""
    if keras.backend.standardize_dtype(x.dtype) == "float32":
        return x
    return layers.Activation("linear", dtype="float32", name=name)(x)


def feature_pyramid(model: keras.Model) -> keras.Model:
    """The five stage outputs of a GhostNet (strides 2, 4, 8, 16, 32) as a dict-output model.

    Keys "P1".."P5" follow keras-hub's `pyramid_outputs`, which the builders record from the spec's
    stage ends while building.
    """
    pyramid = getattr(model, "pyramid_outputs", None)
    if not pyramid:
        raise ValueError(
            f"`model` must be a GhostNet built by keras_tinynet (its builders record `pyramid_outputs`); "
            f"{model.name!r} has none. For a model loaded from a file, build it with its builder and load the weights."
        )
    outputs = {level: as_float32(tensor, level) for level, tensor in pyramid.items()}
    return keras.Model(model.input, outputs, name=f"{model.name}_pyramid")


def _check_weights_argument(weights, include_top: bool, classes: int) -> None:
    """Refuses a bad `weights=` before the model is built: a missing file, or a tag with another class count."""
    if registry.is_tag(weights):
        if include_top and classes != IMAGENET_CLASSES:
            raise ValueError(
                f"If using `weights={weights!r}` with `include_top=True`, `classes` should be {IMAGENET_CLASSES}. "
                f"Received: classes={classes}. Pass include_top=False to put a new classifier on the pretrained "
                "backbone."
            )
    elif not (weights is None or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), a registered tag such as "
            "'imagenet' (see weights/README.md), or the path of a weights file (.weights.h5, .keras, a Keras 2 "
            ".h5, a timm .safetensors or a keras_cv_attention_models .h5). "
            f"Received: weights={weights!r} (no such file)."
        )


def _input_shape(input_shape, input_tensor, default_size: int, include_top: bool, weights) -> tuple:
    """Validates the input shape the way keras.applications' `obtain_input_shape` does."""
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        return (default_size, default_size, 3) if include_top else (None, None, 3)
    if len(input_shape) != 3 or not all(d is None or (isinstance(d, int) and d > 0) for d in input_shape):
        raise ValueError(
            f"`input_shape` must be a tuple of three positive integers or None. Received: input_shape={input_shape}"
        )
    input_shape = tuple(input_shape)
    if input_shape[-1] is None:
        raise ValueError(f"The number of input channels must be known. Received: input_shape={input_shape}")
    if registry.is_tag(weights):
        if input_shape[-1] != 3:
            raise ValueError(
                f"The input must have 3 channels to load 'imagenet' weights; Received `input_shape={input_shape}`"
            )
        if include_top and input_shape[:2] != (default_size, default_size):
            raise ValueError(
                "When setting `include_top=True` and loading `imagenet` weights, `input_shape` should be "
                f"({default_size}, {default_size}, 3). Received: input_shape={input_shape}"
            )
    if any(d is not None and d < MIN_SIZE for d in input_shape[:2]):
        raise ValueError(f"Input size must be at least {MIN_SIZE}x{MIN_SIZE}; Received: input_shape={input_shape}")
    return input_shape


def _preprocessing(x, channels: int, dtype):
    """RGB in [0, 255] -> ImageNet mean/std; other channel counts use the mean of the RGB statistics."""
    mean, std = IMAGENET_PREPROCESSING.mean, IMAGENET_PREPROCESSING.std
    if channels != 3:
        mean, std = [sum(mean) / 3] * channels, [sum(std) / 3] * channels
    x = layers.Rescaling(1.0 / 255.0, name="rescaling", dtype=dtype)(x)
    return layers.Normalization(mean=mean, variance=[s * s for s in std], name="normalization", dtype=dtype)(x)


BASE_DOCSTRING = """Instantiates the {title} architecture.

{description}

Reference:
- [Model Rubik's Cube: Twisting Resolution, Depth and Width for TinyNets](https://arxiv.org/abs/2010.14819)
  (NeurIPS 2020); [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907) (CVPR 2020)

Default input size {size}x{size}; {params:.2f}M parameters and {flops:.0f}M FLOPs at that size with the
1000-class top. The model takes RGB images in [0, 255] and normalizes them itself with the ImageNet mean/std
(`include_preprocessing=True`); with `include_preprocessing=False` it expects the normalized image, as
`preprocess_input(x, mode="torch")` makes it.

Args:
    include_top: whether to include conv_head and the fully-connected classifier.
    weights: `None` (random initialization), `"imagenet"` (looked up in the weights registry; an error
        where no checkpoint is registered, never random weights) or the path of a `.weights.h5`, `.keras`
        or Keras 2 `.h5` file, loaded by layer name.
    input_tensor: optional Keras tensor (output of `layers.Input()`) to use as the image input.
    input_shape: optional shape tuple; any height and width from 32 up (None for dynamic sizes), any number
        of channels with `weights=None`. Defaults to ({size}, {size}, 3) with the top, (None, None, 3) without.
    pooling: optional pooling mode when `include_top` is False: `None` (the 4D feature map of the final
        conv), `"avg"` or `"max"` (global pooling to a 2D tensor).
    classes: number of classes to classify images into, with `include_top`.
    classifier_activation: activation of the top layer (`None` for logits), with `include_top`.
    include_preprocessing: whether the model rescales and normalizes its input itself.
    activation: `"relu"`, `"hard_swish"` or `"swish"`; defaults to the family's (GhostNet: relu, the paper's
        base rows, hard_swish its "+ HSwish" rows; TinyNet: swish).
    dropout_rate: dropout before the classifier.
    drop_connect_rate: stochastic depth, growing linearly to this rate over the blocks.
    dtype: dtype or policy of every layer (the classifier stays float32; outputs are float32).
    name: model name; defaults to the variant name.

Returns:
    A `keras.Model` instance.
"""


def _variant(preset_name: str):
    """Makes a preset's builder with the keras.applications signature and the shared docstring."""

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        include_preprocessing=True,
        activation=PRESETS[preset_name].architecture.activation,
        dropout_rate=0.2,
        drop_connect_rate=0.0,
        dtype=None,
        name=None,
    ):
        return build(preset_name, **{k: v for k, v in locals().items() if k != "preset_name"})

    spec = get_spec(preset_name)
    counts = count(spec)
    builder.__name__ = builder.__qualname__ = builder_name(preset_name)
    builder.__doc__ = BASE_DOCSTRING.format(
        title=PRESETS[preset_name].title,
        description=PRESETS[preset_name].description + ".",
        size=spec.default_size,
        params=counts.params / 1e6,
        flops=counts.flops / 1e6,
    )
    return builder


VARIANTS = {preset: _variant(preset) for preset in PRESETS}
globals().update({builder.__name__: builder for builder in VARIANTS.values()})
