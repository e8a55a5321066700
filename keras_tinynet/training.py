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
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_tinynet import _compat
from keras_tinynet import data as data_lib
from keras_tinynet.files import write_atomically
from keras_tinynet.models import GhostNet
from keras_tinynet.spec import IMAGENET_CLASSES, IMAGENET_PREPROCESSING, get_spec
from keras_tinynet.weights import registry
from keras_tinynet.weights.loading import load_pretrained_weights, load_weights

STRATEGIES = ("mirrored", "multi_worker", "one_device", "tpu")
OPTIMIZERS = ("rmsprop", "sgd", "adamw")
SCHEDULES = ("exponential", "cosine")


class TrainingError(ValueError):
    """A run that cannot start or went wrong, with what to change."""


def _option(default, help_text: str):
    """A TrainConfig field whose help text the command line shows (its flags are made from the fields)."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. `None` means: the recipe's value (see `resolve`)."""

    model: str = _option("ghostnet_d", "Preset to train (see `keras-tinynet models`).")
    flops: float | None = _option(
        None, "Train the network the tiny formula builds for this FLOPs budget (e.g. 200M) instead of --model."
    )
    activation: str = _option("relu", "relu, or hard_swish for the paper's '+ HSwish' rows.")
    image_size: int | None = _option(None, "Input size (default: the model's; 48 for the embedded digits).")
    dataset: str = _option("digits", "'digits' (embedded), 'folder:/path' (ImageFolder layout) or a tfds name.")
    data_dir: str | None = _option(None, "tensorflow-datasets data directory.")
    manual_dir: str | None = _option(None, "Directory of manually downloaded archives (imagenet2012).")
    epochs: int | None = _option(None, "Epochs (recipe: 450; digits: 12).")
    batch_size: int | None = _option(None, "Global batch size, split between the replicas (recipe: 1024; digits: 64).")
    steps_per_epoch: int | None = _option(None, "Steps per epoch (default: one pass over the training split).")
    optimizer: str = _option("rmsprop", "rmsprop (the recipe), sgd or adamw.")
    learning_rate: float | None = _option(
        None, "Peak learning rate per 1024 images, scaled linearly with --batch_size."
    )
    schedule: str = _option("exponential", "exponential (warm-up, then x decay_rate every decay_epochs) or cosine.")
    warmup_epochs: float | None = _option(None, "Linear warm-up from 1e-6 (recipe: 3; digits: 1).")
    decay_rate: float = _option(0.97, "Exponential schedule: multiply the learning rate by this ...")
    decay_epochs: float = _option(2.4, "... every this many epochs.")
    weight_decay: float | None = _option(None, "Decoupled weight decay, not on BN and biases (rmsprop: 1e-5).")
    label_smoothing: float = _option(0.1, "Label smoothing.")
    ema_momentum: float = _option(0.9999, "EMA of the weights used for evaluation and export (0: off).")
    dropout_rate: float = _option(0.2, "Dropout before the classifier.")
    drop_connect_rate: float = _option(0.0, "Stochastic depth rate of the last block.")
    randaugment: tuple[int, int] | None = _option(
        None, "N,M: RandAugment with N ops of magnitude M (0..10), the '+ RA' rows."
    )
    color_jitter: float = _option(0.4, "Brightness/contrast/saturation jitter.")
    crop_min_scale: float | None = _option(None, "Smallest random-resized-crop area (recipe: 0.08; digits: 0.35).")
    flip: bool | None = _option(None, "Random horizontal flips (recipe: on; digits: off).")
    strategy: str = _option("mirrored", "tf.distribute strategy.")
    mixed_precision: bool = _option(False, "mixed_float16 on GPUs, mixed_bfloat16 elsewhere.")
    jit_compile: bool = _option(False, "XLA (measure first: about 10x slower on CPUs).")
    model_dir: str | None = _option(
        None, "Run directory: checkpoints, logs, final weights, summary.json (default: runs/<model>-<dataset>)."
    )
    seed: int = _option(0, "Random seed.")
    weights: str | None = _option(
        None,
        "Start from pretrained weights: a registered tag ('imagenet', 'imagenet_ssld') or the path of a weights or "
        "source checkpoint file. The classifier is replaced for the dataset's classes; the recipe becomes fine-tuning.",
    )
    freeze_backbone: bool = _option(False, "With weights: train only the new classifier (frozen BN in inference mode).")


