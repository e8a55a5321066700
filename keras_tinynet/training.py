"""Training on tf.distribute with the TinyNet recipe: strategy, optimizer and schedule, resumable
checkpoints, EMA weights for evaluation and export, and a JSON summary of the run.

`train(TrainConfig(...))` is what `scripts/train.py` runs. With no arguments it trains GhostNet-D on the
embedded digits to about 98% validation accuracy in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_tinynet import _compat, files, runs
from keras_tinynet import data as data_lib
from keras_tinynet.builder import build, check_arguments
from keras_tinynet.callbacks import EpochRecorder, TrainedWeightsValidation, ema_lag_line
from keras_tinynet.checkpoints import Checkpoints
from keras_tinynet.files import write_atomically
from keras_tinynet.optimization import make_optimizer
from keras_tinynet.recipe import (
    MAY_CHANGE_ON_RESUME,
    TrainConfig,
    TrainingError,
    fit_to_data,
    resolve,
    resume_differences,
    spec_of,
)
from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING
from keras_tinynet.strategies import make_strategy, worker_role
from keras_tinynet.weights import resolver


def _metrics() -> list:
    """Top-1 and top-5: the names the history, the summary and evaluate() report."""
    return [keras.metrics.CategoricalAccuracy(name="top1"), keras.metrics.TopKCategoricalAccuracy(k=5, name="top5")]


def build_model(config: TrainConfig, num_classes: int, weights: str | None = None) -> keras.Model:
    """The network a config trains (also used to rebuild it for export and evaluation), with `weights`."""
    return build(
        spec_of(config),
        input_shape=(config.image_size, config.image_size, 3),
        classes=num_classes,
        activation=config.activation,
        dropout_rate=config.dropout_rate,
        drop_connect_rate=config.drop_connect_rate,
        weights=weights,
    )


def start_from_pretrained(model: keras.Model, config: TrainConfig) -> None:
    """Loads `config.weights` into everything but the classifier (new for the dataset's classes); with
    `freeze_backbone`, only the classifier stays trainable (a frozen BN layer runs in inference mode)."""
    if config.weights is None:
        return
    new_head = ("predictions",)
    resolver.load_weights_argument(model, config.weights, variant=spec_of(config).name, exclude=new_head)
    if config.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name in new_head


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of all weights: equal on workers that finished with the same weights."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _write_json(path: str, payload: dict) -> None:
    write_atomically(path, json.dumps(payload, indent=2, default=str))


def train(config: TrainConfig, verbose: int | str = "auto", callbacks: tuple = ()) -> dict:
    """Trains (or resumes) a run and returns its summary; writes everything under `config.model_dir`.

    The chief holds `<model_dir>/.lock` for the whole run, so a second run in the same directory stops at
    once instead of interleaving checkpoints; under it, what killed runs left staged is removed first.
    `callbacks`: more Keras callbacks for `fit` (the twist search reports each epoch to Ray Tune with one)."""
    config = resolve(config)
    if not worker_role()[0]:
        return _train(config, verbose, callbacks)
    new_run = not os.path.isdir(config.model_dir) or not os.listdir(config.model_dir)
    os.makedirs(config.model_dir, exist_ok=True)
    lock = os.path.join(config.model_dir, ".lock")
    try:
        with files.exclusive_lock(lock):
            try:
                for directory in RUN_FOLDERS:
                    os.makedirs(
                        os.path.join(config.model_dir, directory), exist_ok=True
                    )  # a file in the way fails now, not after an epoch
                    for stale in files.remove_stale_staging(os.path.join(config.model_dir, directory)):
                        print(f"Removed {stale}, left by a run that was killed while writing it.")
                return _train(config, verbose, callbacks)
            except BaseException:
                if new_run:
                    _remove_if_empty(config.model_dir)
                raise
    except files.LockHeld as held:
        raise TrainingError(
            f"`model_dir`={config.model_dir!r} is in use by another training run (pid {held.holder}, lock {lock}); "
            "wait for it to end or pass another `model_dir`."
        ) from None


RUN_FOLDERS = ("", "checkpoints", "final", "logs")


def _remove_if_empty(model_dir: str) -> None:
    """Removes what a new run that failed before writing anything made: its empty folders and its lock."""
    for directory in RUN_FOLDERS[1:]:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(model_dir, directory))
    if os.listdir(model_dir) == [".lock"]:
        os.remove(os.path.join(model_dir, ".lock"))


@contextlib.contextmanager
def mixed_precision_policy(enabled: bool):
    """With `enabled`, the global policy is mixed_float16 on GPUs, mixed_bfloat16 elsewhere, inside the block
    only: the previous policy is restored when it ends, however it ends."""
    if not enabled:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    )
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@dataclasses.dataclass(frozen=True)
class _RunData:
    """The dataset of a run and its input pipelines."""

    dataset: data_lib.Dataset
    train: tf.data.Dataset
    eval: tf.data.Dataset
    steps_per_epoch: int


def _train(config: TrainConfig, verbose: int | str, extra_callbacks: tuple = ()) -> dict:
    started = time.time()
    strategy = make_strategy(config.strategy)
    with mixed_precision_policy(config.mixed_precision):
        config, run_data = _load_data(config, strategy.num_replicas_in_sync)
        chief, task = worker_role()
        checkpoints = Checkpoints(config.model_dir)
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        model = _compiled_model(config, strategy, run_data, multi_worker)
        workaround = (
            _compat.keras_multi_worker_fit(model, config.image_size, run_data.dataset.num_classes)
            if multi_worker
            else contextlib.nullcontext()
        )
        with workaround:
            history, initial_epoch = _resume(config, strategy, model, checkpoints)
            chief_checkpoints = checkpoints if chief else None
            _fit(config, model, run_data, chief_checkpoints, history, initial_epoch, verbose, extra_callbacks)
            final_metrics = dict(zip(["loss", "top1", "top5"], model.evaluate(run_data.eval, verbose=0)))
        export = _exported_copy(config, model, run_data.dataset.num_classes)
        outputs = _save_final(export, os.path.join(config.model_dir, "final")) if chief else {}
    summary = _summary(config, strategy, run_data, multi_worker, task, history, final_metrics, export, outputs)
    summary["session_seconds"] = round(time.time() - started, 1)
    lag = ema_lag_line(history)
    if lag:
        print(lag)
    home = config.model_dir if chief else os.path.join(config.model_dir, "workers", task)
    summary_path = os.path.join(home, "summary.json")
    _write_json(summary_path, summary)
    summary["outputs"]["summary"] = summary_path
    return summary


def _load_data(config: TrainConfig, replicas: int) -> tuple[TrainConfig, _RunData]:
    """The dataset and its pipelines, with what the run left to the recipe fitted to the dataset (the batch, and
    for datasets but digits the epochs, warm-up and input size), after checking that the batch splits between
    the replicas and fits the dataset."""
    keras.utils.set_random_seed(config.seed)
    dataset = data_lib.load(config.dataset, config.data_dir, config.manual_dir, seed=config.seed)
    config, chosen = fit_to_data(config, dataset.train_examples, dataset.typical_size)
    if chosen:
        print(chosen)
    if config.batch_size % replicas:
        raise TrainingError(
            f"`batch_size`={config.batch_size} is not divisible by the {replicas} replicas of the "
            f"{config.strategy!r} strategy; use a multiple of {replicas}."
        )
    steps_per_epoch = config.steps_per_epoch or dataset.train_examples // config.batch_size
    if steps_per_epoch < 1:
        raise TrainingError(
            f"`batch_size`={config.batch_size} is larger than the {dataset.train_examples} training images of "
            f"{dataset.name!r}."
        )
    train_data = data_lib.pipeline(
        dataset, True, config.image_size, config.batch_size, _augmentation(config), config.seed
    )
    if config.steps_per_epoch:
        train_data = train_data.repeat()
    eval_data = data_lib.pipeline(dataset, False, config.image_size, config.batch_size)
    return config, _RunData(dataset, train_data, eval_data, steps_per_epoch)


def _augmentation(config: TrainConfig) -> data_lib.Augmentation:
    return data_lib.Augmentation(
        crop_scale=(config.crop_min_scale, 1.0),
        flip=config.flip,
        color_jitter=config.color_jitter,
        randaugment=config.randaugment,
    )


def check_config(config: TrainConfig) -> TrainConfig:
    """The resolved `config` after every check a run makes of it before loading data (the recipe's fields, the
    augmentation, the network's rates), for callers that plan many runs (the twist) and must refuse at once."""
    config = resolve(config)
    _augmentation(config)
    check_arguments(
        pooling=None,
        classes=1,
        classifier_activation="softmax",
        dropout_rate=config.dropout_rate,
        drop_connect_rate=config.drop_connect_rate,
        dtype=None,
        input_tensor=None,
    )
    return config


def _compiled_model(config: TrainConfig, strategy, run_data: _RunData, multi_worker: bool) -> keras.Model:
    """The network (with `config.weights` where fine-tuning), compiled with the recipe's optimizer and loss."""
    with strategy.scope():
        model = build_model(config, run_data.dataset.num_classes)
        start_from_pretrained(model, config)
        if multi_worker:
            # BN statistics of the global batch, so that every worker keeps the same moving statistics
            # (and ends with the same weights). On one machine this is left off: with the CPU's
            # reduce-to-one-device all-reduce it made graph building 8x slower (376 s against 46 s).
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        model.compile(
            optimizer=make_optimizer(config, model, run_data.steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=_metrics(),
            jit_compile=config.jit_compile,
        )
    return model


def _resume(config: TrainConfig, strategy, model: keras.Model, checkpoints: Checkpoints) -> tuple[list, int]:
    """(history, epochs done) of the newest verified checkpoint, loaded into `model`; ([], 0) for a new run."""
    latest = checkpoints.newest_verified()
    if latest is None:
        return [], 0
    path, state = latest
    differences = resume_differences(state["config"], config)
    if differences:
        raise TrainingError(
            f"{config.model_dir!r} holds a run with other settings ({'; '.join(differences)}); use the "
            f"same flags (only {', '.join(f'`{name}`' for name in MAY_CHANGE_ON_RESUME)} may change) or another "
            "`model_dir`."
        )
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(path, Checkpoints.WEIGHTS))
    print(f"Resuming from {path} (epoch {state['epoch']} of {config.epochs}).")
    return state["history"], state["epoch"]


def _fit(config, model, run_data: _RunData, checkpoints, history: list, initial_epoch: int, verbose, extra=()) -> None:
    """Trains to `config.epochs` (checkpointing each epoch where `checkpoints`), then swaps in the EMA weights."""
    recorder = EpochRecorder(
        checkpoints, history, run_data.steps_per_epoch * config.batch_size, dataclasses.asdict(config)
    )
    callbacks = [recorder]
    if config.ema_momentum > 0:  # validation sees the EMA weights, and the trained ones beside them
        callbacks = [TrainedWeightsValidation(run_data.eval), recorder, keras.callbacks.SwapEMAWeights()]
    if checkpoints is not None:  # the chief
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(config.model_dir, "logs")))
    callbacks += list(extra)
    if initial_epoch < config.epochs:
        model.fit(
            run_data.train,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=run_data.steps_per_epoch,
            validation_data=run_data.eval,
            callbacks=callbacks,
            verbose=verbose,
        )
    if recorder.nan_at is not None:
        epoch, batch = recorder.nan_at
        raise TrainingError(
            f"The loss became NaN in epoch {epoch}, batch {batch}; training stopped without checkpointing it. "
            f"Lower the learning rate (now {config.learning_rate} per 1024 images) or check the data; "
            f"rerunning resumes from the last good epoch in {os.path.join(config.model_dir, 'checkpoints')!r}."
        )
    if config.ema_momentum > 0:
        model.optimizer.finalize_variable_values(model.trainable_variables)  # export the EMA weights


