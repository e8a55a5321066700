"""Train (or resume) a model with the TinyNet recipe on tf.distribute.

With no flags: GhostNet-D on the embedded digits (scikit-learn's handwritten digits), all local devices, to
about 98% validation accuracy in a few minutes on 2 CPU cores. Rerunning the same command resumes.

  keras-tinynet train
  keras-tinynet train --model ghostnet_b --dataset imagenet2012 --data_dir ~/tfds --manual_dir ~/imagenet
  keras-tinynet train --flops 200M --dataset folder:/data/flowers --randaugment 2,9
"""

from __future__ import annotations

import dataclasses
import sys
import typing

from keras_tinynet.cli.common import BooleanFlag, flops_value, image_size_value, make_output_dir, quiet_tensorflow
from keras_tinynet.presets import ARCHITECTURES, PRESETS
from keras_tinynet.spec import ACTIVATIONS

DESCRIPTION = __doc__
# Flags with a fixed set of values; the other flags take their type from the TrainConfig field.
CHOICES = {"model": list(PRESETS), "activation": list(ACTIVATIONS)}
FLAG_NAMES = {"model_dir": ("--output_dir", "--model_dir")}  # one output flag; --model_dir as tf.estimator named it
PARAMETER_FLAGS = {"crop_scale": "--crop_min_scale"}  # data.Augmentation's name for it


def parse_randaugment(text: str) -> tuple[int, int]:
    try:
        ops, magnitude = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--randaugment must be N,M (two integers, e.g. 2,9); received {text!r}.") from None
    return ops, magnitude


def config_fields(names: typing.Iterable[str] | None = None):
    """The TrainConfig fields (all, or those named) with their resolved types."""
    from keras_tinynet.recipe import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    return [(fields[name], hints[name]) for name in (names or fields)]


def add_config_arguments(parser, names: typing.Iterable[str] | None = None) -> None:
    """One flag per TrainConfig field, its help text and type taken from the field (one source of truth)."""
    for field, hint in config_fields(names):
        options = FLAG_NAMES.get(field.name, (f"--{field.name}",))
        kwargs = {"dest": field.name, "default": field.default, "help": field.metadata.get("help")}
        base = {arg for arg in typing.get_args(hint) if arg is not type(None)} or {hint}
        if field.name == "flops":
            kwargs["type"] = flops_value
        elif field.name == "image_size":
            kwargs["type"] = image_size_value
        elif field.name == "randaugment":
            kwargs["type"] = str
        elif bool in base:
            kwargs["action"] = BooleanFlag
        elif field.name in CHOICES:
            kwargs["choices"] = CHOICES[field.name]
        else:
            kwargs["type"] = next(iter(base))
        parser.add_argument(*options, **kwargs)


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def config_from(args, names: typing.Iterable[str] | None = None):
    from keras_tinynet.recipe import TrainConfig

    values = {field.name: getattr(args, field.name) for field, _ in config_fields(names)}
    if values.get("flops") is not None and PRESETS[values["model"]].architecture.name not in ARCHITECTURES:
        bases = [name for name, preset in PRESETS.items() if preset.architecture.name in ARCHITECTURES]
        raise ValueError(
            f"--flops builds the tiny formula on the family of --model, which must be one of {', '.join(bases)}; "
            f"received --model {values['model']} (the original GhostNet has no formula base)."
        )
    if values.get("model_dir") is not None:
        make_output_dir(values["model_dir"], "model_dir")
    if isinstance(values.get("randaugment"), str):
        values["randaugment"] = parse_randaugment(values["randaugment"])
    return TrainConfig(**values)


def report(summary: dict) -> str:
    metrics, strategy = summary["final_metrics"], summary["strategy"]
    rows = [
        ("validation top-1", f"{metrics['top1']:.4f}"),
        *[("  without EMA", f"{h['val_top1_no_ema']:.4f}") for h in summary["history"][-1:] if "val_top1_no_ema" in h],
        ("validation top-5", f"{metrics['top5']:.4f}"),
        ("validation loss", f"{metrics['loss']:.4f}"),
        ("epochs", len(summary["history"])),
        ("replicas", strategy["replicas"]),
        ("train images/s", f"{summary['images_per_second'] or 0:.1f}"),
        ("training time (s)", f"{summary['train_seconds']:.1f}"),
        ("this session (s)", f"{summary['session_seconds']:.1f}"),
    ]
    lines = ["", f"| {'metric':<22} | {'value':>12} |", f"|{'-' * 24}|{'-' * 14}|"]
    lines += [f"| {name:<22} | {value:>12} |" for name, value in rows]
    lines += ["", "Wrote:"] + [f"  {kind:>8}: {path}" for kind, path in summary["outputs"].items()]
    return "\n".join(lines)


def run(args) -> None:
    config = config_from(args)
    quiet_tensorflow(args.verbose)
    from keras_tinynet import training

    verbose = 1 if sys.stdout.isatty() else 2  # a progress bar on terminals, a line per epoch in logs
    print(report(training.train(config, verbose=verbose)))
