"""A training run as data: every flag of `TrainConfig`, the published recipes that fill its defaults, and
what a resumed run may change. No TensorFlow: the command line builds its flags from these fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from keras_tinynet.presets import PRESETS
from keras_tinynet.spec import MIN_SIZE
from keras_tinynet.spec_resolver import resolve_activation, resolve_spec

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

    model: str = _option("ghostnet_d", "The preset (see `keras-tinynet models`).")
    flops: float | None = _option(
        None, "Train the network the tiny formula builds for this FLOPs budget (e.g. 200M) instead of --model."
    )
    spec: str | None = _option(None, "Train the NetworkSpec of this JSON file (NetworkSpec.to_dict()), not --model.")
    curves: str | None = _option(
        None, "With --flops: a `keras-tinynet twist` curves file whose fitted r(c), d(c) replace the published ones."
    )
    activation: str | None = _option(
        None, "Default: the model's own (GhostNet relu, TinyNet swish); hard_swish for the paper's '+ HSwish' rows."
    )
    image_size: int | None = _option(None, "Input size (default: the model's; 48 for the embedded digits).")
    dataset: str = _option("digits", "'digits' (embedded), 'folder:/path' (ImageFolder layout) or a tfds name.")
    data_dir: str | None = _option(None, "tensorflow-datasets data directory.")
    manual_dir: str | None = _option(None, "Directory of manually downloaded archives (imagenet2012).")
    epochs: int | None = _option(None, "Epochs (recipe: 450; digits: 12).")
    batch_size: int | None = _option(
        None,
        "Global batch size, split between the replicas (recipe: 1024, halved until an epoch has at least "
        "10 steps, e.g. 32 for 320 images; digits: 64).",
    )
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
# A dataset of at most SMALL_DATASET_IMAGES training images (a user's own folder, not ImageNet) trains from
# scratch for SMALL_DATASET_EPOCHS: the paper's 450 epochs would take hours where minutes learn it.
SMALL_DATASET_IMAGES = 50_000
SMALL_DATASET_EPOCHS = 30
WARMUP_SHARE = 0.1  # a warm-up the recipe chooses takes at most this share of the run's epochs
# What fit_to_data fills once the dataset is open, where the run left it to the recipe (datasets but digits).
DATA_FITTED = ("batch_size", "epochs", "warmup_epochs", "image_size")
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
    spec = spec_of(config)
    if config.image_size is None and "image_size" not in recipe and config.weights is not None:
        recipe["image_size"] = spec.default_size  # pretrained weights: the size they learned at
    if config.dataset != "digits":  # left None: fit_to_data picks them once the dataset is open
        for name in ("batch_size",) if config.weights is not None else DATA_FITTED:
            recipe.pop(name, None)
    filled = {k: v for k, v in recipe.items() if getattr(config, k) is None}
    epochs = filled.get("epochs", config.epochs)
    if "warmup_epochs" in filled and isinstance(epochs, int) and epochs > 0:  # a bad --epochs is refused below
        filled["warmup_epochs"] = _warmup(filled["warmup_epochs"], epochs)
    config = dataclasses.replace(config, **filled, activation=resolve_activation(spec, config.activation))
    if config.model_dir is None:
        family = config.model.split("_")[0]
        model = f"{family}_{config.flops / 1e6:.0f}m" if config.flops else config.model
        config = dataclasses.replace(config, model_dir=os.path.join("runs", f"{model}-{_slug(config.dataset)}"))
    for name, allowed in (("strategy", STRATEGIES), ("schedule", SCHEDULES)):
        if getattr(config, name) not in allowed:
            raise TrainingError(f"`{name}` must be one of {allowed}; received {name}={getattr(config, name)!r}.")
    for name in ("epochs", "batch_size", "image_size"):
        value = getattr(config, name)
        if (value is not None or name not in DATA_FITTED) and (not isinstance(value, int) or value < 1):
            raise TrainingError(f"`{name}` must be a positive integer; received {name}={value!r}.")
    if config.image_size is not None and config.image_size < MIN_SIZE:
        raise TrainingError(f"`image_size` must be at least {MIN_SIZE}; received image_size={config.image_size}.")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise TrainingError(f"`steps_per_epoch` must be a positive integer; received {config.steps_per_epoch}.")
    for name in ("learning_rate", "warmup_epochs", "decay_epochs", "weight_decay"):
        value = getattr(config, name)
        if value is None and name in DATA_FITTED:
            continue
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise TrainingError(f"`{name}` must be a non-negative number; received {name}={value!r}.")
    if not 0 < config.decay_rate <= 1:
        raise TrainingError(f"`decay_rate` must be in (0, 1] (1: no decay); received {config.decay_rate}.")
    if not 0 <= config.ema_momentum < 1:
        raise TrainingError(f"`ema_momentum` must be in [0, 1) (0 disables EMA); received {config.ema_momentum}.")
    if not 0 <= config.label_smoothing < 1:
        raise TrainingError(f"`label_smoothing` must be in [0, 1); received {config.label_smoothing}.")
    return config


MIN_STEPS_PER_EPOCH = 10


def fit_to_data(config: TrainConfig, train_examples: int, typical_size: int | None = None) -> tuple[TrainConfig, str]:
    """Fills what a run left to the recipe and depends on its data (DATA_FITTED), and says what it chose:

    - the batch: the recipe's 1024, halved until an epoch has at least MIN_STEPS_PER_EPOCH steps (a folder of 320
      images trains at 32); the peak learning rate scales with it (`learning_rate` is per 1024 images);
    - the epochs: SMALL_DATASET_EPOCHS up to SMALL_DATASET_IMAGES training images, else the paper's 450;
    - the warm-up: the recipe's, at most WARMUP_SHARE of the epochs (a 3-epoch run is not all warm-up);
    - the input size: the model's, or the images' `typical_size` (rounded down to a multiple of 8) where
      smaller: upscaling 64-pixel photos to 145 costs 5x the compute and adds no detail.

    Returns the config and a line naming what was chosen ("" where the run chose everything itself)."""
    chosen = []
    if config.batch_size is None:
        batch = PAPER_RECIPE["batch_size"]
        while batch > 1 and train_examples // batch < MIN_STEPS_PER_EPOCH:
            batch //= 2
        config = dataclasses.replace(config, batch_size=batch)
        chosen.append(f"batch {batch}")
    if config.epochs is None:
        small = train_examples <= SMALL_DATASET_IMAGES
        config = dataclasses.replace(config, epochs=SMALL_DATASET_EPOCHS if small else PAPER_RECIPE["epochs"])
        chosen.append(f"{config.epochs} epochs ({'a small' if small else 'a large'} dataset: {train_examples} images)")
    if config.warmup_epochs is None:
        warmup = _warmup(PAPER_RECIPE["warmup_epochs"], config.epochs)
        config = dataclasses.replace(config, warmup_epochs=warmup)
        chosen.append(f"warm-up {warmup:g} epochs")
    if config.image_size is None:
        size = model_size = spec_of(config).default_size
        if typical_size is not None and typical_size < model_size:
            size = max(MIN_SIZE, typical_size // 8 * 8)
        config = dataclasses.replace(config, image_size=size)
        chosen.append(f"{size} px" + (" (the images' typical size)" if size != model_size else ""))
    return config, (f"The recipe chose: {', '.join(chosen)}." if chosen else "")


def _warmup(recipe_epochs: float, epochs: int) -> float:
    return min(recipe_epochs, round(WARMUP_SHARE * epochs, 3))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.replace("folder:", "")).strip("_")


def spec_of(config: TrainConfig):
    """The NetworkSpec the run trains: a `spec` file, the tiny formula on the preset's family for `flops` (with
    the `curves` of a twist search if given), or the preset."""
    if config.spec is not None and config.flops is not None:
        raise TrainingError(f"Pass one of `spec` and `flops`; received spec={config.spec!r}, flops={config.flops!r}.")
    if config.curves is not None and config.flops is None:
        raise TrainingError(f"`curves`={config.curves!r} applies to a `flops` budget; pass flops too.")
    if config.spec is not None:
        return resolve_spec(spec=config.spec)
    if config.flops is not None:
        return resolve_spec(flops=config.flops, base=PRESETS[config.model].architecture.name, curves=config.curves)
    return resolve_spec(config.model)


# The TrainConfig fields a resumed run may change; every other field (new ones too) must match the run's.
# epochs: extends the run (a cosine schedule and the EMA cap then stretch to the new end); model_dir,
# data_dir and manual_dir: where the same run and data lie; jit_compile: XLA compiles the same math.
# The strategy is compared: it decides the per-replica batch of the BN statistics.
MAY_CHANGE_ON_RESUME = ("epochs", "model_dir", "data_dir", "manual_dir", "jit_compile")


def resume_differences(recorded: dict, config: TrainConfig) -> list[str]:
    """`name: was X, now Y` for each field outside MAY_CHANGE_ON_RESUME that differs from the recorded run.

    A field the recorded run predates counts as its default: that is what the run trained with."""
    differences = []
    for field in dataclasses.fields(TrainConfig):
        if field.name in MAY_CHANGE_ON_RESUME:
            continue
        now = json.loads(json.dumps(getattr(config, field.name)))  # tuples as the JSON lists recorded
        was = recorded.get(field.name, field.default)
        if was != now:
            differences.append(f"{field.name}: was {was!r}, now {now!r}")
    return differences
