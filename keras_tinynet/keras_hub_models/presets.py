"""keras-hub presets of the package's checkpoints: one per registry entry (`<variant>_<tag>`, e.g.
"ghostnet_130_imagenet_ssld") and a configuration-only one per never-published network ("ghostnet_a"..).

A named preset is built here, through the verified registry (`weights=<tag>`: hash checked, converted once,
cached; offline it fails as `weights="imagenet"` does); a preset directory or a kaggle:// / hf:// handle
goes to keras-hub's own loader, after a check that it holds one of these models.
"""

from __future__ import annotations

import json
import os
import re

import keras
from keras_hub.layers import ImageConverter
from keras_hub.models import Backbone, Preprocessor, Task

from keras_tinynet.builder import build
from keras_tinynet.files import staged_directory
from keras_tinynet.presets import get_spec
from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING
from keras_tinynet.weights import registry
from keras_tinynet.weights.formats import first_line

BACKBONE_ARGUMENTS = ("dtype", "image_shape", "drop_connect_rate")
# Keras' (multi-line) error for a config whose shapes differ from the weights file's.
_SHAPE_MISMATCH = re.compile(
    r"could not be loaded.*?<\w+ name=(\w+).*?variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))",
    re.DOTALL,
)
METADATA_FILE = "metadata.json"  # keras-hub's; save_preset adds source, license and top-1 to it


def preset_table() -> dict[str, tuple[str, str | None]]:
    """{preset name: (network, registry tag, or None for configuration only)}, from the registry in use."""
    table = {f"{variant}_{tag}": (variant, tag) for variant, tags in registry.load_registry().items() for tag in tags}
    table.update({variant: (variant, None) for variant in registry.NEVER_PUBLISHED})
    return dict(sorted(table.items()))


def preset_names() -> list[str]:
    return list(preset_table())


def transform(variant: str, tag: str | None) -> dict:
    """The TinyNetsImageConverter arguments of a checkpoint: its registered input size and eval transform."""
    size, preprocessing = get_spec(variant).default_size, IMAGENET_PREPROCESSING
    if tag is not None:
        size = registry.resolve_entry(variant, tag).entry.get("input_size", size)
        preprocessing = registry.published_preprocessing(variant, tag)
    return {
        "image_size": (size, size),
        "crop_pct": preprocessing.crop_pct,
        "interpolation": preprocessing.interpolation,
        "mean": list(preprocessing.mean),
        "std": list(preprocessing.std),
    }


def from_preset(cls, keras_hub_from_preset, preset, load_weights: bool, kwargs: dict):
    """`cls.from_preset`: a preset name is built here; a directory or handle is checked, then keras-hub loads it."""
    table = preset_table()
    if isinstance(preset, str) and preset in table:
        variant, tag = table[preset]
        return _build_named(cls, variant, tag if load_weights else None, dict(kwargs))
    if not isinstance(preset, str) or not ("://" in preset or os.path.isdir(preset)):
        raise ValueError(
            f"Unknown preset {preset!r}: pass one of {', '.join(table)}, a preset directory or a kaggle:// or "
            "hf:// handle."
        )
    _check_model_class(preset, cls)
    if not issubclass(cls, ImageConverter):
        kwargs = {"load_weights": load_weights, **kwargs}
    try:
        return keras_hub_from_preset(preset, **kwargs)
    except OSError as error:  # h5py: a truncated or corrupt weights file
        raise ValueError(
            f"Preset {preset!r} has a weights file that cannot be read ({first_line(error)}); it is truncated or "
            "corrupt: download or save the preset again."
        ) from None
    except ValueError as error:
        mismatch = _SHAPE_MISMATCH.search(str(error))
        if mismatch is None:
            raise
        layer, config_shape, file_shape = mismatch.groups()
        raise ValueError(
            f"Preset {preset!r}: its config does not match its weights: layer {layer!r} is {config_shape} in the "
            f"config and {file_shape} in the weights file (e.g. another class count); fix the config or save the "
            "preset again."
        ) from None


def _check_model_class(preset: str, cls) -> None:
    from keras_hub.src.utils.preset_utils import get_preset_loader

    expected = cls if issubclass(cls, Backbone) else cls.backbone_cls
    try:
        found = get_preset_loader(preset).check_backbone_class()
    except ValueError:
        found = None
    if found is None or not issubclass(found, expected):
        what = "an unknown model" if found is None else f"a {found.__name__}"
        raise ValueError(
            f"Preset {preset!r} holds {what}, not a {expected.__name__}; load it with its own class "
            f"(keras_hub.models.Backbone.from_preset) or pass a keras_tinynet preset ({', '.join(preset_names())})."
        )


def _build_named(cls, variant: str, tag: str | None, kwargs: dict):
    if issubclass(cls, ImageConverter):
        return cls(**transform(variant, tag), **kwargs)
    if issubclass(cls, Preprocessor):
        return cls(image_converter=cls.image_converter_cls(**transform(variant, tag)), **kwargs)
    backbone_kwargs = {key: kwargs.pop(key) for key in BACKBONE_ARGUMENTS if key in kwargs}
    backbone_cls = cls if issubclass(cls, Backbone) else cls.backbone_cls
    backbone = backbone_cls(spec=variant, **backbone_kwargs)
    if issubclass(cls, Backbone):
        model = backbone
    else:
        converter = cls.preprocessor_cls.image_converter_cls(**transform(variant, tag))
        kwargs.setdefault("num_classes", IMAGENET_CLASSES)
        kwargs.setdefault("preprocessor", cls.preprocessor_cls(image_converter=converter))
        model = cls(backbone=backbone, **kwargs)
    if tag is not None:
        # The builder's network with the registered weights (verified, converted and cached by the registry).
        source = build(variant, weights=tag, include_preprocessing=False, classifier_activation=None)
        new_head = isinstance(model, Task) and model.num_classes != IMAGENET_CLASSES
        copy_weights(source, backbone if new_head else model)
    return model


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Gives every layer of `target` (nested models too) the weights of the layer of the same name in `source`."""
    for layer in target.layers:
        if isinstance(layer, keras.Model):
            copy_weights(source, layer)
        elif layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def save_preset(model, preset_dir: str | os.PathLike, *, overwrite: bool = False, **metadata) -> str:
    """`model.save_to_preset` into a staged directory, with `metadata` (source, license, top1, ...) added to
    keras-hub's metadata.json; the directory appears whole or not at all. Returns its path."""
    preset_dir = os.fspath(preset_dir)
    if os.path.exists(preset_dir) and not overwrite:
        raise ValueError(
            f"`preset_dir`={preset_dir!r} already exists; pass overwrite=True (--overwrite) to replace it."
        )
    with staged_directory(preset_dir, replace=overwrite) as staging:
        model.save_to_preset(staging)
        path = os.path.join(staging, METADATA_FILE)
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({**saved, **metadata}, handle, indent=4)
    return preset_dir
