"""The command line's error contract, subcommand by subcommand: every flag that takes a path, a number or a
name, given a bad value, is one line `keras-tinynet <subcommand>: error: ...` naming the flag the user typed,
the value and what is allowed, and exit status 2; an operation that fails (a full disk, a download) exits 1;
faults leave earlier outputs as they were. Run in-process; the only training is one short fine-tuning run.
"""

import contextlib
import errno
import glob
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from keras_tinynet import cli, files
from keras_tinynet.cli import common
from keras_tinynet.weights.download import DEADLINE_ENV, MIN_RATE_ENV, TIMEOUT_ENV, DownloadError
from keras_tinynet.weights.registry import MIRROR_ENV, REGISTRY_ENV


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def assert_error(result, command, message, code=2):
    """Exit `code` and exactly one stderr line: the error, `message` with its {placeholders} filled."""
    status, out, err = result
    assert (status, err.strip().splitlines()) == (code, [f"keras-tinynet {command}: error: {message}"]), (out, err)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """What the tables name: a regular file, a malformed spec, a labels file of 3 lines, a one-class folder."""
    root = tmp_path_factory.mktemp("contract")
    (root / "file").write_text("not a directory\n")
    (root / "bad_spec.json").write_text('{"name": "x"}')
    (root / "labels3.txt").write_text("a\nb\nc\n")
    write_image_folder(root / "one_class", {"cat": 2}, {"cat": 1})
    (root / "unread.weights.h5").write_bytes(b"never read: the error of each table row comes first")
    return {"dir": str(root), "file": str(root / "file"), "weights": str(root / "unread.weights.h5")}


