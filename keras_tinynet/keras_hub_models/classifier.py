"""The keras-hub image-classifier task of the GhostNets and TinyNets, its preprocessor and its image converter.

`TinyNetsImageConverter` applies the eval transform a checkpoint was published with (`data.eval_preprocess`:
resize the shorter side to size / crop_pct, antialiased, center crop; then mean/std), so
`classifier.predict(raw_images)` gives what `keras-tinynet evaluate` measures.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras_hub.layers import ImageConverter
from keras_hub.models import ImageClassifier, ImageClassifierPreprocessor, Task

from keras_tinynet.data import eval_preprocess
from keras_tinynet.keras_hub_models import presets
from keras_tinynet.keras_hub_models.backbone import TinyNetsBackbone
from keras_tinynet.network import classifier_head
from keras_tinynet.spec import IMAGENET_PREPROCESSING, INTERPOLATIONS

# ImageConverter arguments that TinyNetsImageConverter fixes (its transform is the checkpoint's, not Resizing's).
_FIXED_CONVERTER_ARGUMENTS = (
    "scale",
    "offset",
    "crop_to_aspect_ratio",
    "pad_to_aspect_ratio",
    "antialias",
    "bounding_box_format",
)


@keras.saving.register_keras_serializable(package="keras_tinynet")
class TinyNetsImageConverter(ImageConverter):
    """Raw RGB images in [0, 255] (a batch, one image, or a list of images of any sizes) -> the normalized
    `image_size` input of a TinyNetsBackbone, through the checkpoint's own eval transform.

    Args:
        image_size: (height, width) of the output; square.
        crop_pct: the center crop's share of the resized shorter side (timm's crop_pct).
        interpolation: "bicubic" or "bilinear" (antialiased, as PIL resizes).
        mean, std: per-channel statistics on the [0, 1] scale.
    """

    backbone_cls = TinyNetsBackbone

    def __init__(
        self,
        image_size=(224, 224),
        crop_pct=IMAGENET_PREPROCESSING.crop_pct,
        interpolation=IMAGENET_PREPROCESSING.interpolation,
        mean=IMAGENET_PREPROCESSING.mean,
        std=IMAGENET_PREPROCESSING.std,
        **kwargs,
    ):
        for key in _FIXED_CONVERTER_ARGUMENTS:
            kwargs.pop(key, None)
        if image_size is None or len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ValueError(f"`image_size` must be a square (size, size); received image_size={image_size!r}.")
        if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
            raise ValueError(f"`crop_pct` must be a fraction in (0, 1]; received crop_pct={crop_pct!r}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}."
            )
        super().__init__(image_size=tuple(image_size), interpolation=interpolation, antialias=True, **kwargs)
        self.crop_pct = float(crop_pct)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return tf.stack([self._transform(image) for image in inputs])
        images = tf.convert_to_tensor(inputs)
        if images.shape.rank == 3:
            return self._transform(images)
        return tf.map_fn(self._transform, images, fn_output_signature=self.compute_dtype)

    def _transform(self, image):
        image = eval_preprocess(image, self.image_size[0], self.crop_pct, self.interpolation)
        scale = tf.constant([1.0 / (255.0 * s) for s in self.std])
        offset = tf.constant([-m / s for m, s in zip(self.mean, self.std)])
        return tf.cast(image * scale + offset, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        for key in _FIXED_CONVERTER_ARGUMENTS:
            config.pop(key, None)
        return {**config, "crop_pct": self.crop_pct, "mean": self.mean, "std": self.std}

    @classmethod
    def from_preset(cls, preset, **kwargs):
        return presets.from_preset(cls, super().from_preset, preset, True, kwargs)


@keras.saving.register_keras_serializable(package="keras_tinynet")
class TinyNetsImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """keras-hub's image-classifier preprocessor with a TinyNetsImageConverter."""

    backbone_cls = TinyNetsBackbone
    image_converter_cls = TinyNetsImageConverter

    @classmethod
    def from_preset(cls, preset, **kwargs):
        return presets.from_preset(cls, super().from_preset, preset, True, kwargs)


@keras.saving.register_keras_serializable(package="keras_tinynet")
class TinyNetsImageClassifier(ImageClassifier):
    """A TinyNetsBackbone with the network's own classifier (pooling, conv_head where the spec has one,
    dropout, dense), so a registered checkpoint's top loads as it is.

    Args:
        backbone: a TinyNetsBackbone.
        num_classes: number of classes.
        preprocessor: None or a TinyNetsImageClassifierPreprocessor.
        activation: of the dense layer: None (logits, keras-hub's default) or e.g. "softmax".
        dropout: before the dense layer.
        head_dtype: dtype policy of the head; the backbone's by default (the logits stay float32).
    """

    backbone_cls = TinyNetsBackbone
    preprocessor_cls = TinyNetsImageClassifierPreprocessor

    def __init__(
        self, backbone, num_classes, preprocessor=None, activation=None, dropout=0.2, head_dtype=None, **kwargs
    ):
        head_dtype = head_dtype or backbone.dtype_policy
        self.backbone = backbone
        self.preprocessor = preprocessor
        inputs = backbone.input
        outputs = classifier_head(
            backbone(inputs), backbone.spec, num_classes, activation, backbone.activation, dropout, head_dtype
        )
        Task.__init__(self, inputs=inputs, outputs=outputs, **kwargs)
        self.num_classes = num_classes
        self.activation = activation
        self.dropout = dropout

    def get_config(self):
        return {
            **Task.get_config(self),
            "num_classes": self.num_classes,
            "activation": self.activation,
            "dropout": self.dropout,
        }

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        return presets.from_preset(cls, super().from_preset, preset, load_weights, kwargs)
