"""scripts/train.py and scripts/evaluate.py end to end: the embedded default, strategies, resume, errors."""

import dataclasses
import errno
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_python
from test_data import write_image_folder

from keras_tinynet import files

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")
EVALUATE = str(ROOT / "scripts" / "evaluate.py")
# A few quick steps of GhostNet-D at 32x32: enough to exercise the machinery, not to learn digits.
QUICK = ["--image_size", "32", "--batch_size", "16", "--warmup_epochs", "0"]

TWO_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def run(script, *args, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def summary(model_dir, worker=None):
    path = pathlib.Path(model_dir) / ("workers/" + worker if worker else "") / "summary.json"
    return json.loads(path.read_text())


def assert_clean_error(result, message, code=2):
    """The CLI contract (keras_tinynet/cli/common.py): one line, no traceback, 2 for bad input, 1 for a failed
    operation such as a full disk."""
    assert result.returncode == code, result.stderr[-3000:]
    assert message in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The README's main job: `scripts/train.py` with no flags but the run directory."""
    model_dir = tmp_path_factory.mktemp("default") / "run"
    started = time.perf_counter()
    result = run(TRAIN, "--model_dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-5000:]
    return model_dir, result, time.perf_counter() - started


@pytest.mark.slow
def test_default_run_reaches_95_percent_and_writes_everything(default_run):
    model_dir, result, seconds = default_run
    run_summary = summary(model_dir)
    assert run_summary["final_metrics"]["top1"] >= 0.95
    assert [h["epoch"] for h in run_summary["history"]] == list(range(1, 13))
    assert seconds < 600
    assert "validation top-1" in result.stdout and str(model_dir / "final" / "ema.weights.h5") in result.stdout
    for name in ("final/ema.weights.h5", "final/model.keras", "summary.json", "checkpoints/epoch-0012/state.json"):
        assert (model_dir / name).is_file(), name
    assert any((model_dir / "logs").rglob("events.out.tfevents.*"))
    assert run_summary["images_per_second"] > 0 and run_summary["config"]["optimizer"] == "rmsprop"
    assert len(list((model_dir / "checkpoints").iterdir())) == 2  # the newest two are kept


@pytest.mark.slow
def test_rerunning_the_default_resumes_instead_of_starting_over(default_run):
    model_dir, _, first_seconds = default_run
    before = summary(model_dir)
    result = run(TRAIN, "--model_dir", str(model_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout and "(epoch 12 of 12)" in result.stdout
    after = summary(model_dir)
    assert after["history"] == before["history"]
    assert after["final_metrics"]["top1"] == pytest.approx(before["final_metrics"]["top1"])
    assert after["weights_sha256"] == before["weights_sha256"]


@pytest.mark.slow
def test_evaluate_script_on_the_trained_weights(default_run):
    model_dir, _, _ = default_run
    result = run(EVALUATE, "--weights", str(model_dir / "final" / "ema.weights.h5"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout[result.stdout.index("{") :])
    assert metrics["examples"] == 360 and metrics["top1"] == pytest.approx(summary(model_dir)["final_metrics"]["top1"])
    assert metrics["top5"] >= metrics["top1"] and metrics["loss"] > 0
    missing = run(EVALUATE, "--weights", str(model_dir / "nothing.weights.h5"))
    assert_clean_error(missing, "nothing.weights.h5' (no such file)")


@pytest.mark.slow
def test_mirrored_strategy_splits_the_global_batch_between_two_replicas(tmp_path):
    code = (
        TWO_CPUS
        + f"""
from keras_tinynet import training, data
strategy = training.make_strategy("mirrored")
batches = data.pipeline(data.load("digits"), True, 32, 32)
images, _ = next(iter(strategy.experimental_distribute_dataset(batches)))
print("per-replica", [int(t.shape[0]) for t in strategy.experimental_local_results(images)])
config = training.TrainConfig(image_size=32, batch_size=32, epochs=2, steps_per_epoch=8, warmup_epochs=0,
                              model_dir={str(tmp_path)!r})
training.train(config, verbose=0)
"""
    )
    result = run_python(code)
    assert "per-replica [16, 16]" in result.stdout
    run_summary = summary(tmp_path)
    assert run_summary["strategy"] == {
        "name": "mirrored",
        "replicas": 2,
        "global_batch": 32,
        "per_replica_batch": 16,
        "synchronized_bn": False,
        "task": "worker-0",
    }
    losses = [h["loss"] for h in run_summary["history"]]
    assert losses[-1] < losses[0]


def test_batch_size_not_divisible_by_the_replicas(tmp_path):
    code = (
        TWO_CPUS
        + f"""
from keras_tinynet import training
try:
    training.train(training.TrainConfig(batch_size=15, model_dir={str(tmp_path)!r}))
except training.TrainingError as error:
    print("ERROR", error)
"""
    )
    assert (
        "ERROR `batch_size`=15 is not divisible by the 2 replicas of the 'mirrored' strategy; use a multiple of 2."
    ) in run_python(code).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_two_processes(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    args = [
        TRAIN,
        "--strategy",
        "multi_worker",
        "--epochs",
        "2",
        "--steps_per_epoch",
        "3",
        *QUICK,
        "--model_dir",
        str(tmp_path),
    ]
    processes, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker-{index}.log", "w+")  # files, not pipes: a full pipe would stall a worker
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CONFIG": tf_config},
            )
        )
    try:
        for process in processes:
            process.wait(timeout=600)
    finally:
        for process in processes:
            process.kill()
    for process, log in zip(processes, logs):
        log.seek(0)
        assert process.returncode == 0, log.read()[-4000:]
        log.close()
    chief, other = summary(tmp_path), summary(tmp_path, "worker-1")
    assert chief["strategy"]["replicas"] == 2 and chief["strategy"]["per_replica_batch"] == 8
    assert chief["strategy"]["synchronized_bn"]
    assert chief["weights_sha256"] == other["weights_sha256"]
    assert (tmp_path / "final" / "ema.weights.h5").is_file()
    assert not (tmp_path / "workers" / "worker-1" / "final").exists()  # only the chief exports


@pytest.mark.slow
def test_sigkill_mid_epoch_then_the_same_command_finishes_the_same_epochs(tmp_path):
    args = [TRAIN, "--epochs", "3", "--steps_per_epoch", "12", *QUICK, "--model_dir", str(tmp_path)]
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "checkpoints" / "epoch-0001"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert first.exists(), "no checkpoint after the first epoch"
    time.sleep(0.5)  # inside epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("epoch-"))
    assert killed_at[-1] in ("epoch-0001", "epoch-0002") and not (tmp_path / "summary.json").exists()
    result = run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout
    assert [h["epoch"] for h in summary(tmp_path)["history"]] == [1, 2, 3]


def test_resume_compares_every_field_but_the_allowed_ones():
    from keras_tinynet import training

    recorded = json.loads(json.dumps(dataclasses.asdict(training.resolve(training.TrainConfig(model_dir="a")))))
    del recorded["color_jitter"]  # a run recorded before the field existed trained with its default
    same = training.resolve(training.TrainConfig(model_dir="b", epochs=30, jit_compile=True, data_dir="/d"))
    assert training.resume_differences(recorded, same) == []
    other = dataclasses.replace(same, decay_rate=0.5, randaugment=(2, 9), color_jitter=0.3)
    assert training.resume_differences(recorded, other) == [
        "decay_rate: was 0.97, now 0.5",
        "randaugment: was None, now [2, 9]",
        "color_jitter: was 0.4, now 0.3",
    ]


BREAKAGES = {
    "truncated weights": (lambda d: os.truncate(d / "state.weights.h5", 100), "state.weights.h5 has sha256"),
    "deleted weights": (lambda d: (d / "state.weights.h5").unlink(), "unreadable state.weights.h5 (No such file"),
    "corrupt state": (lambda d: (d / "state.json").write_text('{"epoch": 3, "hist'), "unreadable state.json"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checkpoints_resume_from_the_newest_that_verifies_and_keep_two_verified(breakage, tmp_path, capsys):
    import keras

    from keras_tinynet import training

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    checkpoints = training.Checkpoints(str(tmp_path))
    kept = lambda: sorted(os.listdir(checkpoints.root))  # noqa: E731
    for epoch in (1, 2, 3):
        checkpoints.save(model, epoch, {"epoch": epoch, "history": [], "config": {}})
    assert kept() == ["epoch-0002", "epoch-0003"]
    damage, reason = BREAKAGES[breakage]
    damage(tmp_path / "checkpoints" / "epoch-0003")
    path, state = checkpoints.newest_verified()
    assert path.endswith("epoch-0002") and state["epoch"] == 2
    assert f"Skipping checkpoint {checkpoints.root}/epoch-0003: {reason}" in capsys.readouterr().out
    checkpoints.save(model, 4, {"epoch": 4, "history": [], "config": {}})
    assert kept() == ["epoch-0002", "epoch-0004"]  # the broken one goes, the older verified one stays


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoints(tmp_path, monkeypatch):
    import keras

    from keras_tinynet import training

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    checkpoints = training.Checkpoints(str(tmp_path))
    for epoch in (1, 2):
        checkpoints.save(model, epoch, {"epoch": epoch, "history": [], "config": {}})
    before = ["epoch-0001", "epoch-0002"]

    def full_disk(root):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "fsync_tree", full_disk)
    with pytest.raises(
        files.WriteError, match=r"Cannot write .*epoch-0003: No space left on device after [\d,]+ bytes"
    ):
        checkpoints.save(model, 3, {"epoch": 3, "history": [], "config": {}})
    assert sorted(os.listdir(checkpoints.root)) == before  # no staging left, nothing deleted
    assert all(checkpoints.verify(os.path.join(checkpoints.root, name)) for name in before)


@pytest.mark.slow
def test_a_second_run_in_the_same_directory_is_refused_and_a_rerun_walks_back(tmp_path):
    """Two real processes on one run directory; then a truncated newest checkpoint and staging left by a
    killed run: the rerun removes the staging, skips the broken checkpoint and resumes from the one before."""
    args = [TRAIN, "--epochs", "3", "--steps_per_epoch", "2", *QUICK, "--model_dir", str(tmp_path)]
    first = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (tmp_path / ".lock").exists() and time.time() < deadline:
            time.sleep(0.1)
        assert_clean_error(
            run(*args), f"--model_dir={str(tmp_path)!r} is in use by another training run (pid {first.pid}"
        )
        assert first.wait(timeout=600) == 0
    finally:
        first.kill()
    os.truncate(tmp_path / "checkpoints" / "epoch-0003" / "state.weights.h5", 1000)
    stale = [tmp_path / "checkpoints" / ".epoch-0004.partial-x", tmp_path / "final" / ".model.keras.partial-y"]
    stale[0].mkdir()
    stale[1].write_bytes(b"")
    result = run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in stale:
        assert f"Removed {path}, left by a run that was killed" in result.stdout and not path.exists()
    assert f"Skipping checkpoint {tmp_path}/checkpoints/epoch-0003: state.weights.h5 has sha256" in result.stdout
    assert f"Resuming from {tmp_path}/checkpoints/epoch-0002 (epoch 2 of 3)." in result.stdout
    assert [h["epoch"] for h in summary(tmp_path)["history"]] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path / "final")) == ["ema.weights.h5", "model.keras"]
    assert_clean_error(  # the finished run's directory refuses a run with other settings
        run(*args[:-2], "--model", "ghostnet_c", "--model_dir", str(tmp_path)),
        "holds a run with other settings (model: was 'ghostnet_d', now 'ghostnet_c')",
    )


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_not_a_segmentation_fault(small_disk):
    result = run(TRAIN, "--epochs", "2", "--steps_per_epoch", "3", *QUICK, "--model_dir", str(small_disk / "run"))
    assert_clean_error(
        result, f"Cannot write {small_disk}/run/checkpoints/epoch-0001: No space left on device after", code=1
    )
    assert not [p for p in small_disk.rglob("*") if files.STAGING_MARK in p.name]


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message(tmp_path):
    result = run(
        TRAIN,
        "--optimizer",
        "sgd",
        "--learning_rate",
        "1e30",
        "--ema_momentum",
        "0",
        "--epochs",
        "2",
        "--steps_per_epoch",
        "6",
        *QUICK,
        "--model_dir",
        str(tmp_path),
    )
    assert_clean_error(result, "The loss became NaN in epoch 1")
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").glob("epoch-*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "imagenet20120"], "Unknown dataset --dataset='imagenet20120'"),
        (["--randaugment", "2"], "--randaugment must be N,M"),
        (["--batch_size", "4000"], "--batch_size=4000 is larger than the 1437 training images"),
    ],
)
def test_bad_flags_give_clear_messages(args, message, tmp_path):
    assert_clean_error(run(TRAIN, *args, "--model_dir", str(tmp_path)), message)


