r"""Convert a timm GhostNet or TinyNet checkpoint into a Keras `.weights.h5` file and print its registry entry.

  keras-tinynet convert --source timm:ghostnet_100.in1k --model ghostnet_100 --output_dir weights/
  keras-tinynet convert --source ghostnet_100.safetensors --model ghostnet_100 --noinclude_top --output_dir weights/

writes <output_dir>/<model>.weights.h5 (<model>_notop.weights.h5 without the top). `--source` is a
.safetensors file (no torch needed), a .pth/.pt file (torch.load(weights_only=True) only) or
`timm:<model name>` (downloads through timm: needs the internet). Where torch and timm are installed the
converted model is checked against timm's (logits within 1e-4) before anything is written.
"""

from __future__ import annotations

import json
import os

from keras_tinynet.cli.common import BooleanFlag, add_output_dir, make_output_dir, quiet_tensorflow, require
from keras_tinynet.presets import PRESETS, builder_name

DESCRIPTION = __doc__
PARAMETER_FLAGS = {"variant": "--model"}  # conversion.convert_checkpoint's names


def add_arguments(parser) -> None:
    parser.add_argument("--source", help="a .safetensors or .pth/.pt timm checkpoint, or timm:<model name>")
    parser.add_argument("--model", choices=list(PRESETS), metavar="NAME", help="the preset to fill")
    parser.add_argument(
        "--include_top",
        action=BooleanFlag,
        default=True,
        help="with conv_head and classifier (--noinclude_top: without)",
    )
    add_output_dir(parser, "directory for <model>.weights.h5 (<model>_notop.weights.h5 with --noinclude_top)")
    parser.add_argument("--parity", default="auto", help="check against timm: auto (where installed), require, skip")
    parser.add_argument("--base_url", help="where the file will be published; the entry's url is <base_url>/<file>")
    parser.add_argument("--license", help="license of the weights, for the entry (default: timm's for timm: sources)")
    parser.add_argument("--top1", type=float, help="measured ImageNet top-1 in %%, for the entry")
    parser.add_argument("--overwrite", action=BooleanFlag, default=False, help="replace an existing output file")


def run(args) -> None:
    quiet_tensorflow(args.verbose, import_now=False)  # timm must come first
    from keras_tinynet import convert  # imports neither Keras nor torch until it needs them
    from keras_tinynet.weights import conversion
    from keras_tinynet.weights.registry import FORMAT, REGISTRY_ENV

    source = require(args.source, "--source", "the checkpoint to convert")
    model = require(args.model, "--model", f"the preset the checkpoint belongs to: {', '.join(conversion.TIMM_MODELS)}")
    output_dir = make_output_dir(require(args.output_dir, "--output_dir", "where the .weights.h5 file goes"))
    output = os.path.join(output_dir, f"{model}{'' if args.include_top else '_notop'}.weights.h5")
    result = convert.convert_checkpoint(
        source,
        model,
        output,
        include_top=args.include_top,
        parity=args.parity,
        base_url=args.base_url,
        license=args.license,
        top1=args.top1,
        overwrite=args.overwrite,
    )
    print(f"wrote {result.path} ({result.size} bytes)")
    if result.parity_diff is None:
        print("parity check against timm: skipped (torch/timm not installed, or --parity=skip)")
    else:
        what = "logits" if result.include_top else "features"
        print(
            f"parity check against timm: max |{what} difference| {result.parity_diff:.3g} "
            f"<= {conversion.PARITY_TOLERANCE:g}"
        )
    print(f"sha256 {result.sha256}")
    print(f"use it now: keras_tinynet.{builder_name(result.variant)}(weights={result.path!r})")
    print(
        f"registry entry (to load the file by its tag, save this registry and set ${REGISTRY_ENV} to its path; it "
        "replaces the built-in registry):"
    )
    print(json.dumps({"format": FORMAT, "weights": result.entry}, indent=2))
    entry = next(iter(next(iter(result.entry.values())).values()))
    if entry["url"] is None:
        print("note: url is null: pass --base_url, or fill it in once the file is published.")
    if entry["license"] == "unknown":
        print("note: license is 'unknown': pass --license with the checkpoint's license before publishing.")