def write_image_folder(root, train, validation, size=8):
    """An ImageFolder (`train/<class>/`, `validation/<class>/`) of small random PNGs: {class: count} per split."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, counts in (("train", train), ("validation", validation)):
        for name, count in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


MODELS = [
    (["--flops", "-3"], "--flops must be a positive finite number; received -3.0."),
    (
        ["--flops", "lots"],
        "argument --flops: must be a FLOPs count such as 200M, 0.3G or 2e8; received 'lots' (see --help)",
    ),
    (
        ["--spec", "{dir}/missing.json"],
        "argument --spec: must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a preset name; received "
        "'{dir}/missing.json' (no such file) (see --help)",
    ),
    (
        ["--spec", "{dir}/bad_spec.json"],
        "argument --spec: '{dir}/bad_spec.json' is not a NetworkSpec JSON file: A NetworkSpec dict needs the keys "
        "['blocks', 'default_size', 'final_channels', 'head_channels', 'name', 'stem_channels'] and optionally "
        "'activation'; received ['name']. (see --help)",
    ),
    (
        ["--model", "ghostnet_d", "--image_size", "0"],
        "argument --image_size: must be an input size in pixels, >= 32; received '0' (see --help)",
    ),
    (
        ["--model", "ghostnet_d", "--image_size", "-3"],
        "argument --image_size: must be an input size in pixels, >= 32; received '-3' (see --help)",
    ),
    (
        ["--image_size", "100"],
        "--image_size needs --model or --spec (a block table at that size); received --image_size 100 with neither.",
    ),
    (
        ["--flops", "100M", "--image_size", "100"],
        "--image_size needs --model or --spec (a block table at that size); received --image_size 100 with --flops "
        "(the tiny formula picks the size).",
    ),
    (
        ["--activation", "hard_swish"],
        "--activation needs --model, --spec or --flops (a block table); received --activation hard_swish alone "
        "(the model table lists each model with its own activation).",
    ),
    (
        ["--model", "ghostnet_d", "--activation", "gelu"],
        "argument --activation: invalid choice: 'gelu' (choose from 'relu', 'hard_swish', 'swish') (see --help)",
    ),
]


@pytest.mark.parametrize("argv, message", MODELS, ids=[" ".join(argv) for argv, _ in MODELS])
def test_models_flags(paths, argv, message):
    assert_error(run("models", *(a.format(**paths) for a in argv)), "models", message.format(**paths))


def test_models_image_size_and_activation_change_the_block_table():
    code, out, _ = run("models", "--model", "ghostnet_d", "--image_size", "100", "--activation", "hard_swish")
    assert code == 0 and out.startswith("ghostnet_d: 100x100, stem 16, 13 blocks,")
    assert out.splitlines()[0].endswith(", hard_swish")
    code, out, _ = run("models", "--flops", "100M", "--activation", "swish")
    assert code == 0 and "ghostnet_tiny_100m: 167x167" in out and out.split("\n\n")[1].splitlines()[0].endswith("swish")


# The run directory of these cases is never created: each fails before the run starts.
TRAIN = [
    (["--epochs", "0"], "--epochs must be a positive integer; received --epochs=0."),
    (
        ["--spec", "{dir}/missing.json"],
        "--spec must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a model name (ghostnet_a, ghostnet_b, "
        "ghostnet_c, ghostnet_d, ghostnet_050, ghostnet_100, ghostnet_130, ghostnet_150, tinynet_a, tinynet_b, "
        "tinynet_c, tinynet_d, tinynet_e); received --spec='{dir}/missing.json' (no such file).",
    ),
    (["--batch_size", "0"], "--batch_size must be a positive integer; received --batch_size=0."),
    (["--steps_per_epoch", "0"], "--steps_per_epoch must be a positive integer; received 0."),
    (
        ["--image_size", "16"],
        "argument --image_size: must be an input size in pixels, >= 32; received '16' (see --help)",
    ),
    (
        ["--activation", "gelu"],
        "argument --activation: invalid choice: 'gelu' (choose from 'relu', 'hard_swish', 'swish') (see --help)",
    ),
    (["--optimizer", "adam"], "--optimizer must be one of ('rmsprop', 'sgd', 'adamw'); received --optimizer='adam'."),
    (["--learning_rate", "-1"], "--learning_rate must be a non-negative number; received --learning_rate=-1.0."),
    (["--schedule", "step"], "--schedule must be one of ('exponential', 'cosine'); received --schedule='step'."),
    (["--warmup_epochs", "-1"], "--warmup_epochs must be a non-negative number; received --warmup_epochs=-1.0."),
    (["--decay_rate", "0"], "--decay_rate must be in (0, 1] (1: no decay); received 0.0."),
    (["--decay_epochs", "-1"], "--decay_epochs must be a non-negative number; received --decay_epochs=-1.0."),
    (["--weight_decay", "-1"], "--weight_decay must be a non-negative number; received --weight_decay=-1.0."),
    (["--label_smoothing", "1"], "--label_smoothing must be in [0, 1); received 1.0."),
    (["--ema_momentum", "1"], "--ema_momentum must be in [0, 1) (0 disables EMA); received 1.0."),
    (["--dropout_rate", "2"], "--dropout_rate must be a number in [0, 1); received --dropout_rate=2.0."),
    (
        ["--drop_connect_rate", "-1"],
        "--drop_connect_rate must be a number in [0, 1); received --drop_connect_rate=-1.0.",
    ),
    (["--randaugment", "x"], "--randaugment must be N,M (two integers, e.g. 2,9); received 'x'."),
    (
        ["--randaugment", "20,1"],
        "--randaugment must be N,M with 1 <= N <= 10 operations and magnitude 0 <= M <= 10; received (20, 1).",
    ),
    (["--color_jitter", "1"], "--color_jitter must be in [0, 1); received 1.0."),
    (["--crop_min_scale", "0"], "--crop_min_scale must satisfy 0 < min <= max <= 1; received (0.0, 1.0)."),
    (
        ["--strategy", "gpu"],
        "--strategy must be one of ('mirrored', 'multi_worker', 'one_device', 'tpu'); received --strategy='gpu'.",
    ),
    (["--seed", "x"], "argument --seed: invalid int value: 'x' (see --help)"),
    (["--flip=maybe"], "argument --flip: expected true or false; received 'maybe' (see --help)"),
    (
        ["--flops", "20M", "--model", "ghostnet_100"],
        "--flops builds the tiny formula on the family of --model, which must be one of ghostnet_a, ghostnet_b, "
        "ghostnet_c, ghostnet_d, tinynet_a, tinynet_b, tinynet_c, tinynet_d, tinynet_e; received --model "
        "ghostnet_100 (the original GhostNet has no formula base).",
    ),
    (
        ["--dataset", "folder:{dir}/missing"],
        "Image folder not found: --dataset='folder:{dir}/missing' is not a directory.",
    ),
    (
        ["--dataset", "folder:{dir}/one_class"],
        "Image folder '{dir}/one_class' must hold at least 2 classes to classify (one subfolder each in train/); "
        "found 1: ['cat'].",
    ),
    (
        ["--weights", "{dir}/missing.weights.h5"],
        "--weights must be a weights file (.weights.h5, .keras, a Keras 2 .h5, a timm .safetensors or a "
        "keras_cv_attention_models .h5), a registered tag such as 'imagenet' (`keras-tinynet models --weights` "
        "lists them) or None "
        "(random initialization). Received: --weights='{dir}/missing.weights.h5' (no such file).",
    ),
    (
        ["--output_dir", "{file}"],
        "--output_dir must be a directory that can be created and written; received '{file}' ('{file}' is a file).",
    ),
    (
        ["--model_dir", "{file}/run"],
        "--model_dir must be a directory that can be created and written; received '{file}/run' ('{file}' is a file).",
    ),
    (
        ["--output_dir", "/proc/keras_tinynet_run"],
        "--output_dir must be a directory that can be created and written; received '/proc/keras_tinynet_run' "
        "(No such file or directory).",
    ),
]


@pytest.mark.parametrize("argv, message", TRAIN, ids=[" ".join(argv) for argv, _ in TRAIN])
def test_train_flags(paths, argv, message):
    tiny = {"--output_dir": f"{paths['dir']}/never", "--image_size": "32", "--epochs": "1", "--steps_per_epoch": "1"}
    given = {arg.split("=")[0] for arg in argv} | ({"--output_dir"} if "--model_dir" in argv else set())
    defaults = [item for flag, value in tiny.items() if flag not in given for item in (flag, value)]
    argv = [a.format(**paths) for a in argv]
    assert_error(run("train", *argv, *defaults), "train", message.format(**paths))
    assert not glob.glob(f"{paths['dir']}/never/checkpoints/*")  # nothing trained


# twist takes train's recipe flags (its --batch_size is the latency measurement's; --train_batch_size is train's).
TWIST_SHARED = {
    "--image_size",
    "--model",
    "--flops",
    "--batch_size",
    "--weights",
    "--output_dir",
    "--model_dir",
    "--spec",
}
TWIST = [
    (argv, message)
    for argv, message in TRAIN
    if not {arg.split("=")[0] for arg in argv if arg.startswith("--")} & TWIST_SHARED and "one_class" not in argv[-1]
] + [
    (
        ["--image_size", "16"],
        "argument --image_size: must be an input size in pixels, >= 32; received '16' (see --help)",
    ),
    (["--flops", "1e15"], None),  # an impossible budget: tests/test_twist.py holds its message
    (
        ["--flops", "lots"],
        "argument --flops: must be a FLOPs count such as 200M, 0.3G or 2e8; received 'lots' (see --help)",
    ),
    (["--latency_ms", "-1"], "--latency_ms budgets must be positive numbers; received --latency_ms -1.0."),
    (["--latency_ms", "x"], "argument --latency_ms: expected a number such as 1.5; received 'x' (see --help)"),
    (["--trials", "0"], "argument --trials: must be an integer >= 1; received '0' (see --help)"),
    (["--tolerance", "2"], "--tolerance must be in (0, 1), e.g. 0.05 for 5%; received --tolerance 2.0."),
    (["--batch_size", "0"], "argument --batch_size: must be an integer >= 1; received '0' (see --help)"),
    (["--train_batch_size", "0"], "argument --train_batch_size: must be an integer >= 1; received '0' (see --help)"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1; received '0' (see --help)"),
    (["--concurrent", "0"], "argument --concurrent: must be an integer >= 1; received '0' (see --help)"),
    (
        ["--runtime", "tpu"],
        "argument --runtime: invalid choice: 'tpu' (choose from 'keras', 'keras_folded', 'keras_xla', 'saved_model', "
        "'tflite', 'onnxruntime', 'openvino', 'optimized', 'compiled') (see --help)",
    ),
    (["--scheduler", "pbt"], "argument --scheduler: invalid choice: 'pbt' (choose from 'fifo', 'asha') (see --help)"),
    (["--model", "resnet"], None),  # the base's choices: tests/test_cli.py (an unknown --model everywhere)
    (
        ["--output_dir", "{file}"],
        "--output_dir must be a directory that can be created and written; received '{file}' ('{file}' is a file).",
    ),
]
TWIST = [(argv, message) for argv, message in TWIST if message is not None]


@pytest.mark.parametrize("argv, message", TWIST, ids=[" ".join(argv) for argv, _ in TWIST])
def test_twist_flags(paths, argv, message):
    """Every refusal comes before a plan is made, Ray starts or anything is written."""
    pytest.importorskip("ray")
    given = {arg.split("=")[0] for arg in argv}
    defaults = ["--output_dir", f"{paths['dir']}/never_twist"] if "--output_dir" not in given else []
    argv = [a.format(**paths) for a in argv]
    assert_error(
        run("twist", *argv, "--image_size", "32", *defaults)
        if "--image_size" not in given
        else run("twist", *argv, *defaults),
        "twist",
        message.format(**paths),
    )
    assert not os.path.exists(f"{paths['dir']}/never_twist")


NOT_A_RUN = (
    "--run='{dir}' is not a finished training run (no summary.json); pass the directory a `keras-tinynet train` "
    "run wrote (its --output_dir)."
)
EVALUATE = [
    (
        ["--spec", "{dir}/missing.json"],
        "--spec must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a model name (ghostnet_a, ghostnet_b, "
        "ghostnet_c, ghostnet_d, ghostnet_050, ghostnet_100, ghostnet_130, ghostnet_150, tinynet_a, tinynet_b, "
        "tinynet_c, tinynet_d, tinynet_e); received --spec='{dir}/missing.json' (no such file).",
    ),
    (["--batch_size", "0"], "--batch_size must be a positive integer; received --batch_size=0."),
    (
        ["--image_size", "31"],
        "argument --image_size: must be an input size in pixels, >= 32; received '31' (see --help)",
    ),
    (
        ["--activation", "gelu"],
        "argument --activation: invalid choice: 'gelu' (choose from 'relu', 'hard_swish', 'swish') (see --help)",
    ),
    (["--split", "test"], "argument --split: invalid choice: 'test' (choose from 'eval', 'train') (see --help)"),
    (
        ["--dataset", "folder:{dir}/missing"],
        "Image folder not found: --dataset='folder:{dir}/missing' is not a directory.",
    ),
    (
        ["--flops", "0.1k"],
        "The tiny formula covers 12M to 886M FLOPs (`ratio` 0.02 to 1.5 of ghostnet_a); received --flops=100.0.",
    ),
    (["--run", "{dir}"], NOT_A_RUN),
]


@pytest.mark.parametrize("argv, message", EVALUATE, ids=[" ".join(argv) for argv, _ in EVALUATE])
def test_evaluate_flags(paths, argv, message):
    argv = [a.format(**paths) for a in argv]
    result = run("evaluate", "--weights", paths["weights"], *argv)  # a file: each row's own flag is what fails
    assert_error(result, "evaluate", message.format(**paths))


def test_evaluate_weights_that_do_not_exist(paths):
    result = run("evaluate", "--weights", f"{paths['dir']}/missing.weights.h5", "--image_size", "32")
    assert_error(
        result,
        "evaluate",
        f"--weights must be a weights file (.weights.h5, .keras, a Keras 2 .h5, a timm .safetensors or a "
        "keras_cv_attention_models .h5), a registered tag such as 'imagenet' (`keras-tinynet models --weights` "
        "lists them) or None "
        f"(random initialization). Received: --weights='{paths['dir']}/missing.weights.h5' (no such file).",
    )


# The network flags of export and publish-hub (with --model ghostnet_d given, --spec and --flops also
# show that only one of them is allowed).
NETWORK = [
    (
        ["--activation", "gelu"],
        "argument --activation: invalid choice: 'gelu' (choose from 'relu', 'hard_swish', 'swish') (see --help)",
    ),
    (
        ["--spec", "{dir}/bad_spec.json"],
        "argument --spec: '{dir}/bad_spec.json' is not a NetworkSpec JSON file: A NetworkSpec dict needs the keys "
        "['blocks', 'default_size', 'final_channels', 'head_channels', 'name', 'stem_channels'] and optionally "
        "'activation'; received ['name']. (see --help)",
    ),
    (
        ["--flops", "200M"],
        "argument --flops: not allowed with argument --model (see --help)",
    ),
    (["--run", "{dir}"], NOT_A_RUN),
]
EXPORT = NETWORK + [
    (["--threads", "0"], "argument --threads: must be an integer >= 1; received '0' (see --help)"),
    (["--version", "0"], "argument --version: must be an integer >= 1; received '0' (see --help)"),
    (["--onnx_opset", "x"], "argument --onnx_opset: must be an integer >= 1; received 'x' (see --help)"),
    (
        ["--representative_count", "0"],
        "argument --representative_count: must be an integer >= 1; received '0' (see --help)",
    ),
    (["--benchmark_runs", "-1"], "argument --benchmark_runs: must be an integer >= 0; received '-1' (see --help)"),
    (["--int8_io", "float"], "argument --int8_io: invalid choice: 'float' (choose from 'uint8', 'int8') (see --help)"),
    (["--image_size", "0"], "argument --image_size: must be an input size in pixels, >= 32; received '0' (see --help)"),
    (
        ["--formats", "pdf"],
        "--formats must be a comma-separated subset of saved_model, tflite_float32, tflite_float16, tflite_int8, "
        "onnx; received --formats='pdf'.",
    ),
    (
        ["--formats", "tflite_int8"],
        "--formats includes tflite_int8, which needs --representative_data (a folder of images, digits or "
        "tfds:<name>[:<split>]): a few hundred images like those the model will see (a run's own training images "
        "are the default where --run or the run holding --weights is known).",
    ),
    (
        ["--weights", "{dir}/missing.weights.h5"],
        "--weights must be a weights file (.weights.h5, .keras, a Keras 2 .h5, a timm .safetensors or a "
        "keras_cv_attention_models .h5), a registered tag such as 'imagenet' (`keras-tinynet models --weights` "
        "lists them) or None "
        "(random initialization). Received: --weights='{dir}/missing.weights.h5' (no such file).",
    ),
    (
        ["--labels", "{dir}/missing.txt"],
        "--labels must be a text file with one class label per line; received --labels='{dir}/missing.txt' "
        "(no such file).",
    ),
    (
        ["--name", "../up"],
        "--name must be letters, digits, '_', '.' or '-' (a directory name); received --name='../up'.",
    ),
    (
        ["--output_dir", "{file}"],
        "--output_dir must be a directory that can be created and written; received '{file}' ('{file}' is a file).",
    ),
    (
        ["--output_dir", "{file}/below"],
        "--output_dir must be a directory that can be created and written; received '{file}/below' ('{file}' is a "
        "file).",
    ),
]


@pytest.mark.parametrize("argv, message", EXPORT, ids=[" ".join(argv) for argv, _ in EXPORT])
def test_export_flags(paths, argv, message):
    given = {arg for arg in argv if arg.startswith("--")}
    defaults = [] if "--output_dir" in given else ["--output_dir", f"{paths['dir']}/exported"]
    argv = [a.format(**paths) for a in argv]
    assert_error(run("export", "--model", "ghostnet_d", *argv, *defaults), "export", message.format(**paths))
    assert open(paths["file"]).read() == "not a directory\n"  # the file in the way is left as it was


PUBLISH_HUB = NETWORK + [
    (
        ["--forms", "saved_model"],
        "--forms must be a comma-separated subset of classification, feature_vector, keras_hub; "
        "received --forms='saved_model'.",
    ),
    (
        ["--weights", "{dir}/missing.weights.h5"],
        "--weights must be a weights file (.weights.h5, .keras, a Keras 2 .h5, a timm .safetensors or a "
        "keras_cv_attention_models .h5), a registered tag such as 'imagenet' (`keras-tinynet models --weights` "
        "lists them) or None "
        "(random initialization). Received: --weights='{dir}/missing.weights.h5' (no such file).",
    ),
    (["--image_size", "8"], "argument --image_size: must be an input size in pixels, >= 32; received '8' (see --help)"),
    (
        ["--output_dir", "{file}"],
        "--output_dir must be a directory that can be created and written; received '{file}' ('{file}' is a file).",
    ),
]


@pytest.mark.parametrize("argv, message", PUBLISH_HUB, ids=[" ".join(argv) for argv, _ in PUBLISH_HUB])
def test_publish_hub_flags(paths, argv, message):
    given = {arg for arg in argv if arg.startswith("--")}
    defaults = [] if "--output_dir" in given else ["--output_dir", f"{paths['dir']}/hub"]
    argv = [a.format(**paths) for a in argv]
    assert_error(run("publish-hub", "--model", "ghostnet_d", *argv, *defaults), "publish-hub", message.format(**paths))


CONVERT = [
    (["--source", "{dir}/missing.safetensors"], "--source file not found: --source='{dir}/missing.safetensors'."),
    (
        ["--source", "{dir}/labels3.txt"],
        "--source must be a .safetensors file, a .pth/.pt file or 'timm:<timm model name>'; received "
        "--source='{dir}/labels3.txt'.",
    ),
    (
        ["--model", "ghostnet_d"],
        "--model must be one of ghostnet_050, ghostnet_100, ghostnet_130, ghostnet_150, tinynet_a, tinynet_b, "
        "tinynet_c, tinynet_d, tinynet_e (the variants timm has); received --model='ghostnet_d'. GhostNet-A..D have "
        "no timm architecture and no public checkpoint; train them with scripts/train.py.",
    ),
    (["--parity", "always"], "--parity must be one of ('auto', 'require', 'skip'); received --parity='always'."),
    (["--top1", "200"], "--top1 must be a percentage in (0, 100]; received --top1=200.0."),
    (["--top1", "x"], "argument --top1: invalid float value: 'x' (see --help)"),
    (
        ["--base_url", "nope"],
        "--base_url must be a URL with one of the schemes ('http', 'https', 'file', 'ftp'); received "
        "--base_url='nope'.",
    ),
    (
        ["--output_dir", "{file}"],
        "--output_dir must be a directory that can be created and written; received '{file}' ('{file}' is a file).",
    ),
]


@pytest.mark.parametrize("argv, message", CONVERT, ids=[" ".join(argv) for argv, _ in CONVERT])
def test_convert_flags(paths, argv, message):
    tiny = {"--source": f"{paths['dir']}/labels3.txt", "--model": "ghostnet_100", "--output_dir": f"{paths['dir']}/c"}
    given = {arg for arg in argv if arg.startswith("--")}
    defaults = [item for flag, value in tiny.items() if flag not in given for item in (flag, value)]
    argv = [a.format(**paths) for a in argv]
    assert_error(run("convert", *argv, *defaults), "convert", message.format(**paths))


def test_every_flag_that_takes_a_value_is_in_a_table():
    """A flag added later (a path, a number or a name) must get a row in its subcommand's table."""
    tables = {"models": MODELS, "train": TRAIN, "evaluate": EVALUATE, "export": EXPORT, "publish-hub": PUBLISH_HUB}
    tables |= {"convert": CONVERT, "twist": TWIST}
    # Every value valid (free text, a tfds directory), or checked where it is used (calibration images).
    free = {"--data_dir", "--manual_dir", "--license", "--source", "--representative_data", "--labels", "--name"}
    elsewhere = {"--model", "--weights"}  # tests/test_cli.py (an unknown --model everywhere) and the tests below
    elsewhere |= {"--curves", "--address"}  # tests/test_twist.py (unreadable curves, another base; a cluster)
    for command, table in tables.items():
        sub = cli.build_parser(command=command)._subparsers._group_actions[0].choices[command]
        flags = {
            action.option_strings[0]
            for action in sub._actions
            if action.option_strings and action.nargs != 0 and not isinstance(action, common.BooleanFlag)
        }
        covered = {arg.split("=")[0] for argv, _ in table for arg in argv if arg.startswith("--")}
        covered |= {"--output_dir"} if "--model_dir" in covered else set()
        free_here = free - {"--source"} if command == "convert" else free  # convert's --source is a file
        missing = flags - covered - {"--help"} - elsewhere - free_here
        assert not missing, (command, sorted(missing))


