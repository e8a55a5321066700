r"""Publish a model as TF2 reusable SavedModels for TF Hub / Kaggle Models, each with a model card and an archive,
and/or as a keras-hub preset.

  keras-tinynet publish-hub --model ghostnet_d --weights ema.weights.h5 --output_dir hub/
  keras-tinynet publish-hub --model ghostnet_100 --weights imagenet --forms keras_hub --output_dir hub/

writes hub/<name>_classification/ and hub/<name>_feature_vector/ (fine-tunable SavedModels: __call__(images,
training), variables, trainable_variables), a Markdown model card and a tar.gz of each; --forms keras_hub writes
the preset directory hub/<name>_keras_hub/ for keras_hub.upload_preset (needs the keras_hub extra).
"""

from __future__ import annotations

import os

from keras_tinynet.cli.common import (
    BooleanFlag,
    add_output_dir,
    choice_list,
    comma_list,
    make_output_dir,
    quiet_tensorflow,
    require,
)
from keras_tinynet.cli.export import add_exportable_arguments, load_exportable

DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    add_exportable_arguments(parser, "model name used in the output names; default: the spec's name")
    add_output_dir(parser, "directory for the SavedModels, model cards and archives")
    parser.add_argument(
        "--forms",
        type=comma_list,
        help="comma-separated forms: classification, feature_vector (the default: both), keras_hub",
    )
    parser.add_argument("--license", default="Apache-2.0", help="license named in the model card")
    parser.add_argument("--source", help="source named in the model card (e.g. the repository URL)")
    parser.add_argument("--overwrite", action=BooleanFlag, default=False, help="replace existing outputs")


def run(args) -> list:
    output_dir = make_output_dir(
        require(args.output_dir, "--output_dir", "where the SavedModels, model cards and archives go")
    )
    quiet_tensorflow(args.verbose)
    from keras_tinynet import export

    forms = choice_list("--forms", args.forms, export.PUBLISH_FORMS) if args.forms is not None else export.HUB_FORMS
    exportable, _ = load_exportable(args)

    published = export.publish_hub(
        exportable, output_dir, forms, license_name=args.license, source=args.source, overwrite=args.overwrite
    )
    for item in published:
        if item.archive is None:
            print(f"{item.form}: preset {item.saved_model} (keras_hub.upload_preset(handle, {item.saved_model!r}))")
            continue
        print(
            f"{item.form}: SavedModel {item.saved_model}\n  model card {item.card}\n  archive {item.archive} "
            f"({os.path.getsize(item.archive) / 1e6:.2f} MB)"
        )
    return published
