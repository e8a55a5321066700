"""A newcomer's first hour: their own folder of photos to a deployed model with no tuning flags and no flag
repeated, as the README's "Your own photos" block runs it (verbatim, in-process); then each surprise a new
user met on that path, one test each."""

import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import pathlib
import re
import runpy
import shlex
import sys

import numpy as np
import pytest

from keras_tinynet import cli, recipe
from keras_tinynet.callbacks import ema_lag_line

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSES = sorted(["astronaut", "cat", "coffee", "rocket", "galaxies", "tissue", "retina", "temple", "flower",
                  "brick", "grass", "gravel"])  # fmt: skip


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def readme_block(heading: str, language: str) -> str:
    """The first ```language block under the README heading `heading`."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{heading}") :]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def readme_commands(heading: str) -> list[list[str]]:
    lines = [line.split("#")[0].strip() for line in readme_block(heading, "bash").splitlines()]
    return [shlex.split(line) for line in lines if line]


def run_readme_command(argv: list[str]):
    """`keras-tinynet ...` through cli.main; `python scripts/x.py ...` through runpy, both in this process."""
    if argv[0] == "keras-tinynet":
        return run(*argv[1:])
    assert argv[:2] == ["python", "scripts/make_photo_folder.py"], argv
    out = io.StringIO()
    with contextlib.redirect_stdout(out), _argv(argv[1:]):
        runpy.run_path(str(ROOT / argv[1]), run_name="__main__")
    return 0, out.getvalue(), ""


@contextlib.contextmanager
def _argv(argv):
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """The README's "Your own photos" commands, run in an empty directory: {command name: (code, out, err)}."""
    home = tmp_path_factory.mktemp("newcomer")
    results = {}
    with contextlib.chdir(home):
        for argv in readme_commands("## Your own photos"):
            name = argv[1] if argv[0] == "keras-tinynet" else "photos"
            results[name] = run_readme_command(argv)
            assert results[name][0] == 0, results[name]
    return home, results


def _summary(home):
    return json.loads((home / "runs/ghostnet_d-photos/summary.json").read_text())


@pytest.mark.slow
def test_the_readme_folder_block_learns_with_no_tuning_flags(newcomer):
    home, results = newcomer
    shown = readme_block("## Your own photos", "text").splitlines()
    printed = "".join(out for _, out, _ in results.values()).splitlines()
    for line in shown:  # what the README shows, printed as it shows it
        assert line in printed, line
    summary = _summary(home)
    assert summary["final_metrics"]["top1"] >= 3 / len(CLASSES)  # at least 3x chance, no tuning flags
    assert summary["config"]["epochs"] == recipe.SMALL_DATASET_EPOCHS and summary["config"]["image_size"] == 40
    assert summary["dataset"]["class_names"] == CLASSES
    assert all("val_top1_no_ema" in epoch for epoch in summary["history"])  # the trained weights beside the EMA


@pytest.mark.slow
def test_evaluate_and_export_take_the_run_from_beside_the_weights(newcomer):
    home, results = newcomer
    metrics = json.loads(results["evaluate"][1][results["evaluate"][1].index("{") :])
    assert metrics["dataset"] == "folder:photos" and metrics["examples"] == 6 * len(CLASSES)
    assert metrics["top1"] == pytest.approx(_summary(home)["final_metrics"]["top1"])
    out = results["export"][1]
    assert "Calibrating int8 on 100 images from photos/train" in out  # the run's own training images
    assert "Model ghostnet_d: 40x40, 12 classes" in out
    import tensorflow as tf

    served = tf.saved_model.load(str(home / "exported/ghostnet_d/1"))
    labels = served.signatures["serving_default"](images=tf.zeros([1, 40, 40, 3]))["top_k_labels"]
    assert {label.decode() for label in labels.numpy()[0]} <= set(CLASSES)  # class names, not '0'..'11'


@pytest.mark.slow
def test_a_whole_photo_is_classified_alike_by_the_saved_model_and_tflite(newcomer):
    import tensorflow as tf
    from skimage import data

    from keras_tinynet import export

    home, _ = newcomer
    photo = data.chelsea()  # 451x300: the whole photo, not a crop
    jpeg = tf.io.encode_jpeg(photo, quality=95)
    served = tf.saved_model.load(str(home / "exported/ghostnet_d/1")).signatures["serving_bytes"]
    answer = served(image_bytes=tf.reshape(jpeg, [1]))
    saved_top = int(answer["top_k_ids"].numpy()[0, 0])
    assert answer["top_k_labels"].numpy()[0, 0].decode() == CLASSES[saved_top]
    image = export.decode_and_preprocess(jpeg, 0, 40, 0.875).numpy()[None]
    probabilities = export.tflite_predict(str(home / "exported/ghostnet_d.float32.tflite"), image)
    assert int(np.argmax(probabilities[0])) == saved_top
    np.testing.assert_allclose(probabilities[0], answer["probabilities"].numpy()[0], atol=1e-4)


