"""fold_batch_norm: each conv -> BatchNormalization pair merged into one conv (see the package docstring)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from keras_tinynet.inference.layer_graph import LayerGraph

FOLDABLE_CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D)


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of the functional `model` with each conv -> BatchNormalization pair merged into one conv.

    A pair is merged where the convolution's output feeds only that BN (channels last). The copy has
    its own variables, keeps every layer name (a merged conv keeps the conv's name and gains a bias)
    and computes the same outputs in inference mode up to float rounding.
    """
    if (
        not isinstance(model, keras.Model)
        or not hasattr(model, "_nodes_by_depth")
        or isinstance(model, keras.Sequential)
    ):
        raise ValueError(
            "`model` must be a functional keras.Model (as keras_tinynet's builders return); "
            f"received {type(model).__name__}."
        )
    pairs = _conv_bn_pairs(model)
    folded_convs = {conv.name: bn for conv, bn in pairs}
    folded_bns = {id(bn) for _, bn in pairs}

    def clone(layer):
        if id(layer) in folded_bns:
            return layer  # never called: `call` passes its input through
        config = layer.get_config()
        if layer.name in folded_convs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if id(layer) in folded_bns:
            return args[0]
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    by_name = {layer.name: layer for layer in model.layers}
    for layer in folded.layers:
        if layer.name in folded_convs:
            layer.set_weights(_folded_weights(by_name[layer.name], folded_convs[layer.name]))
        elif layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
    return folded


def _conv_bn_pairs(model: keras.Model) -> list[tuple[layers.Layer, layers.BatchNormalization]]:
    """(conv, bn) pairs of `model` where the conv's only consumer is the BN, in graph order."""
    graph = LayerGraph(model)
    pairs = []
    for node in graph.nodes:
        bn = node.operation
        if not isinstance(bn, layers.BatchNormalization) or len(node.input_tensors) != 1:
            continue
        (tensor,) = node.input_tensors
        conv = graph.sole_producer(tensor)
        if (
            isinstance(conv, FOLDABLE_CONVOLUTIONS)
            and conv.data_format == "channels_last"
            and bn.axis in (-1, len(tensor.shape) - 1)
            and graph.sole_reader(tensor) is node
        ):
            pairs.append((conv, bn))
    return pairs


def _folded_weights(conv: layers.Layer, bn: layers.BatchNormalization) -> list[np.ndarray]:
    """Kernel and bias of `conv` followed by `bn` in inference mode, computed in float64."""
    mean = np.asarray(bn.moving_mean, np.float64)
    variance = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    if isinstance(conv, layers.DepthwiseConv2D):
        kernel = np.asarray(conv.kernel, np.float64)  # [kh, kw, in, multiplier]: output channel in * m + j
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = np.asarray(conv.kernel, np.float64) * scale  # [kh, kw, in / groups, out]
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros_like(mean)
    bias = (bias - mean) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]
