"""The Keras faces of the networks: `GhostNet` and `TinyNet` (a spec or a FLOPs budget), one builder per preset
in the keras.applications manner (`GhostNetA(...)`, `GhostNet100(...)`, `TinyNetE(...)`), and `feature_pyramid`.

The public signature mirrors keras.applications (include_top, weights, input_tensor, input_shape,
pooling, classes, classifier_activation, include_preprocessing, name), plus the knobs of this
family (activation, dropout_rate, drop_connect_rate) and keras-hub's `dtype`. All of them call
`builder.build`.
"""

from __future__ import annotations

import functools
import inspect

import keras

from keras_tinynet.builder import build
from keras_tinynet.counting import count
from keras_tinynet.network import as_float32
from keras_tinynet.presets import PRESETS, builder_name, get_spec
from keras_tinynet.spec import NetworkSpec

__all__ = ["GhostNet", "TinyNet", "build", "feature_pyramid", "VARIANTS", *(builder_name(p) for p in PRESETS)]


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


def feature_pyramid(model: keras.Model) -> keras.Model:
    """The five stage outputs of a GhostNet (strides 2, 4, 8, 16, 32) as a dict-output model.

    Keys "P1".."P5" follow keras-hub's `pyramid_outputs`, which the builders record from the spec's
    stage ends while building and `Network.get_config` keeps through from_config and `.keras` reloads.
    """
    pyramid = getattr(model, "pyramid_outputs", None)
    if not pyramid:
        raise ValueError(
            f"`model` must be a GhostNet built by keras_tinynet (its builders record `pyramid_outputs`); "
            f"{model.name!r} has none. A .keras file or get_config() of a keras_tinynet model keeps them; for a model "
            "loaded another way (a Keras 2 .h5, a SavedModel), build it with its builder and load the weights."
        )
    outputs = {level: as_float32(tensor, level) for level, tensor in pyramid.items()}
    return keras.Model(model.input, outputs, name=f"{model.name}_pyramid")


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
    activation: `"relu"`, `"hard_swish"` or `"swish"`; None (the default) is the family's (GhostNet: relu,
        the paper's base rows, hard_swish its "+ HSwish" rows; TinyNet: swish).
    dropout_rate: dropout before the classifier.
    drop_connect_rate: stochastic depth, growing linearly to this rate over the blocks.
    dtype: dtype or policy of every layer (the classifier stays float32; outputs are float32).
    name: model name; defaults to the variant name.

Returns:
    A `keras.Model` instance.
"""


def preset_docstring(preset: str) -> str:
    """BASE_DOCSTRING filled with the preset's title, description, size and computed counts."""
    spec = get_spec(preset)
    counts = count(spec)
    return BASE_DOCSTRING.format(
        title=PRESETS[preset].title,
        description=PRESETS[preset].description + ".",
        size=spec.default_size,
        params=counts.params / 1e6,
        flops=counts.flops / 1e6,
    )


def preset_builder(preset: str):
    """Makes the decorated def the builder of `preset`: the def declares the keras.applications signature
    (what readers, IDEs and type checkers see); a call builds the preset with the arguments bound to it,
    and the docstring is BASE_DOCSTRING with the preset's counts."""

    def decorate(function):
        signature = inspect.signature(function)
        if function.__name__ != builder_name(preset):
            raise ValueError(
                f"The builder of {preset!r} must be named {builder_name(preset)}; got {function.__name__}."
            )

        @functools.wraps(function)
        def builder(*args, **kwargs) -> keras.Model:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return build(preset, **bound.arguments)

        builder.__doc__ = preset_docstring(preset)
        return builder

    return decorate


@preset_builder("ghostnet_a")
def GhostNetA(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_b")
def GhostNetB(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_c")
def GhostNetC(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_d")
def GhostNetD(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_050")
def GhostNet050(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_100")
def GhostNet100(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_130")
def GhostNet130(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("ghostnet_150")
def GhostNet150(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("tinynet_a")
def TinyNetA(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("tinynet_b")
def TinyNetB(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("tinynet_c")
def TinyNetC(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("tinynet_d")
def TinyNetD(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


@preset_builder("tinynet_e")
def TinyNetE(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    activation=None,
    dropout_rate=0.2,
    drop_connect_rate=0.0,
    dtype=None,
    name=None,
) -> keras.Model: ...


VARIANTS = {
    "ghostnet_a": GhostNetA,
    "ghostnet_b": GhostNetB,
    "ghostnet_c": GhostNetC,
    "ghostnet_d": GhostNetD,
    "ghostnet_050": GhostNet050,
    "ghostnet_100": GhostNet100,
    "ghostnet_130": GhostNet130,
    "ghostnet_150": GhostNet150,
    "tinynet_a": TinyNetA,
    "tinynet_b": TinyNetB,
    "tinynet_c": TinyNetC,
    "tinynet_d": TinyNetD,
    "tinynet_e": TinyNetE,
}
"""Each preset's builder, by preset name (the decorator checked each def's name against its preset)."""
