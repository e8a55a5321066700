"""Trainable parameters and FLOPs of a NetworkSpec, in plain Python.

FLOPs follow the convention that reproduces every published figure of this family: multiply-adds of
all convolution and dense layers (squeeze-excite convolutions included) plus one multiply per element
of each squeeze-excite gated tensor. Batch norm, activations, additions and pooling are not counted.
Parameters are what Keras reports as trainable: weights, biases and BN gamma/beta (not BN statistics).
"""

from __future__ import annotations

import dataclasses

from keras_tinynet.spec import NetworkSpec


@dataclasses.dataclass(frozen=True)
class Counts:
    """Trainable parameters, multiply-adds of conv/dense layers, and squeeze-excite gating multiplies.

    `flops` (the TinyNet paper's figure) is their sum; the GhostNet paper quotes `macs` alone.
    """

    params: int
    macs: int
    gate_multiplies: int = 0

    @property
    def flops(self) -> int:
        return self.macs + self.gate_multiplies

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output size of a convolution padded symmetrically with kernel_size // 2 (PyTorch style)."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def _conv(pixels: int, kernel_size: int, in_channels: int, out_channels: int, depthwise=False, bias=False):
    per_output = kernel_size * kernel_size * (1 if depthwise else in_channels)
    weights = per_output * out_channels
    return Counts(weights + (out_channels if bias else 0), pixels * weights)


def _bn(channels: int) -> Counts:
    return Counts(2 * channels, 0)


def _conv_bn(pixels, kernel_size, in_channels, out_channels, depthwise=False) -> Counts:
    return _conv(pixels, kernel_size, in_channels, out_channels, depthwise) + _bn(out_channels)


def _ghost_module(pixels: int, in_channels: int, out_channels: int) -> Counts:
    init = -(-out_channels // 2)
    return _conv_bn(pixels, 1, in_channels, init) + _conv_bn(pixels, 3, init, init, depthwise=True)


def _squeeze_excite(block, out_pixels: int) -> Counts:
    if not block.se_channels:
        return Counts(0, 0)
    return (
        _conv(1, 1, block.mid_channels, block.se_channels, bias=True)
        + _conv(1, 1, block.se_channels, block.mid_channels, bias=True)
        + Counts(0, 0, out_pixels * block.mid_channels)
    )


def _inverted_residual(block, size: int) -> tuple[Counts, int]:
    """An "mbconv" block (1x1 expand, depthwise, SE, 1x1 project) or a "ds" block (no expansion)."""
    out_size = conv_output_size(size, block.kernel_size, block.stride)
    out_pixels = out_size * out_size
    total = Counts(0, 0)
    if block.kind == "mbconv":
        total += _conv_bn(size * size, 1, block.in_channels, block.mid_channels)
    total += _conv_bn(out_pixels, block.kernel_size, block.mid_channels, block.mid_channels, depthwise=True)
    total += _squeeze_excite(block, out_pixels)
    total += _conv_bn(out_pixels, 1, block.mid_channels, block.out_channels)
    return total, out_size


def _ghost_bottleneck(block, size: int) -> tuple[Counts, int]:
    out_size = conv_output_size(size, block.kernel_size, block.stride)
    in_pixels, out_pixels = size * size, out_size * out_size
    total = _ghost_module(in_pixels, block.in_channels, block.mid_channels)
    if block.stride > 1:
        total += _conv_bn(out_pixels, block.kernel_size, block.mid_channels, block.mid_channels, depthwise=True)
    total += _squeeze_excite(block, out_pixels)
    total += _ghost_module(out_pixels, block.mid_channels, block.out_channels)
    if not block.has_identity_shortcut:
        total += _conv_bn(out_pixels, block.kernel_size, block.in_channels, block.in_channels, depthwise=True)
        total += _conv_bn(out_pixels, 1, block.in_channels, block.out_channels)
    return total, out_size


_BLOCK_COUNTERS = {"ghost": _ghost_bottleneck, "mbconv": _inverted_residual, "ds": _inverted_residual}


def count(
    spec: NetworkSpec,
    image_size: int | None = None,
    *,
    include_top: bool = True,
    classes: int = 1000,
    input_channels: int = 3,
) -> Counts:
    """Trainable parameters and FLOPs of `spec` on one `image_size` x `image_size` image."""
    size = spec.default_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"`image_size` must be an integer >= 32; received {image_size!r}.")
    size = conv_output_size(size, 3, 2)
    total = _conv_bn(size * size, 3, input_channels, spec.stem_channels)
    for block in spec.blocks:
        block_counts, size = _BLOCK_COUNTERS[block.kind](block, size)
        total += block_counts
    total += _conv_bn(size * size, 1, spec.blocks[-1].out_channels, spec.final_channels)
    if include_top:
        features = spec.head_channels or spec.final_channels
        if spec.head_channels:
            total += _conv(1, 1, spec.final_channels, spec.head_channels, bias=True)
        total += Counts(features * classes + classes, features * classes)
    return total
