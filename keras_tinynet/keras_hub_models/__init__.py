"""GhostNets and TinyNets in keras-hub: `TinyNetsBackbone`, `TinyNetsImageClassifier` (with its preprocessor and
`TinyNetsImageConverter`, which applies the checkpoint's own eval transform) and presets for every registered
checkpoint (`preset_names()`), loadable by name, from a preset directory or a kaggle:// / hf:// handle.

Needs the `keras_hub` extra (pip install "keras_tinynet[keras_hub]"); `import keras_tinynet` does not.
"""

try:
    import keras_hub  # noqa: F401
except ImportError:
    raise ImportError(
        'keras_tinynet.keras_hub_models needs keras-hub: pip install "keras_tinynet[keras_hub]"'
    ) from None

from keras_tinynet.keras_hub_models.backbone import TinyNetsBackbone
from keras_tinynet.keras_hub_models.classifier import (
    TinyNetsImageClassifier,
    TinyNetsImageClassifierPreprocessor,
    TinyNetsImageConverter,
)
from keras_tinynet.keras_hub_models.presets import copy_weights, preset_names, save_preset

__all__ = [
    "TinyNetsBackbone",
    "TinyNetsImageClassifier",
    "TinyNetsImageClassifierPreprocessor",
    "TinyNetsImageConverter",
    "copy_weights",
    "preset_names",
    "save_preset",
]
