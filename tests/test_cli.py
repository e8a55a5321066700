"""The `keras-tinynet` command line: subcommands, one vocabulary, one error convention, a pip install."""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import pytest

from keras_tinynet import cli
from keras_tinynet.presets import PRESETS

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Flags that mean the same in every subcommand that takes them.
SHARED = {
    "train": ("--model", "--flops", "--curves", "--activation", "--image_size", "--weights", "--output_dir"),
    "evaluate": ("--model", "--flops", "--curves", "--activation", "--image_size", "--weights"),
    "export": ("--model", "--flops", "--curves", "--spec", "--activation", "--image_size", "--weights", "--output_dir"),
    "publish-hub": ("--model", "--flops", "--spec", "--activation", "--image_size", "--weights", "--output_dir"),
    "convert": ("--model", "--output_dir"),
    "models": ("--model", "--flops", "--spec", "--curves"),
    "twist": ("--model", "--flops", "--image_size", "--dataset", "--output_dir"),
}


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_every_subcommand_has_help_with_the_shared_flags():
    code, out, _ = run("--help")
    assert code == 0
    assert set(cli.COMMANDS) == set(SHARED) and all(name in out for name in cli.COMMANDS)
    for command, flags in SHARED.items():
        code, out, _ = run(command, "--help")
        assert code == 0, command
        missing = [flag for flag in flags if flag not in out]
        assert not missing, (command, missing)


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "publish-hub", "convert", "models"])
def test_an_unknown_model_is_one_error_line_with_exit_2(command):
    code, out, err = run(command, "--model", "ghostnet_z")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"keras-tinynet {command}: error: argument --model") and "'ghostnet_z'" in lines[0]
    assert all(f"'{name}'" in lines[0] for name in PRESETS)


def test_bad_values_name_the_flag_and_what_is_allowed():
    code, _, err = run("models", "--flops", "lots")
    assert code == 2 and "argument --flops" in err and "'lots'" in err
    code, _, err = run("train", "--epochs", "three")
    assert code == 2 and "argument --epochs: invalid int value: 'three'" in err
    code, _, err = run("train", "--flip=maybe")
    assert code == 2 and "argument --flip: expected true or false; received 'maybe'" in err
    code, _, err = run("frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in err


def test_models_prints_the_table_a_block_table_and_the_formula():
    code, out, _ = run("models")
    assert code == 0 and all(f"`{cli.models.builder_name(name)}`" in out for name in PRESETS)
    code, out, _ = run("models", "--model", "ghostnet_d")
    assert code == 0 and out.startswith("ghostnet_d: 145x145")
    code, out, _ = run("models", "--flops", "100M")
    assert code == 0 and out.startswith("budget 100.0M FLOPs -> image size")
    assert run()[1] == run("models")[1]  # no subcommand: the table, as `python -m keras_tinynet` printed it


def test_boolean_flags_take_every_spelling():
    parser = cli.build_parser(command="train")
    for argv, expected in (
        ([], None),
        (["--flip"], True),
        (["--noflip"], False),
        (["--flip=false"], False),
        (["--flip=true"], True),
    ):
        assert parser.parse_args(["train", *argv]).flip is expected, argv
    assert parser.parse_args(["train", "--model_dir", "x"]).model_dir == "x"  # the older name of --output_dir
    assert parser.parse_args(["train", "--output_dir", "y"]).model_dir == "y"


def test_errors_raised_outside_the_package_keep_their_traceback():
    try:
        int("x")
    except ValueError as error:
        assert cli.exit_code(error) is None
    try:
        from keras_tinynet.presets import get_spec

        get_spec("nope")
    except ValueError as error:
        assert cli.exit_code(error) == 2


@pytest.mark.slow
def test_an_installed_wheel_runs_every_command_without_the_checkout(tmp_path):
    """A user's install: the built wheel, imported from outside the repository (no scripts/, no tests/)."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheel_dir, ROOT], check=True)
    (wheel,) = wheel_dir.glob("keras_tinynet-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def command(*argv):
        code = "import sys, keras_tinynet.cli as c; print(c.__file__, file=sys.stderr); sys.exit(c.main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=outside, env=env, timeout=900
        )

    result = command("models")
    assert result.returncode == 0 and "`GhostNetD`" in result.stdout, result.stderr[-2000:]
    assert result.stderr.splitlines()[0].startswith(str(site))  # the installed copy, not the checkout
    run_dir = outside / "run"
    train = ["train", "--epochs", "1", "--steps_per_epoch", "2", "--image_size", "32", "--batch_size", "16"]
    result = command(*train, "--warmup_epochs", "0", "--output_dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "final" / "ema.weights.h5").is_file() and "validation top-1" in result.stdout
    weights = str(run_dir / "final" / "ema.weights.h5")
    result = command("evaluate", "--weights", weights, "--image_size", "32")
    assert result.returncode == 0 and '"top1"' in result.stdout, result.stderr[-3000:]
    export = ["export", "--model", "ghostnet_d", "--weights", weights, "--image_size", "32", "--labels"]
    (outside / "labels.txt").write_text("\n".join(str(i) for i in range(10)) + "\n")
    result = command(
        *export,
        str(outside / "labels.txt"),
        "--output_dir",
        str(outside / "exported"),
        "--formats",
        "saved_model,tflite_float32",
        "--benchmark_runs",
        "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (outside / "exported" / "ghostnet_d" / "1" / "saved_model.pb").is_file()
    assert (outside / "exported" / "ghostnet_d.float32.tflite").is_file()
    result = command("export", "--model", "ghostnet_d", "--output_dir", str(outside / "x"), "--formats", "pdf")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        "keras-tinynet export: error: --formats must be a comma-separated subset of saved_model"
    )
