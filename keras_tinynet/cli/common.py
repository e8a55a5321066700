"""What the subcommands share: the parser with one-line errors, and the flags that mean the same everywhere."""

from __future__ import annotations

import argparse
import os
import sys

from keras_tinynet.formula import parse_flops
from keras_tinynet.presets import PRESETS
from keras_tinynet.spec import ACTIVATIONS


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the package's error convention: one `error:` line naming the flag, exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


class BooleanFlag(argparse.Action):
    """`--flag`, `--noflag` (absl's spelling, which earlier scripts took) and `--flag=true|false`."""

    def __init__(self, option_strings, dest, **kwargs):
        names = [f"--no{option[2:]}" for option in option_strings if option.startswith("--")]
        super().__init__([*option_strings, *names], dest, nargs="?", metavar="true|false", **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        if option_string.startswith("--no") and option_string[4:] in (o[2:] for o in self.option_strings):
            setattr(namespace, self.dest, False)
            return
        if value is None or value.lower() in ("true", "1", "yes"):
            setattr(namespace, self.dest, True)
        elif value.lower() in ("false", "0", "no"):
            setattr(namespace, self.dest, False)
        else:
            parser.error(f"argument {option_string}: expected true or false; received {value!r}")


def flops_value(text: str) -> float:
    """A FLOPs budget such as 200M, 0.3G or 2e8 (argparse type: a bad value is a one-line usage error)."""
    try:
        return parse_flops(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def comma_list(text: str) -> list[str]:
    return [item for item in (part.strip() for part in text.split(",")) if item]


def choice_list(option: str, text: list[str], allowed) -> list[str]:
    """Checks a comma-separated flag value against what is allowed; returns it deduplicated."""
    values = list(dict.fromkeys(text))
    unknown = [value for value in values if value not in allowed]
    if not values or unknown:
        raise ValueError(
            f"{option} must be a comma-separated subset of {', '.join(allowed)}; received {option}={','.join(text)!r}."
        )
    return values


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = None, required: bool = False) -> None:
    """--model, --flops or --spec (one of them, `required` or not) pick the network; --activation and
    --image_size complete it."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--model",
        choices=list(PRESETS),
        default=default,
        metavar="NAME",
        help=f"preset: {', '.join(PRESETS)}" + (f" (default: {default})" if default else ""),
    )
    group.add_argument("--flops", type=flops_value, help="FLOPs budget for the tiny formula, e.g. 200M, 0.3G or 2e8")
    group.add_argument("--spec", help="JSON file of a NetworkSpec (NetworkSpec.to_dict())")
    add_curves_argument(parser)
    parser.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        help="activation (default: the model's own: GhostNet relu, TinyNet swish)",
    )
    parser.add_argument("--image_size", type=int, help="input size (default: the model's)")


def add_curves_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--curves",
        help="with --flops: the curves.json of a `keras-tinynet twist` search (its fitted r(c), d(c) and base) "
        "instead of the published TinyNet curves",
    )


def curves_spec(args):
    """The network --flops with --curves picks, or None without --curves (one-line errors name the flag)."""
    if args.curves is None:
        return None
    if args.flops is None:
        raise ValueError(f"--curves applies to a --flops budget; received --curves {args.curves} without --flops.")
    from keras_tinynet.formula import tiny_formula

    try:
        return tiny_formula(args.flops, curves=args.curves)
    except ValueError as error:
        raise ValueError(f"--curves {args.curves}: {error}") from None


def add_weights_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--weights",
        required=required,
        help="a weights file (.weights.h5, .keras, Keras 2 .h5), 'imagenet' or a registry tag"
        + ("" if required else " (default: random weights)"),
    )


def add_output_dir(parser: argparse.ArgumentParser, help_text: str, *aliases: str) -> None:
    parser.add_argument("--output_dir", *aliases, dest="output_dir", help=help_text)


def require(value, flag: str, why: str):
    if value is None:
        raise ValueError(f"{flag} is required ({why}).")
    return value


def quiet_tensorflow() -> None:
    """Quiet TensorFlow's C++ logs, before TensorFlow is imported (importing the package set oneDNN)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
