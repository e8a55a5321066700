"""Op counts by type of exported graphs (ONNX, TFLite), so that a slower export can be explained."""

from __future__ import annotations

import collections


def onnx_op_counts(path: str) -> dict[str, int]:
    """Nodes of the ONNX graph by op type, most frequent first."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return dict(collections.Counter(node.op_type for node in graph.node).most_common())


def tflite_op_counts(path: str) -> dict[str, int]:
    """Ops of the TFLite graph by builtin name, most frequent first (before any delegate takes them)."""
    from keras_tinynet import _compat
    from keras_tinynet.export import make_interpreter

    interpreter = make_interpreter(path, xnnpack=False)
    return dict(collections.Counter(op["op_name"] for op in _compat.tflite_ops(interpreter)).most_common())


def op_counts(path: str) -> dict[str, int]:
    return onnx_op_counts(path) if path.endswith(".onnx") else tflite_op_counts(path)
