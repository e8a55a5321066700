"""Print the model table, a model's block table, what the tiny formula builds for a FLOPs budget, or (--weights)
the pretrained weights the registry knows.

Computed from the specs and the registry: no TensorFlow import."""

from __future__ import annotations

import dataclasses

from keras_tinynet.cli.common import BooleanFlag, add_model_arguments, curves_spec
from keras_tinynet.counting import count
from keras_tinynet.formula import tiny_formula
from keras_tinynet.presets import PRESETS, builder_name, get_spec
from keras_tinynet.spec_resolver import resolve_spec

DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--weights",
        action=BooleanFlag,
        default=False,
        help="list the registered pretrained weights: the tags that weights= takes, with their source and top-1",
    )


def weights_table() -> str:
    """A Markdown table of the registry: each model's tags, ImageNet top-1, input size, license and source."""
    from keras_tinynet.weights.registry import load_registry

    lines = ["| model | weights= | top-1 | input | license | source |", "|---|---|---|---|---|---|"]
    for model, tags in load_registry().items():
        for tag, entry in tags.items():
            top1 = f"{entry['top1']:.2f}" if entry.get("top1") is not None else "-"
            lines.append(
                f"| {model} | `{tag}` | {top1} | {entry.get('input_size') or '-'} | {entry['license']} | "
                f"{entry['source']} |"
            )
    return "\n".join(lines)


def model_table() -> str:
    """A Markdown table of every preset: builder, input size, depth, width, blocks, params, FLOPs."""
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


def run(args) -> None:
    if args.weights:
        print(weights_table())
        print("GhostNet-A..D: no ImageNet checkpoint is published anywhere (the paper released none).")
        return
    if args.image_size is not None and args.model is None and args.spec is None:
        raise ValueError(
            f"--image_size needs --model or --spec (a block table at that size); received --image_size "
            f"{args.image_size} with {'--flops (the tiny formula picks the size)' if args.flops else 'neither'}."
        )
    if args.activation is not None and args.model is None and args.spec is None and args.flops is None:
        raise ValueError(
            f"--activation needs --model, --spec or --flops (a block table); received --activation {args.activation} "
            "alone (the model table lists each model with its own activation)."
        )
    twisted = curves_spec(args)
    if args.flops is not None:
        config = twisted or tiny_formula(args.flops)
        spec = config.spec
        print(
            f"budget {config.budget_flops / 1e6:.1f}M FLOPs -> image size {config.image_size}, "
            f"depth {config.depth:.3f}, width {config.width:.3f}: {config.counts.flops / 1e6:.1f}M FLOPs "
            f"({config.error:+.2%}), {config.counts.params / 1e6:.2f}M parameters\n"
            f"build it with keras_tinynet.GhostNet(flops={args.flops:g}"
            + (f", curves={args.curves!r})\n" if args.curves else ")\n")
        )
    elif args.model or args.spec:
        spec = resolve_spec(args.model, spec=args.spec)
    else:
        print(model_table())
        return
    size = args.image_size or spec.default_size
    print(dataclasses.replace(spec, default_size=size, activation=args.activation or spec.activation).table())
