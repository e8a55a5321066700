"""TF Hub / Kaggle Models: TF2 reusable SavedModels (`classification`, `feature_vector`), fine-tunable,
each with a model card and a reproducible tar.gz; and the `keras_hub` form, a keras-hub preset directory
(`keras_hub.upload_preset` publishes it to Kaggle Models or the Hugging Face Hub)."""

from __future__ import annotations

import dataclasses
import os
import tarfile
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_tinynet import models
from keras_tinynet.export.exportable import Exportable
from keras_tinynet.export.model_card import model_card
from keras_tinynet.export.saved_model import write_saved_model
from keras_tinynet.files import staged_directory, staged_file, write_atomically

HUB_FORMS = ("classification", "feature_vector")  # the TF Hub SavedModels (the default)
KERAS_HUB_FORM = "keras_hub"
PUBLISH_FORMS = (*HUB_FORMS, KERAS_HUB_FORM)


class ReusableSavedModel(tf.Module):
    """A TF2 reusable SavedModel (the TF Hub API): `__call__(images, training=False)`, `variables`,
    `trainable_variables` and `regularization_losses`, plus a `serving_default` signature.

    `images` are float32 [batch, height, width, 3], RGB in [0, 1] (the TF Hub image convention); the
    module scales them to the model's [0, 255] input. `training=True` runs batch normalization on batch
    statistics and updates its moving averages (and dropout in the classifier), for fine-tuning.
    """

    # tf.Module computes these as properties; the reusable SavedModel API stores them as attributes.
    variables = None
    trainable_variables = None
    regularization_losses = None

    def __init__(self, model: keras.Model, image_size: int | None, output_name: str):
        super().__init__(name=output_name)
        self.variables = [variable.value for variable in model.variables]
        self.trainable_variables = [variable.value for variable in model.trainable_variables]
        self.regularization_losses = []  # GhostNets use weight decay in the optimizer, no regularizer losses
        spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")

        def call(images, training=False):
            images = tf.convert_to_tensor(images, tf.float32)
            return tf.cast(model(images * 255.0, training=training), tf.float32)

        self.__call__ = tf.function(call, autograph=False)
        for training in (False, True):
            self.__call__.get_concrete_function(spec, training=training)
        self.serving_default = tf.function(
            lambda images: {output_name: call(images, training=False)}, autograph=False, input_signature=[spec]
        )


def _hub_model(exportable: Exportable, form: str) -> tuple[keras.Model, int | None, str]:
    """The Keras model of one form, with the exportable's weights: (model, input size, output name).

    classification: logits at the trained size; feature_vector: pooled features at any size.
    """
    common = dict(spec=exportable.spec, activation=exportable.activation, name=exportable.name)
    if form == "classification":
        size = exportable.image_size
        model = models.GhostNet(
            input_shape=(size, size, 3), classes=exportable.classes, classifier_activation=None, **common
        )
        output = (model, size, "logits")
    else:
        model = models.GhostNet(include_top=False, pooling="avg", input_shape=(None, None, 3), **common)
        output = (model, None, "feature_vector")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(exportable.model.get_layer(layer.name).get_weights())
    return output