# --- Faults: one line, the right exit status, earlier outputs intact -------------------------------------------


def test_a_run_whose_checkpoints_path_is_a_file_stops_before_training(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "ema.weights.h5").write_bytes(b"an earlier run's weights")
    (run_dir / "checkpoints").write_text("in the way")
    result = run("train", "--output_dir", run_dir, "--image_size", "32", "--epochs", "1", "--steps_per_epoch", "1")
    assert_error(
        result,
        "train",
        f"--output_dir '{run_dir}' cannot be used: '{run_dir}/checkpoints': a file is in the way of a directory; "
        "pass another --output_dir.",
    )
    assert (run_dir / "checkpoints").read_text() == "in the way"
    assert (run_dir / "final" / "ema.weights.h5").read_bytes() == b"an earlier run's weights"


def test_a_full_disk_is_a_failed_operation_exit_1_and_the_earlier_file_stays(tmp_path, monkeypatch):
    from keras_tinynet import training

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"earlier": true}')

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def train_until_the_disk_fills(config, *_):  # the run's own JSON writer, on a disk that is full
        monkeypatch.setattr(os, "fsync", disk_full)
        training._write_json(os.path.join(config.model_dir, "summary.json"), {"epoch": 1})

    monkeypatch.setattr(training, "_train", train_until_the_disk_fills)
    status, _, err = run("train", "--output_dir", run_dir, "--image_size", "32")
    (line,) = err.strip().splitlines()
    assert status == 1 and line.startswith(
        f"keras-tinynet train: error: Cannot write {run_dir}/summary.json: No space left on device after "
    ), err
    assert (run_dir / "summary.json").read_text() == '{"earlier": true}'
    assert sorted(os.listdir(run_dir)) == [".lock", "checkpoints", "final", "logs", "summary.json"]


