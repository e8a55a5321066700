"""Workarounds for tf2onnx, kept apart from the export itself so they can go when tf2onnx fixes them."""

from __future__ import annotations

import tensorflow as tf


def vectorize_scalar_addends(graph_def) -> None:
    """Gives scalar float constants that only feed additions the shape [1] (same broadcast result).

    tf2onnx 1.17's transpose optimizer fails on a Conv followed by the addition of a scalar constant
    (`max(numpy_val.shape)` of a 0-d array) and then gives up the whole pass, leaving a Transpose around
    every convolution (the symptom of onnx/tensorflow-onnx#1729, "Failed to apply optimize_transpose");
    a [1]-shaped constant takes its supported path.
    """
    consumers: dict[str, set[str]] = {}
    for node in graph_def.node:
        for name in node.input:
            consumers.setdefault(name.split(":")[0].lstrip("^"), set()).add(node.op)
    for node in graph_def.node:
        if node.op != "Const" or not consumers.get(node.name) or not consumers[node.name] <= {"Add", "AddV2"}:
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        if value.ndim == 0 and value.dtype.kind == "f":
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.reshape([1])))
