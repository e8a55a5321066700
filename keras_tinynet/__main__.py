"""`python -m keras_tinynet`: the model table, computed from the specs (no TensorFlow import).

`python -m keras_tinynet --flops 200M` shows what the tiny formula builds for a budget, and
`--spec ghostnet_b` prints a variant's block table.
"""

from __future__ import annotations

import argparse
import sys

from keras_tinynet.counting import count
from keras_tinynet.formula import parse_flops, tiny_formula
from keras_tinynet.spec import PRESETS, builder_name, get_spec


def model_table() -> str:
    """A Markdown table of every variant: builder, input size, depth, width, blocks, params, FLOPs."""
    lines = [
        "| builder | input | depth | width | blocks | params | FLOPs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, preset in PRESETS.items():
        spec = get_spec(name)
        counts = count(spec)
        lines.append(
            f"| `{builder_name(name)}` | {spec.default_size} | {preset.depth:g} | {preset.width:g} | "
            f"{len(spec.blocks)} | {counts.params / 1e6:.2f}M | {counts.flops / 1e6:.1f}M |"
        )
    return "\n".join(lines)


def flops_argument(text: str) -> float:
    try:
        return parse_flops(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_tinynet", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--flops", type=flops_argument, help="show the GhostNet the tiny formula builds for this budget"
    )
    parser.add_argument("--spec", choices=sorted(PRESETS), help="print the block table of a variant")
    args = parser.parse_args(argv)
    if args.flops is not None:
        try:
            config = tiny_formula(args.flops)
        except ValueError as error:
            parser.error(str(error))
        print(
            f"budget {config.budget_flops / 1e6:.1f}M FLOPs -> image size {config.image_size}, "
            f"depth {config.depth:.3f}, width {config.width:.3f}: {config.counts.flops / 1e6:.1f}M FLOPs "
            f"({config.error:+.2%}), {config.counts.params / 1e6:.2f}M parameters\n"
            f"build it with keras_tinynet.GhostNet(flops={args.flops:g})\n"
        )
        print(config.spec.table())
    elif args.spec:
        print(get_spec(args.spec).table())
    else:
        print(model_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
