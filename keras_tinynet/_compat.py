"""Every reach into TensorFlow's and Keras' private internals, fenced here with its reason and version guard.

Feature modules call these functions and never import `tensorflow.python` or `keras.src` themselves, so a
framework upgrade that moves an internal breaks one place, with a message that says which.
"""

from __future__ import annotations

import contextlib

import keras


def _internal(what: str, error: Exception) -> RuntimeError:
    return RuntimeError(
        f"keras_tinynet needs {what}, which this TensorFlow/Keras version (keras {keras.__version__}) no longer "
        f"has ({error}); please report it with your versions."
    )


def convert_variables_to_constants(concrete_function):
    """Freezes a concrete function's variables into constants.

    TensorFlow has no public freeze for TF2 functions (tensorflow/tensorflow#46451 asks for one), and
    TFLite and tf2onnx both convert a frozen graph best (see `export.graph`).
    """
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError as error:
        raise _internal("tensorflow.python.framework.convert_to_constants", error) from None
    return convert_variables_to_constants_v2(concrete_function)


def layer_graph(model: keras.Model) -> list:
    """The call nodes of a functional model, from its inputs to its outputs (keras.Model has no public graph).

    Each node has `.operation` (the layer), `.input_tensors` and `.output_tensors`.
    """
    if not hasattr(model, "_nodes_by_depth"):
        raise _internal("Functional._nodes_by_depth", AttributeError("_nodes_by_depth"))
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]


def producer(tensor):
    """The layer whose call made a symbolic Keras tensor."""
    return tensor._keras_history.operation


def call_count(layer) -> int:
    """How many times a layer is called in the functional graphs it belongs to."""
    return len(layer._inbound_nodes)


@contextlib.contextmanager
def keras_multi_worker_fit(model: keras.Model, image_size: int, num_classes: int):
    """Lets Keras 3's `fit`/`evaluate` run under MultiWorkerMirroredStrategy (keras-team/keras#20585),
    applied for the duration of the block and undone afterwards.

    Two steps of Keras 3 fail there: before training it reduces one distributed batch across workers to
    learn its shapes ("Attempt to convert a value (PerReplica ...)"), and after each step it reduces the
    scalar logs along an axis they do not have ("Invalid reduction dimension 0"). So the model, loss,
    metrics and optimizer are built here from the known shapes, and the logs are reduced over the local
    replicas: Keras' metrics are already summed across all workers, so every worker logs the same values.
    """
    import tensorflow as tf

    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer

        original_reduce = tf_trainer._collective_all_reduce_multi_worker
    except (ImportError, AttributeError) as error:
        raise _internal("keras.src.backend.tensorflow.trainer._collective_all_reduce_multi_worker", error) from None
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(tf.zeros([1, image_size, image_size, 3]), tf.zeros([1, num_classes])))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    tf_trainer._collective_all_reduce_multi_worker = lambda strategy: False
    try:
        yield model
    finally:
        tf_trainer._collective_all_reduce_multi_worker = original_reduce
        del model._maybe_symbolic_build


def tflite_ops(interpreter) -> list[dict]:
    """The ops of a TFLite interpreter's graph (with "op_name"), to tell whether XNNPACK took the graph.

    Neither tf.lite nor ai-edge-litert has a public op listing; both have `_get_ops_details`.
    """
    if not hasattr(interpreter, "_get_ops_details"):
        raise _internal("Interpreter._get_ops_details", AttributeError("_get_ops_details"))
    return interpreter._get_ops_details()


def weights_h5_bytes(model: keras.Model) -> bytes:
    """The `.weights.h5` file `model.save_weights` writes (with the optimizer's state), made in memory.

    On a full disk `save_weights` leaves its h5py file open, and h5py's deferred close then crashes the
    interpreter (segmentation fault, exit 139). Made in memory, the file is written by plain Python, whose
    failures are ordinary OSErrors. Keras writes .weights.h5 files to paths only; its store takes BytesIO.
    """
    import io

    try:
        from keras.src.saving.saving_lib import H5IOStore, _save_state
    except ImportError as error:
        raise _internal("keras.src.saving.saving_lib.H5IOStore and _save_state", error) from None
    buffer = io.BytesIO()
    store = H5IOStore(buffer, mode="w")
    try:
        _save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    finally:
        store.close()
    return buffer.getvalue()


def keras_archive_bytes(model: keras.Model) -> bytes:
    """The `.keras` file `model.save` writes, made in memory (for the reason of `weights_h5_bytes`).

    `keras.saving.save_model` refuses file objects; `saving_lib.save_model` writes to them."""
    import io

    try:
        from keras.src.saving.saving_lib import save_model
    except ImportError as error:
        raise _internal("keras.src.saving.saving_lib.save_model", error) from None
    buffer = io.BytesIO()
    save_model(model, buffer)
    return buffer.getvalue()