def test_details_of_an_error_follow_its_line(tmp_path):
    folder = write_image_folder(tmp_path / "photos", {"a": 2, "b": 2}, {"a": 1, "b": 1})
    (folder / "train" / "a" / "broken.png").write_bytes(b"not a png")
    status, _, err = run(
        "train", "--dataset", f"folder:{folder}", "--output_dir", tmp_path / "run", "--image_size", "32"
    )
    assert status == 2 and err.strip().splitlines() == [
        f"keras-tinynet train: error: 1 image file(s) in '{folder}' cannot be decoded; remove, rename or replace them:",
        f"  {folder}/train/a/broken.png: not an image TensorFlow decodes (JPEG, PNG, GIF, BMP)",
    ]


def test_exit_status_is_decided_by_the_type():
    assert cli.exit_code(files.WriteError(errno.ENOSPC, "disk full")) == 1  # a ValueError too: still 1
    assert cli.exit_code(DownloadError("no answer")) == 1
    for error in (FileNotFoundError(errno.ENOENT, "x"), NotADirectoryError("x"), OSError(errno.EROFS, "ro")):
        assert cli.exit_code(error) == 2, error
    assert cli.exit_code(OSError(errno.EIO, "device")) == 1


# --- `--weights <tag>` in every subcommand that takes --weights, served from 127.0.0.1 ------------------------

