"""What the subcommands share: the parser with one-line errors, the flags that mean the same everywhere, and
the error contract (one `error:` line naming the flag; exit 2 for bad input, 1 for a failed operation)."""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import tempfile
import traceback
import warnings

from keras_tinynet.files import WriteError
from keras_tinynet.formula import parse_flops
from keras_tinynet.presets import PRESETS
from keras_tinynet.spec import ACTIVATIONS, MIN_SIZE
from keras_tinynet.spec_resolver import resolve_spec
from keras_tinynet.weights.download import DownloadError

# The exit-code contract, decided by the exception's type alone (a subcommand added later follows it as is):
# 2: the input is wrong (a flag's value, a file the user named, a path that cannot be used): change the command;
# 1: an operation failed although the command was right (a full disk, a download, a parity check, a missing
#    extra): free space, retry or install, then rerun the same command.
EXIT_BAD_INPUT, EXIT_FAILED = 2, 1
# A WriteError (a full disk) is also a ValueError: FAILED_OPERATIONS is checked first.
FAILED_OPERATIONS = (WriteError, DownloadError, RuntimeError, ImportError)
BAD_INPUTS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
# An OSError with one of these numbers is about the path the user gave (missing, in the way, not writable).
BAD_PATH_ERRNOS = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a file is in the way of a directory",
    errno.EEXIST: "a file is in the way of a directory",
    errno.EISDIR: "a directory where a file is needed",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "a read-only file system",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many symbolic links",
}
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# TensorFlow's C++ log lines (I0000 00:00:..., E0000 ...) and the notes that come with them, hidden unless asked.
_TF_LOG_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog|"
    r"To enable the following instructions:)"
)
# Python warnings about what the package does internally, which a user of the command line cannot act on.
_UNACTIONABLE_WARNINGS = (r"`shuffle=True` was passed, but will be ignored",)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the package's error convention: one `error:` line naming the flag, exit status 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


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


# argparse types: a bad value is a one-line usage error naming the flag ("argument --threads: ...").
def flops_value(text: str) -> float:
    """A FLOPs budget such as 200M, 0.3G or 2e8."""
    try:
        return parse_flops(text)
    except ValueError:
        message = f"must be a FLOPs count such as 200M, 0.3G or 2e8; received {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def integer_at_least(minimum: int, what: str = "an integer"):
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what} >= {minimum}; received {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = integer_at_least(1)
non_negative_int = integer_at_least(0)
image_size_value = integer_at_least(MIN_SIZE, "an input size in pixels,")


def spec_file(text: str):
    """--spec FILE: the NetworkSpec in a JSON file (or a preset name), read and checked when the flag is parsed."""
    if text not in PRESETS and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(
            f"must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a preset name; "
            f"received {text!r} (no such file)"
        )
    try:
        return resolve_spec(spec=text)
    except ValueError as error:
        problem = str(error).replace(f"`spec`={text!r} is not a NetworkSpec JSON file: ", "")
        raise argparse.ArgumentTypeError(f"{text!r} is not a NetworkSpec JSON file: {problem}") from None


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
    group.add_argument(
        "--spec", type=spec_file, metavar="FILE", help="JSON file of a NetworkSpec (NetworkSpec.to_dict())"
    )
    add_curves_argument(parser)
    parser.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        help="activation (default: the model's own: GhostNet relu, TinyNet swish)",
    )
    parser.add_argument("--image_size", type=image_size_value, help=f"input size, >= {MIN_SIZE} (default: the model's)")


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


def add_run_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--run",
        dest="run_dir",  # `run` is the subcommand's function
        help=f"a training run's directory (its summary.json): {what} come from it unless given; default: the run "
        "that holds --weights (<run>/final/ema.weights.h5), if any",
    )


NETWORK_FLAGS = ("model", "flops", "spec", "curves")


def take_from_run(args, names: tuple[str, ...], network_as_spec: bool = False):
    """Fills the flags in `names` that the user left out with what the run of --run (or the run holding
    --weights) recorded, so that no flag of the run has to be repeated; `labels` takes its class names. A flag
    the user gave wins, with a line on stderr where it differs from the run's; one network flag (--model,
    --flops, --spec) replaces the run's network whole. `network_as_spec`: the run's network comes as the
    NetworkSpec dict it recorded (no spec file or curves file needed). Returns the Run, or None."""
    from keras_tinynet.runs import load_run, run_holding

    directory = args.run_dir or run_holding(args.weights)
    if directory is None:
        return None
    run = load_run(directory, "run_dir")
    recorded = {**run.config, "labels": list(run.class_names) if run.class_names else None}
    own_network = [f"--{name}" for name in NETWORK_FLAGS[:3] if getattr(args, name, None) is not None]
    if own_network:
        print(f"{own_network[0]} replaces the network of the run ({run.summary_path}).", file=sys.stderr)
    elif network_as_spec and run.network:
        args.spec = run.network
    for name in names:
        given, value = getattr(args, name), recorded.get(name)
        if name in NETWORK_FLAGS and (own_network or (network_as_spec and run.network)):
            continue
        if given is None:
            setattr(args, name, value)
        elif value is not None and given != value:
            shown = "class names" if name == "labels" else value
            print(
                f"--{name} {given} differs from the run's {shown} ({run.summary_path}); using --{name} {given}.",
                file=sys.stderr,
            )
    return run


