"""ONNX through tf2onnx, from the frozen, inference-optimized graph (tf2onnx's own workarounds: `_tf2onnx_lib`)."""

from __future__ import annotations

import os

from keras_tinynet.export import _tf2onnx_lib
from keras_tinynet.export.exportable import Exportable
from keras_tinynet.export.graph import frozen_inference_function
from keras_tinynet.files import write_atomically


def check_onnx_export() -> None:
    """An ImportError naming the extra where the packages of ONNX export are missing (checked before any
    export writes, so that a missing package leaves no partial export)."""
    import importlib.util

    missing = [name for name in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"ONNX export needs tf2onnx (onnxruntime runs the result); {' and '.join(missing)} not installed: "
            'pip install "keras_tinynet[export]"'
        )


def export_onnx(exportable: Exportable, path: str | os.PathLike, opset: int = 17) -> str:
    """Converts the model with tf2onnx: input `images` float32 [batch, size, size, 3] RGB in [0, 255]
    (NHWC, as in Keras), output `probabilities` [batch, classes]. Written atomically to `path`."""
    check_onnx_export()
    import tf2onnx

    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset <= 18:
        raise ValueError(
            f"`opset` must be an integer from 13 to 18 (what tf2onnx 1.17 writes); received opset={opset!r}."
        )
    frozen = frozen_inference_function(exportable.inference_model, exportable.image_size, batch=None)
    graph_def = frozen.graph.as_graph_def()
    _tf2onnx_lib.vectorize_scalar_addends(graph_def)
    (input_name,), (output_name,) = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    proto, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[input_name], output_names=[output_name], opset=opset
    )
    _rename_onnx_tensors(proto.graph, {input_name: "images", output_name: "probabilities"})
    for value in list(proto.graph.input) + list(proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = os.fspath(path)
    write_atomically(path, proto.SerializeToString())
    return path


def _rename_onnx_tensors(graph, names: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = names.get(value.name, value.name)
