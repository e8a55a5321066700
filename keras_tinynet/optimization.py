"""The recipe's optimizer: RMSprop, SGD or AdamW with decoupled weight decay (not on BN and biases), a warm-up
then exponential or cosine learning-rate schedule, and an EMA of the weights capped for short runs.
"""

from __future__ import annotations

import keras

from keras_tinynet.recipe import TrainConfig


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