# The published TinyNet recipe (ImageNet, 450 epochs at batch 1024) and the embedded default, whose
# 1,437 tiny training images need fewer epochs, a smaller batch and gentler crops (no flips: digits).
PAPER_RECIPE = dict(epochs=450, batch_size=1024, warmup_epochs=3.0, crop_min_scale=0.08, flip=True)
DIGITS_RECIPE = dict(epochs=12, batch_size=64, warmup_epochs=1.0, crop_min_scale=0.35, flip=False, image_size=48)
# Starting from pretrained weights: a short schedule, a short warm-up and a tenth of the peak learning rate
# (the classifier is new, the backbone only needs small steps).
FINE_TUNING_RECIPE = dict(epochs=10, warmup_epochs=0.5)
FINE_TUNING_LR_FACTOR = 0.1
OPTIMIZER_RECIPES = {
    "rmsprop": dict(learning_rate=0.048, weight_decay=1e-5),  # TinyNet (MindSpore)
    "sgd": dict(learning_rate=0.4, weight_decay=4e-5),  # GhostNet: momentum 0.9, cosine
    "adamw": dict(learning_rate=0.008, weight_decay=0.05),
}


def resolve(config: TrainConfig) -> TrainConfig:
    """Fills the `None` fields with the recipe's values and checks every field."""
    recipe = DIGITS_RECIPE if config.dataset == "digits" else PAPER_RECIPE
    if config.optimizer not in OPTIMIZERS:
        raise TrainingError(f"`optimizer` must be one of {OPTIMIZERS}; received optimizer={config.optimizer!r}.")
    recipe = {**recipe, **OPTIMIZER_RECIPES[config.optimizer]}
    if config.weights is not None:
        recipe = {**recipe, **FINE_TUNING_RECIPE, "learning_rate": recipe["learning_rate"] * FINE_TUNING_LR_FACTOR}
    elif config.freeze_backbone:
        raise TrainingError(
            "`freeze_backbone`=True needs `weights` (a pretrained backbone to freeze); received weights=None."
        )
    if config.image_size is None and "image_size" not in recipe:
        recipe["image_size"] = _spec(config).default_size
    filled = {k: v for k, v in recipe.items() if getattr(config, k) is None}
    config = dataclasses.replace(config, **filled)
    if config.model_dir is None:
        model = f"ghostnet_{config.flops / 1e6:.0f}m" if config.flops else config.model
        config = dataclasses.replace(config, model_dir=os.path.join("runs", f"{model}-{_slug(config.dataset)}"))
    for name, allowed in (("strategy", STRATEGIES), ("schedule", SCHEDULES)):
        if getattr(config, name) not in allowed:
            raise TrainingError(f"`{name}` must be one of {allowed}; received {name}={getattr(config, name)!r}.")
    for name in ("epochs", "batch_size", "image_size"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise TrainingError(f"`{name}` must be a positive integer; received {name}={value!r}.")
    if config.image_size < 32:
        raise TrainingError(f"`image_size` must be at least 32; received image_size={config.image_size}.")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise TrainingError(f"`steps_per_epoch` must be a positive integer; received {config.steps_per_epoch}.")
    for name in ("learning_rate", "warmup_epochs", "decay_epochs", "weight_decay"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise TrainingError(f"`{name}` must be a non-negative number; received {name}={value!r}.")
    if not 0 <= config.ema_momentum < 1:
        raise TrainingError(f"`ema_momentum` must be in [0, 1) (0 disables EMA); received {config.ema_momentum}.")
    if not 0 <= config.label_smoothing < 1:
        raise TrainingError(f"`label_smoothing` must be in [0, 1); received {config.label_smoothing}.")
    return config


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.replace("folder:", "")).strip("_")


def _spec(config: TrainConfig):
    if config.flops is not None:
        from keras_tinynet.formula import tiny_formula

        return tiny_formula(config.flops).spec
    return get_spec(config.model)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """mirrored: all local GPUs, else all logical CPUs; multi_worker: from TF_CONFIG; one_device; tpu."""
    if name == "multi_worker":  # first: collective ops must be configured before TensorFlow starts
        if "TF_CONFIG" not in os.environ:
            raise TrainingError(
                "`strategy`='multi_worker' needs the TF_CONFIG environment variable (cluster and task)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as error:
        raise TrainingError(f"`strategy`='tpu' found no TPU ({error}).") from None
    return tf.distribute.TPUStrategy(resolver)


def worker_role() -> tuple[bool, str]:
    """(is_chief, task name) under TF_CONFIG; a single process is the chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    task_type, task_id = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in tf_config.get("cluster", {})
    chief = task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
    return chief, f"{task_type}-{task_id}"


class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `initial` to `peak`, then `peak * decay_rate ** floor(step / decay_steps)`."""

    def __init__(self, peak, warmup_steps, decay_steps, decay_rate, initial=1e-6):
        self.peak, self.warmup_steps, self.decay_steps = peak, warmup_steps, decay_steps
        self.decay_rate, self.initial = decay_rate, initial

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.initial + (self.peak - self.initial) * step / max(self.warmup_steps, 1)
        decayed = self.peak * self.decay_rate ** keras.ops.floor((step - self.warmup_steps) / self.decay_steps)
        return keras.ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return dict(
            peak=self.peak,
            warmup_steps=self.warmup_steps,
            decay_steps=self.decay_steps,
            decay_rate=self.decay_rate,
            initial=self.initial,
        )


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    peak = config.learning_rate * config.batch_size / 1024
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "cosine":
        total = config.epochs * steps_per_epoch
        return keras.optimizers.schedules.CosineDecay(
            1e-6, decay_steps=max(total - warmup, 1), warmup_target=peak, warmup_steps=warmup
        )
    return WarmupExponentialDecay(peak, warmup, max(config.decay_epochs * steps_per_epoch, 1), config.decay_rate)


def ema_momentum(config: TrainConfig, total_steps: int) -> float:
    """The recipe's EMA momentum, capped so that a short run averages over about its last tenth.

    0.9999 averages over ~10,000 steps: right for 450 ImageNet epochs, but a run of a few hundred
    steps would evaluate and export weights that are still mostly the random initialization.
    """
    return min(config.ema_momentum, 1.0 - 10.0 / max(total_steps, 20))


def make_optimizer(config: TrainConfig, model: keras.Model, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(config, steps_per_epoch)
    ema = dict(use_ema=config.ema_momentum > 0, ema_momentum=ema_momentum(config, config.epochs * steps_per_epoch))
    if config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(
            schedule, rho=0.9, momentum=0.9, epsilon=1e-3, weight_decay=config.weight_decay, **ema
        )
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    # No weight decay on BN scales/offsets and biases, as in the recipe.
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if v.name in ("gamma", "beta", "bias")]
    )
    return optimizer


def build_model(config: TrainConfig, num_classes: int, weights: str | None = None) -> keras.Model:
    """The network a config trains (also used to rebuild it for export and evaluation), with `weights` (a tag)."""
    return GhostNet(
        None if config.flops is not None else config.model,
        flops=config.flops,
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
    if registry.is_tag(config.weights):
        load_pretrained_weights(model, _spec(config).name, config.weights, exclude=new_head)
    else:
        load_weights(model, config.weights, exclude=new_head)
    if config.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name in new_head


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of all weights: equal on workers that finished with the same weights."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# Run-defining fields: resuming with other values would silently train something else.
_RESUME_KEYS = (
    "model",
    "flops",
    "activation",
    "image_size",
    "dataset",
    "epochs",
    "batch_size",
    "optimizer",
    "learning_rate",
    "schedule",
    "steps_per_epoch",
)


class Checkpoints:
    """One directory per finished epoch (`epoch-0007/`: weights with optimizer state, and the history),
    written to a temporary directory and renamed into place, so a kill at any moment leaves either the
    previous checkpoint or the new one, never a torn one. The newest two are kept."""

    KEEP = 2

    def __init__(self, model_dir: str):
        self.root = os.path.join(model_dir, "checkpoints")

    def latest(self) -> tuple[str, dict] | None:
        if not os.path.isdir(self.root):
            return None
        done = sorted(d for d in os.listdir(self.root) if d.startswith("epoch-"))
        if not done:
            return None
        path = os.path.join(self.root, done[-1])
        with open(os.path.join(path, "state.json")) as f:
            return path, json.load(f)

    def save(self, model: keras.Model, epoch: int, state: dict) -> None:
        os.makedirs(self.root, exist_ok=True)
        final = os.path.join(self.root, f"epoch-{epoch:04d}")
        staging = tempfile.mkdtemp(prefix=f".epoch-{epoch:04d}-", dir=self.root)
        model.save_weights(os.path.join(staging, "state.weights.h5"))
        _write_json(os.path.join(staging, "state.json"), state)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(staging, final)
        for old in sorted(d for d in os.listdir(self.root) if d.startswith("epoch-"))[: -self.KEEP]:
            shutil.rmtree(os.path.join(self.root, old), ignore_errors=True)
        for leftover in (d for d in os.listdir(self.root) if d.startswith(".epoch-")):
            if os.path.join(self.root, leftover) != staging:
                shutil.rmtree(os.path.join(self.root, leftover), ignore_errors=True)


def _write_json(path: str, payload: dict) -> None:
    write_atomically(path, json.dumps(payload, indent=2, default=str))


class EpochRecorder(keras.callbacks.Callback):
    """Keeps the per-epoch history (with wall time and images/s) and checkpoints each finished epoch.

    An epoch whose loss went NaN is neither recorded nor checkpointed.
    """

    def __init__(self, checkpoints: Checkpoints | None, history: list, images_per_epoch: int, config_dict: dict):
        super().__init__()
        self.checkpoints, self.history = checkpoints, history
        self.images_per_epoch, self.config_dict = images_per_epoch, config_dict
        self.nan_at = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.train_seconds = None

    def on_test_begin(self, logs=None):
        if self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.started

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.nan_at is None:
            self.nan_at = (len(self.history) + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_at is not None:
            return
        seconds = time.perf_counter() - self.started
        train_seconds = self.train_seconds or seconds
        entry = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in (logs or {}).items()},
            "seconds": round(seconds, 3),
            "images_per_second": round(self.images_per_epoch / train_seconds, 1),
        }
        self.history.append(entry)
        if self.checkpoints is not None:
            self.checkpoints.save(
                self.model, epoch + 1, {"epoch": epoch + 1, "history": self.history, "config": self.config_dict}
            )


def train(config: TrainConfig, verbose: int | str = "auto") -> dict:
    """Trains (or resumes) a run and returns its summary; writes everything under `config.model_dir`."""
    started = time.time()
    config = resolve(config)
    strategy = make_strategy(config.strategy)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
        )
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise TrainingError(
            f"`batch_size`={config.batch_size} is not divisible by the {replicas} replicas of the "
            f"{config.strategy!r} strategy; use a multiple of {replicas}."
        )
    keras.utils.set_random_seed(config.seed)
    dataset = data_lib.load(config.dataset, config.data_dir, config.manual_dir, seed=config.seed)
    steps_per_epoch = config.steps_per_epoch or dataset.train_examples // config.batch_size
    if steps_per_epoch < 1:
        raise TrainingError(
            f"`batch_size`={config.batch_size} is larger than the {dataset.train_examples} training images of "
            f"{dataset.name!r}."
        )
    augmentation = data_lib.Augmentation(
        crop_scale=(config.crop_min_scale, 1.0),
        flip=config.flip,
        color_jitter=config.color_jitter,
        randaugment=config.randaugment,
    )
    train_data = data_lib.pipeline(dataset, True, config.image_size, config.batch_size, augmentation, config.seed)
    if config.steps_per_epoch:
        train_data = train_data.repeat()
    eval_data = data_lib.pipeline(dataset, False, config.image_size, config.batch_size)

    chief, task = worker_role()
    home = config.model_dir if chief else os.path.join(config.model_dir, "workers", task)
    checkpoints = Checkpoints(config.model_dir)
    config_dict = dataclasses.asdict(config)

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with strategy.scope():
        model = build_model(config, dataset.num_classes)
        start_from_pretrained(model, config)
        if multi_worker:
            # BN statistics of the global batch, so that every worker keeps the same moving statistics
            # (and ends with the same weights). On one machine this is left off: with the CPU's
            # reduce-to-one-device all-reduce it made graph building 8x slower (376 s against 46 s).
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        model.compile(
            optimizer=make_optimizer(config, model, steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=[
                keras.metrics.CategoricalAccuracy(name="top1"),
                keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"),
            ],
            jit_compile=config.jit_compile,
        )
    workaround = (
        _compat.keras_multi_worker_fit(model, config.image_size, dataset.num_classes)
        if multi_worker
        else contextlib.nullcontext()
    )
    with workaround:
        history, initial_epoch = [], 0
        latest = checkpoints.latest()
        if latest is not None:
            path, state = latest
            changed = {
                k: (state["config"].get(k), config_dict[k])
                for k in _RESUME_KEYS
                if state["config"].get(k) != json.loads(json.dumps(config_dict[k]))
            }
            if changed:
                differences = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in changed.items())
                raise TrainingError(
                    f"{config.model_dir!r} holds a run with other settings ({differences}); "
                    "use another --model_dir or the same flags."
                )
            with strategy.scope():
                model.optimizer.build(model.trainable_variables)
                model.load_weights(os.path.join(path, "state.weights.h5"))
            history, initial_epoch = state["history"], state["epoch"]
            print(f"Resuming from {path} (epoch {initial_epoch} of {config.epochs}).")

        recorder = EpochRecorder(
            checkpoints if chief else None, history, steps_per_epoch * config.batch_size, config_dict
        )
        callbacks = [recorder]
        if config.ema_momentum > 0:
            callbacks.append(keras.callbacks.SwapEMAWeights())  # validation sees the EMA weights
        if chief:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(config.model_dir, "logs")))
        if initial_epoch < config.epochs:
            model.fit(
                train_data,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_data=eval_data,
                callbacks=callbacks,
                verbose=verbose,
            )
        if recorder.nan_at is not None:
            epoch, batch = recorder.nan_at
            raise TrainingError(
                f"The loss became NaN in epoch {epoch}, batch {batch}; training stopped without checkpointing it. "
                f"Lower the learning rate (now {config.learning_rate} per 1024 images) or check the data; "
                f"rerunning resumes from the last good epoch in {checkpoints.root!r}."
            )
        if config.ema_momentum > 0:
            model.optimizer.finalize_variable_values(model.trainable_variables)  # export the EMA weights

        final_metrics = dict(zip(["loss", "top1", "top5"], model.evaluate(eval_data, verbose=0)))
    export = build_model(config, dataset.num_classes)
    for trained, exported in zip(model.layers, export.layers):  # by layer: frozen layers reorder model.weights
        exported.set_weights(trained.get_weights())
    outputs = {}
    if chief:
        outputs = _save_final(export, os.path.join(config.model_dir, "final"))
    summary = {
        "config": config_dict,
        "dataset": {
            "name": dataset.name,
            "classes": dataset.num_classes,
            "train_examples": dataset.train_examples,
            "eval_examples": dataset.eval_examples,
        },
        "strategy": {
            "name": config.strategy,
            "replicas": replicas,
            "global_batch": config.batch_size,
            "per_replica_batch": config.batch_size // replicas,
            "synchronized_bn": multi_worker,
            "task": task,
        },
        "steps_per_epoch": steps_per_epoch,
        "history": history,
        "final_metrics": final_metrics,
        "wall_seconds": round(time.time() - started, 1),
        "images_per_second": _mean(
            [h["images_per_second"] for h in history[1:]] or [h["images_per_second"] for h in history]
        ),
        "weights_sha256": weights_fingerprint(export),
        "outputs": outputs,
    }
    summary_path = os.path.join(home, "summary.json")
    _write_json(summary_path, summary)
    summary["outputs"]["summary"] = summary_path
    return summary


