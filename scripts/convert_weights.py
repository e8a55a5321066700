"""Converts a timm GhostNet checkpoint into a Keras `.weights.h5` file and prints its registry entry.

    python scripts/convert_weights.py --source timm:ghostnet_100.in1k --variant ghostnet_100 \
        --output ghostnet_100.weights.h5
    python scripts/convert_weights.py --source ghostnet_100.safetensors --variant ghostnet_100 \
        --noinclude_top --output ghostnet_100_notop.weights.h5

`--source` is a .safetensors file (no torch needed), a .pth/.pt file (torch.load(weights_only=True)
only) or `timm:<model name>` (downloads through timm: needs the internet). Where torch and timm are
installed the converted model is checked against timm's (logits within 1e-4) before anything is
written. Exit status 1 with a one-line error on a refused checkpoint, a failed check or bad flags.
The logic lives in `keras_tinynet.weights.conversion.convert_checkpoint`.
"""

from __future__ import annotations

import json
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_ROOT, "keras_tinynet")):
    sys.path.insert(0, _ROOT)  # the package of this checkout, also when run as a plain script

from absl import app, flags  # noqa: E402

from keras_tinynet.weights import conversion as checkpoints  # noqa: E402  (imports neither Keras nor torch)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "source", None, "A .safetensors or .pth/.pt timm GhostNet or TinyNet checkpoint, or timm:<model name>."
)
flags.DEFINE_string("variant", None, f"The Keras variant to fill: one of {', '.join(checkpoints.TIMM_MODELS)}.")
flags.DEFINE_bool(
    "include_top", True, "Write the file of the model with conv_head and classifier (--noinclude_top: without)."
)
flags.DEFINE_string("output", None, "The file to write; must end with .weights.h5.")
flags.DEFINE_enum(
    "parity",
    "auto",
    checkpoints.PARITY_MODES,
    "Check against timm: auto (where torch and timm are installed), require, skip.",
)
flags.DEFINE_string("base_url", None, "Where the file will be published; the entry's url becomes <base_url>/<file>.")
flags.DEFINE_string("license", None, "License of the weights, for the entry (default: timm's for timm: sources).")
flags.DEFINE_float(
    "top1", None, "Measured ImageNet top-1 in %, for the entry (default: timm's for its pretrained tags)."
)
flags.DEFINE_bool("overwrite", False, "Replace --output if it exists.")
flags.mark_flags_as_required(["source", "variant", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        result = checkpoints.convert_checkpoint(
            FLAGS.source,
            FLAGS.variant,
            FLAGS.output,
            include_top=FLAGS.include_top,
            parity=FLAGS.parity,
            base_url=FLAGS.base_url,
            license=FLAGS.license,
            top1=FLAGS.top1,
            overwrite=FLAGS.overwrite,
        )
    except (ValueError, OSError, ImportError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {result.path} ({result.size} bytes)")
    if result.parity_diff is None:
        print("parity check against timm: skipped (torch/timm not installed, or --parity=skip)")
    else:
        what = "logits" if result.include_top else "features"
        print(
            f"parity check against timm: max |{what} difference| {result.parity_diff:.3g} <= {checkpoints.PARITY_TOLERANCE:g}"
        )
    print(f"sha256 {result.sha256}")
    print('registry entry (merge it into "weights" of keras_tinynet/resources/weights_registry.json):')
    print(json.dumps(result.entry, indent=2))
    entry = next(iter(next(iter(result.entry.values())).values()))
    if entry["url"] is None:
        print("note: url is null: pass --base_url, or fill it in once the file is published.")
    if entry["license"] == "unknown":
        print("note: license is 'unknown': pass --license with the checkpoint's license before publishing.")
    return 0


if __name__ == "__main__":
    app.run(main)
