"""What the absl command lines share: quiet TensorFlow logs and clear errors instead of tracebacks."""

import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = (os.path.join(_ROOT, "keras_tinynet") + os.sep, os.path.join(_ROOT, "scripts") + os.sep)


def run_cleanly(function):
    """Runs `function()`. A ValueError or FileNotFoundError raised by keras_tinynet or a script (a bad
    flag, file or dataset) exits 2 with its message alone; anything else keeps its traceback."""
    try:
        return function()
    except (ValueError, FileNotFoundError) as error:
        origin = traceback.extract_tb(error.__traceback__)[-1].filename
        if not os.path.abspath(origin).startswith(_OURS):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run_flags_main(doc: str, flag_values, run, argv=None) -> int:
    """The main of a command line with its own FlagValues: --help prints `doc` and the flags; a bad flag
    or a ValueError from `run(flag_values)` prints one `error:` line and returns 2."""
    from absl import flags

    argv = sys.argv if argv is None else argv
    if any(arg in ("-h", "--help", "-help", "--helpfull") for arg in argv[1:]):
        print(f"{doc}\nFlags:\n{flag_values.get_help()}")
        return 0
    try:
        flag_values.unparse_flags()
        extra = flag_values(argv)[1:]
        if extra:
            raise ValueError(f"unexpected positional arguments {extra}; every option is a --flag (see --help).")
        run(flag_values)
    except (flags.Error, ValueError) as error:
        print(f"{os.path.basename(argv[0])}: error: {error}", file=sys.stderr)
        return 2
    return 0
