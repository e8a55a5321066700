"""Export of a trained GhostNet, one module per target: TF Serving SavedModel, TFLite, ONNX and TF Hub.

`load_exportable` builds the model to export (a preset, a FLOPs budget or a spec file, plus a weights
file such as the EMA weights the training script writes); each target's function writes it:

- `export_saved_model` (`saved_model`): `<export_dir>/<name>/<version>/` for TF Serving, written
  atomically, signatures `serving_default` (float32 RGB in [0, 255], any size) and `serving_bytes`
  (encoded images, decoded and eval-preprocessed inside, `image_decoding`); TensorFlow alone loads it.
- `export_tflite` (`tflite`): float32, float16 or full-integer int8; `tflite_details`, `tflite_predict`
  and `benchmark_tflite` read it back through an XNNPACK interpreter.
- `export_onnx` (`onnx`): through tf2onnx.
- `publish_hub` (`hub`, `model_card`): reusable SavedModels (`classification`, `feature_vector`) with a
  model card and a tar.gz, for TF Hub / Kaggle Models.

SavedModel, TFLite and ONNX run the inference-optimized graph (`optimize_for_inference`) frozen to
constants (`graph`). TensorFlow backend only.
"""

from keras_tinynet.export.exportable import Exportable, load_exportable, read_labels
from keras_tinynet.export.hub import HUB_FORMS, PUBLISH_FORMS, Published, make_tarball, publish_hub
from keras_tinynet.export.image_decoding import MAX_PIXELS, decode_and_preprocess
from keras_tinynet.export.model_card import model_card
from keras_tinynet.export.onnx import check_onnx_export, export_onnx
from keras_tinynet.export.saved_model import export_saved_model, next_version
from keras_tinynet.export.tflite import (
    INT8_IO_TYPES,
    TFLITE_QUANTIZATIONS,
    benchmark_tflite,
    export_tflite,
    format_tflite_details,
    make_interpreter,
    ready_interpreter,
    representative_images,
    tflite_details,
    tflite_predict,
)

__all__ = [
    "check_onnx_export",
    "HUB_FORMS",
    "PUBLISH_FORMS",
    "INT8_IO_TYPES",
    "MAX_PIXELS",
    "TFLITE_QUANTIZATIONS",
    "Exportable",
    "Published",
    "benchmark_tflite",
    "decode_and_preprocess",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "format_tflite_details",
    "load_exportable",
    "make_interpreter",
    "make_tarball",
    "model_card",
    "next_version",
    "publish_hub",
    "read_labels",
    "ready_interpreter",
    "representative_images",
    "tflite_details",
    "tflite_predict",
]
