"""optimize_for_inference: BN folding, then the rewrites of the package docstring, planned on the folded
graph and applied while `keras.models.clone_model` re-traces it."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers

from keras_tinynet import _compat
from keras_tinynet.inference.batch_norm import fold_batch_norm
from keras_tinynet.inference.layer_graph import LayerGraph

LINEAR = (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)
"""Layers linear in their input: a scale of the input folds into the kernel (zero padding stays zero)."""


def optimize_for_inference(model: keras.Model) -> keras.Model:
    """A new functional model computing the outputs of `model` in inference mode with fewer ops.

    BN is folded into the convs (`fold_batch_norm`), hard-sigmoid gates become a ReLU6 fused into their
    conv, the input rescaling and normalization one add before a stem conv that takes their scale, explicit
    zero padding the convs' own "same" padding where TensorFlow pads the same, and Dropout goes. The model
    has its own variables and only standard Keras layers, so it saves and exports like the original.
    """
    folded = fold_batch_norm(model)  # also refuses anything but a functional model
    graph = LayerGraph(folded)
    plan = _Plan()
    _plan_gate_folding(graph, plan)
    _plan_preprocessing_folding(graph, plan)
    _plan_padding_folding(graph, plan)
    plan.dropped.update(layer.name for layer in folded.layers if isinstance(layer, layers.Dropout))
    return keras.models.clone_model(folded, clone_function=lambda layer: layer, call_function=_Rewriter(plan).call)


@dataclasses.dataclass
class _Plan:
    """What the re-trace changes, by layer name."""

    dropped: set[str] = dataclasses.field(default_factory=set)  # called as the identity
    replaced: dict[str, layers.Layer] = dataclasses.field(default_factory=dict)  # called instead
    input_scales: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # per input channel, or scalar
    bias_shifts: dict[str, float] = dataclasses.field(default_factory=dict)
    same_padding: set[str] = dataclasses.field(default_factory=set)


def _plan_gate_folding(graph: LayerGraph, plan: _Plan) -> None:
    """hard_sigmoid(z) = relu6(z + 3) / 6: +3 into the bias of the conv making z, / 6 into the kernels of
    the linear layers reading x * gate (x * relu6(.) / 6 through W equals x * relu6(.) through W / 6)."""
    for node in graph.nodes:
        gate = node.operation
        if not (
            isinstance(gate, layers.Activation)
            and gate.get_config()["activation"] == "hard_sigmoid"
            and id(gate) in graph.node_of
        ):
            continue
        (logits,) = node.input_tensors
        conv = graph.sole_producer(logits)
        multiply = graph.sole_reader(node.output_tensors[0])
        if not (
            isinstance(conv, (layers.Conv2D, layers.Dense))
            and conv.activation is keras.activations.linear
            and graph.sole_reader(logits) is not None
            and multiply is not None
            and isinstance(multiply.operation, layers.Multiply)
        ):
            continue
        (gated,) = multiply.output_tensors
        readers = graph.readers[id(gated)]
        if id(gated) in graph.outputs or not all(
            id(reader.operation) in graph.node_of
            and isinstance(reader.operation, LINEAR)
            and reader.operation.name not in plan.input_scales
            for reader in readers
        ):
            continue
        plan.bias_shifts[conv.name] = 3.0
        plan.replaced[gate.name] = layers.ReLU(max_value=6.0, name=gate.name, dtype=gate.dtype_policy)
        plan.input_scales.update((reader.operation.name, np.float64(1.0 / 6.0)) for reader in readers)


def _plan_preprocessing_folding(graph: LayerGraph, plan: _Plan) -> None:
    """A chain of Rescaling / Normalization layers is x * s + o per channel. Where it reaches a Conv2D (through
    zero padding: pad(x * s) == pad(x) * s), s goes into the conv's kernel rows and one Rescaling adds o / s."""
    for node in graph.nodes:
        if (
            id(node.operation) not in graph.node_of
            or _channel_affine(node.operation) is None
            or _channel_affine(graph.sole_producer(node.input_tensors[0]))
        ):
            continue  # not the first layer of a chain
        chain, scale, offset = [], np.float64(1.0), np.float64(0.0)
        while node is not None and (affine := _channel_affine(node.operation)) is not None:
            chain.append(node.operation)
            scale, offset = scale * affine[0], offset * affine[0] + affine[1]
            node = graph.sole_reader(node.output_tensors[0])
        while node is not None and isinstance(node.operation, layers.ZeroPadding2D):
            node = graph.sole_reader(node.output_tensors[0])
        conv = node.operation if node is not None else None
        if not isinstance(conv, layers.Conv2D) or conv.groups != 1 or conv.name in plan.input_scales:
            continue
        scale, offset = np.broadcast_to(scale, conv.kernel.shape[-2]), np.broadcast_to(offset, conv.kernel.shape[-2])
        if np.any(scale == 0):
            continue
        head = chain[0]
        plan.replaced[head.name] = layers.Rescaling(
            1.0, (offset / scale).tolist(), name=head.name, dtype=head.dtype_policy
        )
        plan.dropped.update(layer.name for layer in chain[1:])
        plan.input_scales[conv.name] = scale