@pytest.mark.slow
def test_a_rerun_is_a_no_op_that_keeps_the_training_time(newcomer):
    home, _ = newcomer
    before = _summary(home)
    with contextlib.chdir(home):
        code, out, err = run("train", "--dataset", "folder:photos")
    assert code == 0, err
    after = _summary(home)
    assert after["train_seconds"] == before["train_seconds"] and after["history"] == before["history"]
    assert after["images_per_second"] == before["images_per_second"]


@pytest.mark.slow
def test_a_refused_resume_names_the_flag_the_user_typed(newcomer):
    home, _ = newcomer
    with contextlib.chdir(home):
        code, _, err = run("train", "--dataset", "folder:photos", "--output_dir", "runs/ghostnet_d-photos", "--seed", 1)
    assert code == 2 and "seed: was 0, now 1" in err and err.rstrip().endswith("or another --output_dir."), err
    assert "`--epochs`" not in err and "--epochs, --output_dir" in err


@pytest.fixture
def served_ghostnet_100(tmp_path, monkeypatch):
    """A random timm ghostnet_100 in its published format, served from 127.0.0.1 and registered as 'imagenet'."""
    import functools
    import hashlib
    import http.server
    import threading

    from conftest import timm

    if timm is None:
        pytest.skip("needs timm (the parity extra) to write the timm checkpoint")
    import safetensors.torch

    from keras_tinynet.weights.registry import FORMAT, MIRROR_ENV, REGISTRY_ENV

    root = tmp_path / "served"
    root.mkdir()
    model = timm.create_model("ghostnet_100")
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, root / "g.safetensors")
    data = (root / "g.safetensors").read_bytes()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    entry = {
        "file": "g.safetensors",
        "url": f"http://127.0.0.1:{server.server_address[1]}/g.safetensors",
        "format": "timm_safetensors",
        "hash_algorithm": "sha256",
        "hash": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "source": "test: a random timm ghostnet_100",
        "license": "Apache-2.0",
        "top1": None,
    }
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format": FORMAT, "weights": {"ghostnet_100": {"imagenet": entry}}}))
    monkeypatch.setenv(REGISTRY_ENV, str(registry))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    yield
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_the_readme_fine_tuning_block_runs_as_it_stands(newcomer, served_ghostnet_100):
    home, _ = newcomer
    printed = []
    with contextlib.chdir(home):
        for argv in readme_commands("Fine-tuning on your own images"):
            code, out, err = run_readme_command(argv)
            assert code == 0, err
            printed += out.splitlines()
    for line in readme_block("Fine-tuning on your own images", "text").splitlines():
        assert line in printed, line
    summary = json.loads((home / "runs/ghostnet_100-photos/summary.json").read_text())
    assert summary["config"]["freeze_backbone"] and summary["config"]["epochs"] == 3
    assert summary["config"]["warmup_epochs"] == 0.3  # the recipe's 0.5, at most a tenth of the run
    assert summary["dataset"]["class_names"] == CLASSES


def test_the_recipe_fits_short_runs_to_the_data():
    folder = recipe.resolve(recipe.TrainConfig(dataset="folder:x", model_dir="run"))
    assert (folder.epochs, folder.warmup_epochs, folder.image_size, folder.batch_size) == (None,) * 4
    small, line = recipe.fit_to_data(folder, 960, typical_size=64)
    assert (small.batch_size, small.epochs, small.warmup_epochs, small.image_size) == (64, 30, 3.0, 64)
    assert line == (
        "The recipe chose: batch 64, 30 epochs (a small dataset: 960 images), warm-up 3 epochs, 64 px (the images' "
        "typical size)."
    )
    imagenet, _ = recipe.fit_to_data(folder, 1_281_167, typical_size=None)
    assert (imagenet.batch_size, imagenet.epochs, imagenet.warmup_epochs, imagenet.image_size) == (1024, 450, 3, 145)
    large_photos, _ = recipe.fit_to_data(folder, 320, typical_size=3000)  # never above the model's size
    assert large_photos.image_size == 145 and large_photos.batch_size == 32
    short, _ = recipe.fit_to_data(dataclasses.replace(folder, epochs=3), 320, typical_size=61)
    assert (short.warmup_epochs, short.image_size) == (0.3, 56)  # not a run that is all warm-up
    assert recipe.resolve(recipe.TrainConfig(epochs=3, model_dir="r")).warmup_epochs == 0.3  # digits too
    mine = dataclasses.replace(folder, epochs=5, warmup_epochs=2.0, image_size=40, batch_size=8)
    assert recipe.fit_to_data(mine, 960, 64) == (mine, "")  # what the user chose stays