def add_output_dir(parser: argparse.ArgumentParser, help_text: str, *aliases: str) -> None:
    parser.add_argument("--output_dir", *aliases, dest="output_dir", help=help_text)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action=BooleanFlag,
        default=False,
        help="show TensorFlow's own log lines and warnings (hidden by default; TF_CPP_MIN_LOG_LEVEL is respected)",
    )


def require(value, flag: str, why: str):
    if value is None:
        raise ValueError(f"{flag} is required ({why}).")
    return value


# The directories make_output_dir created in this process, deepest first: a command that then fails removes
# those still empty (remove_created_dirs), so a refused run leaves nothing behind.
CREATED_DIRS: list[str] = []


def make_output_dir(path: str, parameter: str = "output_dir") -> str:
    """Creates the output directory before any work, so that a path which cannot be one (an existing file, a
    path below a file, a read-only or virtual file system) fails at once, in one line naming the flag
    (`parameter`: the flag's dest, which main translates into the flag the user typed)."""
    missing = []  # what makedirs will create, deepest first; `blocker` ends at the deepest path that exists
    blocker = os.path.abspath(path)
    while not os.path.lexists(blocker) and blocker != os.path.dirname(blocker):
        missing.append(blocker)
        blocker = os.path.dirname(blocker)
    try:
        os.makedirs(path, exist_ok=True)
        CREATED_DIRS.extend(missing)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    except OSError as error:
        why = f"{blocker!r} is a file" if os.path.lexists(blocker) and not os.path.isdir(blocker) else error.strerror
        raise ValueError(
            f"`{parameter}` must be a directory that can be created and written; received {path!r} ({why})."
        ) from None
    return path


def remove_created_dirs() -> None:
    """Removes the directories this process created for its outputs where the failed command left them empty."""
    while CREATED_DIRS:
        directory = CREATED_DIRS.pop(0)
        try:
            os.rmdir(directory)
        except OSError:  # not empty (the command wrote something) or already gone: keep what is there
            CREATED_DIRS.clear()


def exit_code(error: BaseException) -> int | None:
    """The exit status for an error (see the contract above), or None to keep the traceback. OSErrors are about
    the machine or a path, never a bug: an OSError the tables do not name is a failed operation (EIO, ENOSPC),
    unless its number says that the path itself cannot be used. A ValueError or RuntimeError raised outside
    keras_tinynet keeps its traceback: it is a bug or a framework failure, whose traceback is the useful part."""
    if isinstance(error, FAILED_OPERATIONS):
        code = EXIT_FAILED
    elif isinstance(error, BAD_INPUTS) or (isinstance(error, OSError) and error.errno in BAD_PATH_ERRNOS):
        code = EXIT_BAD_INPUT
    elif isinstance(error, OSError):
        code = EXIT_FAILED
    else:
        return None
    return code if isinstance(error, OSError) or _raised_here(error) else None


def _raised_here(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(PACKAGE_DIR)


def error_lines(
    error: BaseException, parser: argparse.ArgumentParser, argv: list[str], args, parameter_flags=None
) -> list[str]:
    """The error as the user should read it: the package's parameter names replaced by the flags the user typed
    (`flops` -> --flops; `parameter_flags` adds names that are no flag's dest, e.g. convert's `variant` for
    --model), an OSError from a path named with its flag. The first line is the error; any further lines (a
    list of files) follow it."""
    flags = {**flag_names(parser, argv), **(parameter_flags or {})}
    if isinstance(error, OSError) and error.filename is not None and str(error).startswith("[Errno"):
        text = _path_error(error, flags, args)
    else:
        text = str(error).strip() or type(error).__name__
    for name, flag in flags.items():
        text = re.sub(rf"`{name}`", flag, text)
        text = re.sub(rf"(?<![\w`.-]){name}=", f"{flag}=", text)
    return text.splitlines()


def flag_names(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, str]:
    """{parameter name: the flag for it}: the spelling the user typed where there are several (--model_dir)."""
    typed = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    names = {}
    for action in parser._actions:  # argparse keeps its actions only there
        options = [option for option in action.option_strings if option.startswith("--")]
        if options and action.dest != "help":
            names[action.dest] = next((option for option in options if option in typed), options[0])
    return names


def _path_error(error: OSError, flags: dict[str, str], args) -> str:
    """E.g. `--output_dir 'run' cannot be used: '/abs/run/checkpoints': a file is in the way of a directory; ...`."""
    path = os.path.abspath(os.fsdecode(error.filename))
    why = BAD_PATH_ERRNOS.get(error.errno, error.strerror)
    for name, flag in flags.items():
        value = getattr(args, name, None)
        if isinstance(value, str) and value and (path + os.sep).startswith(os.path.abspath(value) + os.sep):
            return f"{flag} {value!r} cannot be used: {path!r}: {why}; pass another {flag}."
    return f"cannot use {path!r}: {why}."


def quiet_tensorflow(verbose: bool = False, import_now: bool = True) -> None:
    """Keeps TensorFlow's C++ log lines off (TF_CPP_MIN_LOG_LEVEL=3; with `import_now`, TensorFlow is imported
    here, hiding the lines it prints while loading, before it reads that level) and hides Python warnings a
    user cannot act on. `verbose`, or the user's own TF_CPP_MIN_LOG_LEVEL, keeps everything as TensorFlow has it.
    `import_now=False` where something must be imported before TensorFlow (timm, for `convert`)."""
    if verbose:
        return
    for message in _UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if not import_now:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if not _TF_LOG_LINE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