def _channel_affine(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) per channel (or scalars) of a Rescaling or Normalization layer; None for other layers."""
    if isinstance(layer, layers.Rescaling):
        scale, offset = np.asarray(layer.scale, np.float64), np.asarray(layer.offset, np.float64)
        return (scale, offset) if scale.ndim <= 1 and offset.ndim <= 1 else None
    if (
        isinstance(layer, layers.Normalization)
        and not layer.invert
        and tuple(layer.axis) in ((-1,), (len(layer.input.shape) - 1,))
    ):
        scale = 1.0 / np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), keras.config.epsilon())
        return scale.reshape(-1), (-np.asarray(layer.mean, np.float64) * scale).reshape(-1)
    return None


def _plan_padding_folding(graph: LayerGraph, plan: _Plan) -> None:
    """ZeroPadding2D + "valid" conv -> "same" conv, where TensorFlow's "same" pads exactly as the layer does
    (from the static input size: at stride 2 it pads one less before than after on even sizes)."""
    for node in graph.nodes:
        pad = node.operation
        reader = graph.sole_reader(node.output_tensors[0])
        if not (isinstance(pad, layers.ZeroPadding2D) and id(pad) in graph.node_of and reader is not None):
            continue
        conv = reader.operation
        if not (
            isinstance(conv, (layers.Conv2D, layers.DepthwiseConv2D))
            and pad.data_format == "channels_last"
            and conv.padding == "valid"
            and conv.dilation_rate == (1, 1)
            and conv.data_format == "channels_last"
        ):
            continue
        sizes = node.input_tensors[0].shape[1:3]
        if all(
            size is not None and tuple(padding) == _same_padding(size, kernel, stride)
            for size, padding, kernel, stride in zip(sizes, pad.padding, conv.kernel_size, conv.strides)
        ):
            plan.dropped.add(pad.name)
            plan.same_padding.add(conv.name)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of TensorFlow's "same" convolution along one axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Rewriter:
    """The `call_function` of the re-trace: each layer of the folded model, called as the plan says."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.copies: dict[int, layers.Layer] = {}

    def call(self, layer, *args, **kwargs):
        plan = self.plan
        if not isinstance(layer, layers.Layer):  # a keras.ops call (x + 3.0): stateless, reused as it is
            return layer(*args, **kwargs)
        if layer.name in plan.dropped:
            return args[0]
        if layer.name in plan.replaced:
            return plan.replaced[layer.name](*args, **kwargs)
        if _compat.call_count(layer) == 1 and isinstance(layer, LINEAR):
            config = layer.get_config()
            config["use_bias"] = layer.use_bias or layer.name in plan.bias_shifts
            if layer.name in plan.same_padding:
                config["padding"] = "same"
            copy = layer.__class__.from_config(config)
            outputs = copy(*args, **kwargs)
            copy.set_weights(self._linear_weights(layer))
            return outputs
        return self._copy(layer)(*args, **kwargs)

    def _copy(self, layer: layers.Layer) -> layers.Layer:
        """One copy of `layer` for all its calls, with its config and weights."""
        if id(layer) not in self.copies:
            copy = layer.__class__.from_config(layer.get_config())
            if layer.weights:
                copy.build_from_config(layer.get_build_config())
                copy.set_weights(layer.get_weights())
            self.copies[id(layer)] = copy
        return self.copies[id(layer)]

    def _linear_weights(self, layer) -> list[np.ndarray]:
        """Kernel (rows scaled per input channel) and bias (shifted), computed in float64."""
        kernel = np.asarray(layer.kernel, np.float64)  # [..., in, out] or, depthwise, [kh, kw, in, multiplier]
        kernel = kernel * np.reshape(self.plan.input_scales.get(layer.name, 1.0), (-1, 1))
        weights = [kernel]
        if layer.use_bias or layer.name in self.plan.bias_shifts:  # shifted: a Conv2D or Dense [..., in, out]
            bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
            weights.append(bias + self.plan.bias_shifts.get(layer.name, 0.0))
        return [weight.astype(np.float32) for weight in weights]