def _exported_copy(config: TrainConfig, model: keras.Model, num_classes: int) -> keras.Model:
    """A fresh network with the trained weights: no optimizer, no distribution strategy, all layers trainable."""
    export = build_model(config, num_classes)
    for trained, exported in zip(model.layers, export.layers):  # by layer: frozen layers reorder model.weights
        exported.set_weights(trained.get_weights())
    return export


def _summary(config, strategy, run_data: _RunData, multi_worker, task, history, final_metrics, export, outputs) -> dict:
    replicas = strategy.num_replicas_in_sync
    train_times = [h["images_per_second"] for h in history[1:]] or [h["images_per_second"] for h in history]
    return runs.summary(
        config,
        run_data.dataset,
        strategy={
            "name": config.strategy,
            "replicas": replicas,
            "global_batch": config.batch_size,
            "per_replica_batch": config.batch_size // replicas,
            "synchronized_bn": multi_worker,
            "task": task,
        },
        network=spec_of(config).to_dict(),
        preprocessing=dataclasses.asdict(IMAGENET_PREPROCESSING),
        steps_per_epoch=run_data.steps_per_epoch,
        history=history,
        final_metrics=final_metrics,
        train_seconds=round(sum(h["seconds"] for h in history), 1),  # every session's epochs, resumed or not
        session_seconds=None,
        images_per_second=round(sum(train_times) / len(train_times), 1) if train_times else None,
        weights_sha256=weights_fingerprint(export),
        outputs=outputs,
    )


