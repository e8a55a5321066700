"""`keras-tinynet`: the package's command line (also `python -m keras_tinynet` and the thin `scripts/*.py`).

    keras-tinynet models [--model NAME | --flops 200M | --spec FILE]
    keras-tinynet train [--model ghostnet_d] [--dataset digits] [--output_dir runs/...]
    keras-tinynet evaluate --weights FILE [--model ...] [--dataset ...]
    keras-tinynet export --weights FILE --output_dir DIR [--formats saved_model,tflite_float32,onnx]
    keras-tinynet publish-hub --weights FILE --output_dir DIR
    keras-tinynet convert --source FILE --model ghostnet_100 --output_dir DIR
    keras-tinynet twist [--flops 50M,100M | --latency_ms 1.0,2.0] [--dataset digits] [--output_dir DIR]

One vocabulary across the subcommands (`--model`/`--flops`/`--spec` pick the network, `--weights` is a
path, "imagenet" or a tag, `--output_dir` is where a command writes) and one error contract, which a new
subcommand gets by being listed in COMMANDS: an error is one line, `keras-tinynet <subcommand>: error: ...`,
naming the flag the user typed (the parameter names in the package's messages are translated), followed by
any details (one per line); the exit status is decided by the exception's type (cli.common.exit_code): 2
for bad input, 1 for an operation that fails (a download, a parity check, a full disk). TensorFlow's log
lines stay hidden unless `--verbose`. Importing this module does not import TensorFlow: each subcommand
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from keras_tinynet.cli.common import (
    CREATED_DIRS,
    ArgumentParser,
    add_verbose_argument,
    error_lines,
    exit_code,
    remove_created_dirs,
)

# Subcommand -> module with DESCRIPTION, add_arguments(parser) and run(args), and optionally PARAMETER_FLAGS
# ({parameter name in the package's messages: the flag that sets it}, for names that are not a flag's dest).
COMMANDS = {
    "models": "keras_tinynet.cli.models",
    "train": "keras_tinynet.cli.train",
    "evaluate": "keras_tinynet.cli.evaluate",
    "export": "keras_tinynet.cli.export",
    "publish-hub": "keras_tinynet.cli.publish_hub",
    "convert": "keras_tinynet.cli.convert",
    "twist": "keras_tinynet.cli.twist",
}


def build_parser(prog: str = "keras-tinynet", command: str | None = None) -> ArgumentParser:
    """The parser; only `command`'s flags are defined (the train flags come from TrainConfig, which
    imports TensorFlow: `keras-tinynet models` and `--help` stay fast)."""
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        summary = module.DESCRIPTION.split("\n\n")[0]
        sub = subparsers.add_parser(
            name, help=summary, description=module.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if name == command:
            module.add_arguments(sub)
            add_verbose_argument(sub)
            sub.set_defaults(run=module.run, parser=sub, parameter_flags=getattr(module, "PARAMETER_FLAGS", {}))
    return parser


def main(argv: list[str] | None = None, prog: str = "keras-tinynet") -> int:
    """Runs one subcommand; returns the exit status (0, 1 for a failed operation, 2 for bad usage or input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["models", *argv]  # `python -m keras_tinynet [--flops 200M]`: the model table, as before
    parser = build_parser(prog, argv[0])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        args.run(args)
        return 0
    except Exception as error:
        remove_created_dirs()
        code = exit_code(error)
        if code is None:
            raise
        first, *details = error_lines(error, args.parser, argv, args, args.parameter_flags)
        print("\n".join([f"{prog} {args.command}: error: {first}", *details]), file=sys.stderr)
        return code
    finally:
        CREATED_DIRS.clear()