def test_the_run_says_when_the_ema_has_not_caught_up():
    assert ema_lag_line([{"val_top1": 0.14, "val_top1_no_ema": 0.60}]).startswith(
        "The EMA of the weights (exported in final/) validates at 0.1400, the trained weights at 0.6000"
    )
    assert ema_lag_line([{"val_top1": 0.59, "val_top1_no_ema": 0.60}]) == ""
    assert ema_lag_line([{"val_top1": 0.5}]) == ""  # EMA off: nothing to compare


def test_a_new_run_that_fails_before_training_leaves_nothing_behind(tmp_path):
    model_dir = tmp_path / "runs" / "run"
    code, _, err = run("train", "--batch_size", "4000", "--output_dir", model_dir)
    assert code == 2 and "--batch_size=4000 is larger than the 1437 training images" in err
    assert not (tmp_path / "runs").exists()  # no .lock, no empty checkpoints/, final/, logs/


def test_export_checks_calibration_before_writing_anything(tmp_path):
    out = tmp_path / "exported"
    common = ["export", "--model", "ghostnet_d", "--image_size", "32", "--output_dir", out, "--benchmark_runs", "0"]
    code, _, err = run(*common, "--formats", "saved_model,tflite_int8", "--representative_data", tmp_path / "nowhere")
    assert code == 2 and "--representative_data must be a folder of images, digits or tfds:" in err, err
    assert not out.exists()
    code, _, err = run(*common, "--formats", "saved_model,tflite_int8")  # no run to take the images from
    assert code == 2 and "needs --representative_data" in err and not out.exists(), err


def test_a_missing_onnx_package_is_refused_before_writing_anything(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    missing = lambda name, *rest: None if name == "tf2onnx" else find_spec(name, *rest)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    out = tmp_path / "exported"
    code, _, err = run("export", "--model", "ghostnet_d", "--image_size", "32", "--output_dir", out)
    assert code == 1 and 'pip install "keras_tinynet[export]"' in err and "tf2onnx" in err, err
    assert not out.exists()


def test_every_install_hint_names_an_extra_that_exists():
    from keras_tinynet.latency import RUNTIME_TABLE

    setup = (ROOT / "setup.py").read_text()
    extras = set(re.findall(r'^\s+"(\w+)": ', setup[setup.index("extras_require") :], re.M))
    hints = []
    for path in (ROOT / "keras_tinynet").rglob("*.py"):
        text = path.read_text()
        hints += [(path.name, text[m.start() : m.start() + 60]) for m in re.finditer("pip install", text)]
    assert len(hints) >= 6
    for name, hint in hints:  # the package itself, or one of its extras: never a bare package name
        assert "keras_tinynet" in hint and set(re.findall(r"keras_tinynet\[(\w+)\]", hint)) <= extras, (name, hint)
    assert {runtime.extra for runtime in RUNTIME_TABLE.values() if runtime.extra} <= extras
    assert "safetensors" in setup[: setup.index("extras_require")]  # .safetensors needs no extra (and no torch)


def test_help_texts_and_the_weights_list():
    code, out, _ = run("models", "--weights")
    assert code == 0 and "| ghostnet_100 | `imagenet` | 73.96 |" in out and "GhostNet-A..D: no ImageNet" in out
    code, out, _ = run("evaluate", "--help")
    assert code == 0 and "Preset to train" not in out and "--run" in out
    code, out, _ = run("convert", "--help")
    assert code == 0 and "GhostNet or TinyNet checkpoint" in out
    code, _, err = run("evaluate", "--weights", "nothing.weights.h5")
    assert code == 2 and "`keras-tinynet models --weights` lists them" in err and "README" not in err


def test_the_readme_names_the_extras_a_pip_user_needs():
    text = (ROOT / "README.md").read_text()
    for extra in ("export", "convert", "search", "keras_hub"):
        assert f'pip install "keras_tinynet[{extra}]"' in text, extra
    quick_tour = readme_block("## Quick tour", "python")
    assert "ghostnet_100.weights.h5" not in quick_tour or "keras-tinynet convert" in quick_tour
    assert os.path.isfile(ROOT / "scripts/make_photo_folder.py")