def _save_final(model: keras.Model, directory: str) -> dict:
    """The EMA weights as .weights.h5 and the whole model as .keras, each made in memory, then staged."""
    weights, whole = os.path.join(directory, "ema.weights.h5"), os.path.join(directory, "model.keras")
    write_atomically(weights, _compat.weights_h5_bytes(model))
    write_atomically(whole, _compat.keras_archive_bytes(model))
    return {"weights": weights, "keras": whole}


def evaluate(config: TrainConfig, weights: str, split: str = "eval") -> dict:
    """Top-1, top-5 and cross-entropy of `weights` on a split ("eval" or "train") with the eval preprocessing.

    `weights` is the path of a weights file (evaluated with the family's eval transform) or a registered
    tag such as "imagenet": the published weights, evaluated with the transform they were published with
    (the entry's `crop_pct` and `interpolation`), so that ImageNet's validation split gives their top-1.
    """
    if split not in ("eval", "train"):
        raise TrainingError(f"`split` must be 'eval' or 'train'; received split={split!r}.")
    config = resolve(config)
    tagged = resolver.weights_kind(weights) == resolver.TAG
    preprocessing = resolver.published_preprocessing(weights, spec_of(config).name)
    dataset = data_lib.load(config.dataset, config.data_dir, config.manual_dir, seed=config.seed)
    if tagged and config.image_size is None:  # published weights: the size they were published at
        config = dataclasses.replace(config, image_size=spec_of(config).default_size)
    config, _ = fit_to_data(config, dataset.train_examples, dataset.typical_size)
    if tagged and dataset.num_classes != IMAGENET_CLASSES:
        raise TrainingError(
            f"`weights`={weights!r} classifies the {IMAGENET_CLASSES} ImageNet classes; `dataset`={dataset.name!r} "
            f"has {dataset.num_classes}. Evaluate a tag on imagenet2012, or pass the path of weights trained on "
            "this dataset."
        )
    if split == "train":
        dataset = dataclasses.replace(dataset, eval=dataset.train, eval_examples=dataset.train_examples)
    model = build_model(config, dataset.num_classes, weights)
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=_metrics(),
    )
    eval_data = data_lib.pipeline(dataset, False, config.image_size, config.batch_size, preprocessing=preprocessing)
    loss, top1, top5 = model.evaluate(eval_data, verbose=0)
    return {
        "dataset": dataset.name,
        "split": split,
        "examples": dataset.eval_examples,
        "crop_pct": preprocessing.crop_pct,
        "interpolation": preprocessing.interpolation,
        "loss": loss,
        "top1": top1,
        "top5": top5,
    }
