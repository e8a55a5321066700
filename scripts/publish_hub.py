r"""Publishes a GhostNet for TF Hub / Kaggle Models: reusable SavedModels with model cards and archives.

  python scripts/publish_hub.py --variant ghostnet_d --weights ema.weights.h5 --output_dir hub/ \
      --license Apache-2.0 --source https://github.com/OWNER/keras_tinynet

writes, for each of --forms (classification, feature_vector):
  hub/<name>_<form>/         the TF2 reusable SavedModel (__call__(images, training), variables,
                             trainable_variables, regularization_losses; serving_default signature)
  hub/<name>_<form>.md       the model card (architecture, input spec and preprocessing, parameters,
                             FLOPs, source, license, citation)
  hub/<name>_<form>.tar.gz   the archive to upload
The logic is in keras_tinynet.export.publish_hub.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import define_model_flags, run_flags_main  # noqa: E402

from keras_tinynet import export  # noqa: E402

FLAGS = flags.FlagValues()
define_model_flags(FLAGS, "Model name used in the output file names; default: the spec's name.")
flags.DEFINE_string("output_dir", None, "Directory for the SavedModels, model cards and archives.", flag_values=FLAGS)
flags.DEFINE_list(
    "forms", list(export.HUB_FORMS), f"Comma-separated subset of {', '.join(export.HUB_FORMS)}.", flag_values=FLAGS
)
flags.DEFINE_string("license", "Apache-2.0", "License named in the model card.", flag_values=FLAGS)
flags.DEFINE_string("source", None, "Source named in the model card (e.g. the repository URL).", flag_values=FLAGS)
flags.DEFINE_boolean("overwrite", False, "Replace existing outputs of the same name.", flag_values=FLAGS)


def run(flag_values: flags.FlagValues = FLAGS) -> list:
    f = flag_values
    if f.output_dir is None:
        raise ValueError("--output_dir is required (where the SavedModels, model cards and archives go).")
    forms = list(dict.fromkeys(f.forms))
    unknown = [form for form in forms if form not in export.HUB_FORMS]
    if not forms or unknown:
        raise ValueError(
            f"--forms must be a comma-separated subset of {', '.join(export.HUB_FORMS)}; received --forms={','.join(f.forms)!r}."
        )
    exportable = export.load_exportable(
        f.variant,
        flops=export.parse_flops(f.flops),
        spec=f.spec,
        weights=f.weights,
        labels=f.labels,
        image_size=f.image_size,
        activation=f.activation,
        name=f.name,
    )
    published = export.publish_hub(
        exportable, f.output_dir, forms, license_name=f.license, source=f.source, overwrite=f.overwrite
    )
    for item in published:
        print(
            f"{item.form}: SavedModel {item.saved_model}\n  model card {item.card}\n  archive {item.archive} "
            f"({os.path.getsize(item.archive) / 1e6:.2f} MB)"
        )
    return published


def main(argv: list[str] | None = None) -> int:
    return run_flags_main(__doc__, FLAGS, run, argv)


if __name__ == "__main__":
    sys.exit(main())