@pytest.mark.parametrize("problem", ["corrupt", "empty"])
def test_bad_image_folders_give_clear_messages(problem, tmp_path):
    root = write_image_folder(tmp_path / "images")
    if problem == "corrupt":
        (root / "train" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        message = "cannot be decoded"
    else:
        (root / "validation" / "fish").mkdir()
        message = "holds no images"
    assert_clean_error(run(TRAIN, "--dataset", f"folder:{root}", "--model_dir", str(tmp_path / "run")), message)


@pytest.mark.slow
def test_image_folder_trains_with_randaugment_and_hswish(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=8)
    result = run(
        TRAIN,
        "--dataset",
        f"folder:{root}",
        "--activation",
        "hard_swish",
        "--randaugment",
        "2,9",
        "--epochs",
        "2",
        "--batch_size",
        "8",
        "--image_size",
        "48",
        "--model_dir",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_summary = summary(tmp_path / "run")
    assert run_summary["dataset"]["classes"] == 2 and run_summary["steps_per_epoch"] == 2
    assert run_summary["config"]["randaugment"] == [2, 9]
    assert np.isfinite(run_summary["final_metrics"]["loss"])


def test_the_mixed_precision_policy_is_set_only_while_a_run_lasts(tmp_path):
    import keras

    from keras_tinynet import training

    before = keras.mixed_precision.global_policy().name
    with training.mixed_precision_policy(True):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # no GPU here
    assert keras.mixed_precision.global_policy().name == before
    # A run that stops with an error inside the stage that set it (the batch is larger than the dataset).
    config = training.TrainConfig(mixed_precision=True, batch_size=4096, epochs=1, model_dir=str(tmp_path))
    with pytest.raises(training.TrainingError, match="larger than the 1437 training images"):
        training.train(config, verbose=0)
    assert keras.mixed_precision.global_policy().name == before
