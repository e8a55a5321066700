"""Step 3 of the paper's search: one trial trains one configuration with the package's recipe for the search's
short schedule (`keras_tinynet.training`) and reports its validation top-1 to Ray Tune after every epoch.

A trial's run directory is `<output_dir>/trials/<digest of its spec>`: a trial restarted after the driver was
killed resumes from its own last checkpoint there, and a finished one only re-reads its result.
"""

from __future__ import annotations

import json
import os

# TrainConfig fields a search passes through to every trial (the dataset flags and the recipe's knobs).
TRAIN_FIELDS = (
    "dataset",
    "data_dir",
    "manual_dir",
    "epochs",
    "batch_size",
    "steps_per_epoch",
    "optimizer",
    "learning_rate",
    "schedule",
    "warmup_epochs",
    "decay_rate",
    "decay_epochs",
    "weight_decay",
    "label_smoothing",
    "ema_momentum",
    "dropout_rate",
    "drop_connect_rate",
    "randaugment",
    "color_jitter",
    "crop_min_scale",
    "flip",
    "activation",
    "strategy",
    "mixed_precision",
    "jit_compile",
    "seed",
)


def trial_dir(output_dir: str, key: str) -> str:
    return os.path.join(output_dir, "trials", key)


def train_config(plan: dict, trial: dict):
    """The TrainConfig of one planned trial: its spec file, its image size, its run directory."""
    from keras_tinynet.recipe import TrainConfig

    directory = trial_dir(plan["output_dir"], trial["key"])
    return TrainConfig(
        spec=os.path.join(directory, "spec.json"),
        image_size=trial["image_size"],
        model_dir=directory,
        **plan["train"],
    )


def run_trial(config: dict) -> None:
    """The Ray Tune function trainable: `config` names the plan file, the trial and its CPU count."""
    from ray import tune

    with open(config["plan"]) as handle:
        plan = json.load(handle)
    trial = next(t for t in plan["trials"] if t["key"] == config["trial"])
    _limit_threads(config["cpus"])
    import keras

    from keras_tinynet import files, training

    keras.backend.clear_session()  # a reused worker (reuse_actors) starts each trial from a clean Keras state

    directory = trial_dir(plan["output_dir"], trial["key"])
    os.makedirs(directory, exist_ok=True)
    files.write_atomically(os.path.join(directory, "spec.json"), json.dumps(trial["spec"]))

    class ReportEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tune.report({"top1": float((logs or {}).get("val_top1", 0.0)), "epoch": epoch + 1, "final": False})

    summary = training.train(train_config(plan, trial), verbose=0, callbacks=(ReportEpoch(),))
    tune.report(
        {
            "top1": float(summary["final_metrics"]["top1"]),
            "top5": float(summary["final_metrics"]["top5"]),
            "epoch": len(summary["history"]),
            "train_seconds": summary["train_seconds"],
            "final": True,
        }
    )


def _limit_threads(cpus: int) -> None:
    """TensorFlow's thread pools sized to the trial's CPUs, so that concurrent trials do not oversubscribe. A
    reused worker keeps the pools of its first trial (TensorFlow fixes them once it runs): every trial of a
    search asks for the same share."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == cpus:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:  # already initialized by an earlier trial in this worker
        pass