TAG_FILE = "tinynet_e_test.weights.h5"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files`; `/trickle/<name>` announces a file and sends a byte every 50 ms (for 10 s at most)."""

    files: dict

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.files[name])))
        self.end_headers()
        if not self.path.startswith("/trickle/"):
            self.wfile.write(self.files[name])
            return
        for byte in self.files[name][:200]:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """TinyNet-E weights (random, 1000 classes) registered as its 'imagenet' tag and served over HTTP."""
    import keras_tinynet

    root = tmp_path_factory.mktemp("served")
    path = root / TAG_FILE
    keras_tinynet.TinyNetE(input_shape=(32, 32, 3)).save_weights(path)
    data = path.read_bytes()
    handler = type("Handler", (_Handler,), {"files": {TAG_FILE: data}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    entry = {
        "file": TAG_FILE,
        "url": f"{base}/{TAG_FILE}",
        "format": "keras_weights_h5",
        "hash_algorithm": "sha256",
        "hash": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "source": "random weights written by this test",
        "license": "Apache-2.0",
        "top1": 0.1,
    }
    yield {"root": root, "path": path, "base": base, "entry": entry}
    server.shutdown()
    server.server_close()


@pytest.fixture
def registered(served, tmp_path, monkeypatch):
    """A registry with the served tag; a fresh Keras cache; no limits from the environment."""

    def register(url=None):
        registry = tmp_path / "registry.json"
        entry = {**served["entry"], "url": url or served["entry"]["url"]}
        registry.write_text(json.dumps({"format": 2, "weights": {"tinynet_e": {"imagenet": entry}}}))
        monkeypatch.setenv(REGISTRY_ENV, str(registry))

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for name in (MIRROR_ENV, TIMEOUT_ENV, DEADLINE_ENV, MIN_RATE_ENV):
        monkeypatch.delenv(name, raising=False)
    register()
    served["register"] = register
    return served


def test_train_fine_tunes_a_tag_on_a_small_folder_at_a_batch_that_fits_it(registered, tmp_path, recwarn):
    """320 images and no --batch_size: the recipe's 1024 halved to 32 (10 steps an epoch), recorded."""
    folder = write_image_folder(tmp_path / "photos", {"a": 160, "b": 160}, {"a": 4, "b": 4})
    run_dir = tmp_path / "run"
    code, out, err = run(
        "train",
        *("--model", "tinynet_e", "--weights", "imagenet", "--dataset", f"folder:{folder}", "--image_size", "32"),
        *("--epochs", "1", "--steps_per_epoch", "1", "--output_dir", run_dir),
    )
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["batch_size"] == summary["strategy"]["global_batch"] == 32
    assert summary["config"]["weights"] == "imagenet" and summary["dataset"]["train_examples"] == 320
    assert not [w for w in recwarn if "shuffle=True" in str(w.message)]  # a warning a user cannot act on


def test_export_and_publish_hub_take_a_tag_and_load_its_weights(registered, tmp_path):
    from keras_tinynet import export
    from keras_tinynet.weights.loading import load_weights

    code, out, err = run(
        *("export", "--model", "tinynet_e", "--weights", "imagenet", "--image_size", "32"),
        *("--output_dir", tmp_path / "exported", "--formats", "tflite_float32", "--benchmark_runs", "0"),
    )
    assert code == 0, err
    assert (
        "32x32, 1000 classes, weights imagenet" in out
        and (tmp_path / "exported" / "tinynet_e.float32.tflite").is_file()
    )
    code, out, err = run(
        *("publish-hub", "--model", "tinynet_e", "--weights", "imagenet", "--image_size", "32"),
        *("--output_dir", tmp_path / "hub", "--forms", "feature_vector"),
    )
    assert code == 0, err
    assert (tmp_path / "hub" / "tinynet_e_feature_vector" / "saved_model.pb").is_file()
    loaded = export.load_exportable("tinynet_e", weights="imagenet", image_size=32).model
    reference = export.load_exportable("tinynet_e", image_size=32).model
    load_weights(reference, registered["path"])
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), reference.get_weights()))


def test_a_tag_with_labels_of_another_count_is_refused(registered, paths):
    result = run(
        *("export", "--model", "tinynet_e", "--weights", "imagenet", "--labels", f"{paths['dir']}/labels3.txt"),
        *("--output_dir", f"{paths['dir']}/exported"),
    )
    assert_error(
        result,
        "export",
        "--labels lists 3 classes but --weights='imagenet' classifies the 1000 ImageNet classes; leave --labels out "
        "(ImageNet's are built in).",
    )


def test_evaluate_takes_a_tag_and_names_the_dataset_it_needs(registered):
    result = run("evaluate", "--model", "tinynet_e", "--weights", "imagenet", "--image_size", "32")
    assert_error(
        result,
        "evaluate",
        "--weights='imagenet' classifies the 1000 ImageNet classes; --dataset='digits' has 10. Evaluate a tag on "
        "imagenet2012, or pass the path of weights trained on this dataset.",
    )


def test_a_download_past_its_deadline_is_a_failed_operation_exit_1(registered, tmp_path, monkeypatch):
    url = f"{registered['base']}/trickle/{TAG_FILE}"
    registered["register"](url)
    monkeypatch.setenv(DEADLINE_ENV, "0.5")
    started = time.monotonic()
    result = run("export", "--model", "tinynet_e", "--weights", "imagenet", "--output_dir", tmp_path / "exported")
    assert time.monotonic() - started < 10
    status, _, err = result
    (line,) = err.strip().splitlines()
    assert status == 1 and line.startswith(
        f"keras-tinynet export: error: Aborted the download of the 'imagenet' weights of 'tinynet_e' from {url}: it "
        "took longer than 0.5 s ("
    ), err
    assert not list((tmp_path / "keras_home").rglob("*.weights.h5"))


# --- Quiet tooling ---------------------------------------------------------------------------------------------


def test_the_command_line_keeps_tensorflow_quiet(tmp_path):
    """No TensorFlow log lines (cuInit, oneDNN, CPU features) before the one error line; a subprocess, since
    TensorFlow prints them once per process, when it starts."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    argv = ["train", "--dataset", f"folder:{tmp_path}/missing", "--output_dir", str(tmp_path / "run")]
    result = subprocess.run(
        [sys.executable, "-m", "keras_tinynet", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [
            f"python -m keras_tinynet train: error: Image folder not found: --dataset='folder:{tmp_path}/missing' is "
            "not a directory."
        ],
    ), result.stderr
