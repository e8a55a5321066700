"""Keras pieces of the networks: conv-BN-activation, ghost module, squeeze-excite, and the blocks of
`spec.BLOCK_KINDS` (ghost bottleneck; EfficientNet's inverted residual and depthwise-separable block).

Each function takes a symbolic tensor and returns one, naming every layer after its place in the
network (`block7_ghost1_primary_conv`) so that weight files and converters can map layers by name.
Only Keras layers and ops are used, so the models run on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_tinynet.spec import BlockSpec

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's 0.1; Keras' default 0.99 leaves small models untrainable from scratch


# PyTorch's default initialization (uniform, variance 1 / (3 fan_in)), which the reference GhostNet
# trains with. He initialization makes random-weight activations double in every residual block and
# overflow float16 in inference mode before BN statistics exist.
CONV_INITIALIZER = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
DENSE_INITIALIZER = CONV_INITIALIZER


@keras.saving.register_keras_serializable(package="keras_tinynet")
class ChannelSlice(layers.Layer):
    """Keeps the first `channels` channels: a ghost module of odd width drops its last cheap channel."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, inputs):
        return inputs[..., : self.channels]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def activation_layer(activation: str, name: str, dtype=None) -> layers.Layer:
    # Keras 3's hard_swish is x * relu6(x + 3) / 6, as in timm (tests pin the formula).
    if activation == "relu":
        return layers.ReLU(name=name, dtype=dtype)
    return layers.Activation(activation, name=name, dtype=dtype)


def conv_bn(
    x,
    filters: int | None,
    kernel_size: int,
    name: str,
    stride: int = 1,
    activation: str | None = None,
    dtype=None,
):
    """Convolution (depthwise when `filters` is None) + BN (+ activation), padded like PyTorch.

    Keras' "same" padding is asymmetric at stride 2, which breaks parity with ported weights, so
    strided convolutions pad kernel_size // 2 on every side and then run "valid".
    """
    if stride > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad", dtype=dtype)(x)
    padding = "valid" if stride > 1 or kernel_size == 1 else "same"
    if filters is None:
        conv = layers.DepthwiseConv2D(
            kernel_size,
            stride,
            padding=padding,
            use_bias=False,
            depthwise_initializer=CONV_INITIALIZER,
            name=f"{name}_conv",
            dtype=dtype,
        )
    else:
        conv = layers.Conv2D(
            filters,
            kernel_size,
            stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=CONV_INITIALIZER,
            name=f"{name}_conv",
            dtype=dtype,
        )
    x = conv(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn", dtype=dtype)(x)
    if activation:
        x = activation_layer(activation, f"{name}_act", dtype)(x)
    return x


def ghost_module(x, out_channels: int, name: str, activation: str | None, dtype=None):
    """Half the channels from a 1x1 conv ("primary"), the other half from a cheap 3x3 depthwise conv."""
    init = -(-out_channels // 2)
    primary = conv_bn(x, init, 1, f"{name}_primary", activation=activation, dtype=dtype)
    cheap = conv_bn(primary, None, 3, f"{name}_cheap", activation=activation, dtype=dtype)
    if 2 * init != out_channels:
        cheap = ChannelSlice(out_channels - init, name=f"{name}_cheap_slice", dtype=dtype)(cheap)
    return layers.Concatenate(name=f"{name}_concat", dtype=dtype)([primary, cheap])


def squeeze_excite(
    x, channels: int, se_channels: int, name: str, reduce_activation="relu", gate="hard_sigmoid", dtype=None
):
    """Channel attention: pool, 1x1 reduce + activation, 1x1 expand, gate.

    GhostNet's is ReLU and the hard sigmoid relu6(x + 3) / 6; EfficientNet's the block activation and sigmoid.
    """
    weights = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool", dtype=dtype)(x)
    weights = layers.Conv2D(se_channels, 1, kernel_initializer=CONV_INITIALIZER, name=f"{name}_reduce", dtype=dtype)(
        weights
    )
    weights = activation_layer(reduce_activation, f"{name}_reduce_act", dtype)(weights)
    weights = layers.Conv2D(channels, 1, kernel_initializer=CONV_INITIALIZER, name=f"{name}_expand", dtype=dtype)(
        weights
    )
    weights = layers.Activation(gate, name=f"{name}_gate", dtype=dtype)(weights)
    return layers.Multiply(name=f"{name}_multiply", dtype=dtype)([x, weights])


def _residual(x, shortcut, name: str, drop_rate: float, dtype):
    if drop_rate > 0:
        # Stochastic depth: drop the whole residual branch of a sample.
        x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop", dtype=dtype)(x)
    return layers.Add(name=f"{name}_add", dtype=dtype)([x, shortcut])


def ghost_bottleneck(
    x,
    block: BlockSpec,
    name: str,
    activation: str,
    drop_rate: float = 0.0,
    dtype=None,
):
    """ghost1 (expand, activated) -> strided depthwise -> SE -> ghost2 (project, linear) + shortcut."""
    shortcut = x
    x = ghost_module(x, block.mid_channels, f"{name}_ghost1", activation, dtype)
    if block.stride > 1:
        x = conv_bn(x, None, block.kernel_size, f"{name}_dw", stride=block.stride, dtype=dtype)
    if block.se_channels:
        x = squeeze_excite(x, block.mid_channels, block.se_channels, f"{name}_se", dtype=dtype)
    x = ghost_module(x, block.out_channels, f"{name}_ghost2", None, dtype)
    if not block.has_identity_shortcut:
        shortcut = conv_bn(shortcut, None, block.kernel_size, f"{name}_shortcut_dw", stride=block.stride, dtype=dtype)
        shortcut = conv_bn(shortcut, block.out_channels, 1, f"{name}_shortcut", dtype=dtype)
    return _residual(x, shortcut, name, drop_rate, dtype)


def inverted_residual(
    x,
    block: BlockSpec,
    name: str,
    activation: str,
    drop_rate: float = 0.0,
    dtype=None,
):
    """EfficientNet's MBConv: 1x1 expand ("mbconv" only) -> depthwise -> SE -> 1x1 project (linear) + identity.

    A "ds" block is the same without the expansion. Blocks that change width or stride have no shortcut.
    """
    inputs = x
    if block.kind == "mbconv":
        x = conv_bn(x, block.mid_channels, 1, f"{name}_expand", activation=activation, dtype=dtype)
    x = conv_bn(x, None, block.kernel_size, f"{name}_dw", stride=block.stride, activation=activation, dtype=dtype)
    if block.se_channels:
        x = squeeze_excite(x, block.mid_channels, block.se_channels, f"{name}_se", activation, "sigmoid", dtype)
    x = conv_bn(x, block.out_channels, 1, f"{name}_project", dtype=dtype)
    if not block.has_identity_shortcut:
        return x
    return _residual(x, inputs, name, drop_rate, dtype)


BLOCK_BUILDERS = {"ghost": ghost_bottleneck, "mbconv": inverted_residual, "ds": inverted_residual}
