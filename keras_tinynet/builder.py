"""`build`: every network's one builder, in three stages: check the arguments, lay out the graph
(`network.build_graph`), load `weights=` (`weights.resolver`). The public faces (`GhostNet`, `TinyNet`,
the preset builders) are in `models`.
"""

from __future__ import annotations

import keras

from keras_tinynet.network import build_graph
from keras_tinynet.spec import MIN_SIZE, NetworkSpec
from keras_tinynet.spec_resolver import model_name, resolve_activation, resolve_build_spec
from keras_tinynet.weights.resolver import TAG, check_registered, check_weights, load_weights_argument

FLOAT_POLICIES = ("float32", "float16", "bfloat16", "float64", "mixed_float16", "mixed_bfloat16")


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
    spec = resolve_build_spec(spec, flops, latency_ms, curves, base)
    activation = resolve_activation(spec, activation)
    check_arguments(
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout_rate=dropout_rate,
        drop_connect_rate=drop_connect_rate,
        dtype=dtype,
        input_tensor=input_tensor,
    )
    tagged = check_weights(weights, include_top=include_top, classes=classes) == TAG
    input_shape = checked_input_shape(input_shape, input_tensor, spec.default_size, include_top, tagged)
    check_registered(weights, spec.name)
    model = build_graph(
        spec,
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        activation=activation,
        dropout_rate=dropout_rate,
        drop_connect_rate=drop_connect_rate,
        dtype=dtype,
        name=model_name(spec, activation) if name is None else name,
    )
    load_weights_argument(model, weights, variant=spec.name)
    return model


def check_arguments(
    *, pooling, classes, classifier_activation, dropout_rate, drop_connect_rate, dtype, input_tensor
) -> None:
    """One-line ValueErrors naming the argument, the value received and what is allowed."""
    for arg, rate in (("dropout_rate", dropout_rate), ("drop_connect_rate", drop_connect_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"`{arg}` must be a number in [0, 1); received {arg}={rate!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'; received pooling={pooling!r}.")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer; received classes={classes!r}.")
    _check_classifier_activation(classifier_activation)
    _check_dtype(dtype)
    if input_tensor is not None and not (
        keras.backend.is_keras_tensor(input_tensor) or keras.ops.is_tensor(input_tensor)
    ):
        raise ValueError(
            "`input_tensor` must be None or a tensor such as the output of keras.Input(shape=(224, 224, 3)); "
            f"received input_tensor={input_tensor!r}."
        )
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_tinynet supports only the 'channels_last' image data format; received "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}."
        )


def _check_classifier_activation(classifier_activation) -> None:
    if classifier_activation is None or callable(classifier_activation):
        return
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError):
        raise ValueError(
            "`classifier_activation` must be None (logits), the name of a Keras activation such as 'softmax' or "
            f"a callable; received classifier_activation={classifier_activation!r}."
        ) from None


def _check_dtype(dtype) -> None:
    allowed = f"None, a float dtype or policy ({', '.join(FLOAT_POLICIES)}) or a keras.DTypePolicy of one"
    if dtype is None:
        return
    try:
        policy = keras.dtype_policies.get(dtype)
    except (ValueError, TypeError):
        raise ValueError(f"`dtype` must be {allowed}; received dtype={dtype!r}.") from None
    if getattr(policy, "quantization_mode", None) or not policy.variable_dtype.startswith(("float", "bfloat")):
        raise ValueError(f"`dtype` must be {allowed}; received dtype={dtype!r}.")


def checked_input_shape(input_shape, input_tensor, default_size: int, include_top: bool, tagged: bool) -> tuple:
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
    if tagged:
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