def make_tarball(saved_model_dir: str, path: str) -> str:
    """A tar.gz of the SavedModel's contents at the archive root (saved_model.pb, variables/, assets/), as
    TF Hub and Kaggle Models expect; entries sorted, owner and mtime cleared, so equal inputs give equal
    archives. Written atomically."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with staged_file(path) as temporary, tarfile.open(temporary, "w:gz") as archive:
        for root, dirs, files in os.walk(saved_model_dir):
            dirs.sort()
            relative_root = os.path.relpath(root, saved_model_dir)
            if relative_root != ".":
                archive.add(root, arcname=relative_root, recursive=False, filter=clean)
            for file_name in sorted(files):
                full = os.path.join(root, file_name)
                archive.add(full, arcname=os.path.normpath(os.path.join(relative_root, file_name)), filter=clean)
    return path


@dataclasses.dataclass(frozen=True)
class Published:
    """Paths of one published form."""

    form: str
    saved_model: str  # the SavedModel, or the keras-hub preset directory
    card: str | None  # the TF Hub forms' model card and archive (a keras-hub preset has its metadata.json)
    archive: str | None


def publish_hub(
    exportable: Exportable,
    output_dir: str | os.PathLike,
    forms: Sequence[str] = HUB_FORMS,
    license_name: str = "Apache-2.0",
    source: str | None = None,
    overwrite: bool = False,
) -> list[Published]:
    """Writes each TF Hub form as `<output_dir>/<name>_<form>/` (SavedModel), `<name>_<form>.md` (model card)
    and `<name>_<form>.tar.gz` (the upload), and the keras_hub form as the preset directory
    `<output_dir>/<name>_keras_hub/`. A directory is written next to its final place and renamed into it;
    existing outputs are replaced only with `overwrite`."""
    forms = list(forms)
    unknown = [form for form in forms if form not in PUBLISH_FORMS]
    if not forms or unknown:
        raise ValueError(f"`forms` must be a non-empty subset of {PUBLISH_FORMS}; received forms={forms!r}.")
    output_dir = os.fspath(output_dir)
    stems = {form: os.path.join(output_dir, f"{exportable.name}_{form}") for form in forms}
    existing = [p for stem in stems.values() for p in (stem, stem + ".md", stem + ".tar.gz") if os.path.exists(p)]
    if existing and not overwrite:
        raise ValueError(
            f"`output_dir`={output_dir!r} already holds {existing}; pass overwrite=True (--overwrite) to replace them."
        )
    os.makedirs(output_dir, exist_ok=True)
    published = []
    for form in forms:
        final = stems[form]
        if form == KERAS_HUB_FORM:
            published.append(Published(form, keras_hub_preset(exportable, final, license_name, source), None, None))
            continue
        card_path, archive_path = final + ".md", final + ".tar.gz"
        model, size, output_name = _hub_model(exportable, form)
        with staged_directory(final, replace=True) as staging:
            module = ReusableSavedModel(model, size, output_name)
            write_saved_model(module, staging, {"serving_default": module.serving_default})
        make_tarball(final, archive_path)
        card = model_card(exportable, form, license_name, source, archive_path)
        write_atomically(card_path, card)
        published.append(Published(form, final, card_path, archive_path))
    return published


def keras_hub_preset(exportable: Exportable, preset_dir: str, license_name: str, source: str | None) -> str:
    """The exportable as a keras-hub preset: TinyNetsImageClassifier (logits) with its preprocessor (the weights'
    own eval transform), metadata.json with source, license and the registered top-1. Needs keras-hub."""
    from keras_tinynet import keras_hub_models as hub_models
    from keras_tinynet.weights import registry, resolver

    variant = exportable.spec.name
    preprocessing = resolver.published_preprocessing(exportable.weights, variant)
    converter = hub_models.TinyNetsImageConverter(
        image_size=(exportable.image_size, exportable.image_size),
        crop_pct=exportable.crop_pct,
        interpolation=preprocessing.interpolation,
        mean=preprocessing.mean,
        std=preprocessing.std,
    )
    backbone = hub_models.TinyNetsBackbone(spec=exportable.spec, activation=exportable.activation, name=exportable.name)
    classifier = hub_models.TinyNetsImageClassifier(
        backbone, exportable.classes, preprocessor=hub_models.TinyNetsImageClassifierPreprocessor(converter)
    )
    hub_models.copy_weights(exportable.model, classifier)
    entry = (
        registry.resolve_entry(variant, exportable.weights).entry
        if resolver.weights_kind(exportable.weights) == resolver.TAG
        else {}
    )
    return hub_models.save_preset(
        classifier,
        preset_dir,
        overwrite=True,  # publish_hub checked `overwrite` for every output first
        source=source or entry.get("source") or f"keras_tinynet (weights={exportable.weights!r})",
        license=license_name,
        top1=entry.get("top1"),
        labels=list(exportable.labels),
    )