def _mean(values):
    return round(sum(values) / len(values), 1) if values else None


def _save_final(model: keras.Model, directory: str) -> dict:
    """The EMA weights as .weights.h5 and the whole model as .keras, each written then renamed."""
    os.makedirs(directory, exist_ok=True)
    weights, whole = os.path.join(directory, "ema.weights.h5"), os.path.join(directory, "model.keras")
    staging = os.path.join(directory, f".tmp-{os.getpid()}")
    model.save_weights(staging + ".weights.h5")
    os.replace(staging + ".weights.h5", weights)
    model.save(staging + ".keras")
    os.replace(staging + ".keras", whole)
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
    tagged = registry.is_tag(weights)
    preprocessing = registry.published_preprocessing(_spec(config).name, weights) if tagged else IMAGENET_PREPROCESSING
    dataset = data_lib.load(config.dataset, config.data_dir, config.manual_dir, seed=config.seed)
    if tagged and dataset.num_classes != IMAGENET_CLASSES:
        raise TrainingError(
            f"`weights`={weights!r} classifies the {IMAGENET_CLASSES} ImageNet classes; `dataset`={dataset.name!r} "
            f"has {dataset.num_classes}. Evaluate a tag on imagenet2012, or pass the path of weights trained on "
            "this dataset."
        )
    if split == "train":
        dataset = dataclasses.replace(dataset, eval=dataset.train, eval_examples=dataset.train_examples)
    model = build_model(config, dataset.num_classes, weights if tagged else None)
    if not tagged:
        load_weights(model, weights)
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="top1"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"),
        ],
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
