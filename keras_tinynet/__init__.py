"""keras_tinynet: the GhostNets and TinyNets of "Model Rubik's Cube" (NeurIPS 2020) for Keras 3.

Names are imported lazily, so `keras_tinynet.spec`, `.counting`, `.formula` and `.spec_resolver` (and
`python -m keras_tinynet`) work without importing TensorFlow or Keras.

Importing it turns on TensorFlow's oneDNN CPU kernels unless TF_ENABLE_ONEDNN_OPTS says otherwise
(`keras_tinynet._onednn`: measured faster; possible only before TensorFlow is imported).
"""

import importlib

from keras_tinynet import _onednn
from keras_tinynet.presets import PRESETS, builder_name

_onednn.turn_on()

__version__ = "0.1.0"

_EXPORTS = {
    "keras_tinynet.models": ("GhostNet", "TinyNet", *(builder_name(preset) for preset in PRESETS), "feature_pyramid"),
    "keras_tinynet.imagenet": ("preprocess_input", "decode_predictions"),
    "keras_tinynet.spec": ("NetworkSpec", "scale"),
    "keras_tinynet.presets": ("get_spec", "PRESETS"),
    "keras_tinynet.spec_resolver": ("resolve_spec",),
    "keras_tinynet.counting": ("Counts", "count"),
    "keras_tinynet.formula": ("tiny_formula",),
    "keras_tinynet.inference": ("fold_batch_norm", "optimize_for_inference"),
    "keras_tinynet.compiled": ("compile_for_inference",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'keras_tinynet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
