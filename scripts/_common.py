"""What the absl command lines share: quiet TensorFlow logs and clear errors instead of tracebacks."""

import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN CPU kernels. TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on an
# AVX2 machine they made GhostNet-B training 1.67x and GhostNet100 inference ~1.9x faster (benchmarks/).
# TF_ENABLE_ONEDNN_OPTS=0 in the environment turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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


def define_model_flags(flag_values, name_help: str) -> None:
    """The flags that pick a model and its weights, shared by export.py and publish_hub.py."""
    from absl import flags

    from keras_tinynet.export import ACTIVATIONS
    from keras_tinynet.spec import PRESETS

    flags.DEFINE_enum(
        "variant", None, list(PRESETS), "GhostNet variant (one of --variant, --flops, --spec).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "flops", None, "FLOPs budget for the tiny formula, e.g. 200M, 0.3G or 2e8.", flag_values=flag_values
    )
    flags.DEFINE_string("spec", None, "JSON file of a NetworkSpec (NetworkSpec.to_dict()).", flag_values=flag_values)
    flags.DEFINE_string(
        "weights",
        None,
        "Weights file (.weights.h5, e.g. the training script's EMA weights; .keras; "
        "Keras 2 .h5). Without it the weights are random.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "labels",
        None,
        "Text file with one class label per line (fine-tuned models); ImageNet's are built in.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "image_size", None, "Input size the model was trained at (default: the spec's).", flag_values=flag_values
    )
    flags.DEFINE_enum(
        "activation",
        None,
        list(ACTIVATIONS),
        "Activation the model was trained with (default: the model's own, GhostNet relu, TinyNet swish).",
        flag_values=flag_values,
    )
    flags.DEFINE_string("name", None, name_help, flag_values=flag_values)
