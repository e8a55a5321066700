"""The callbacks of a training run: its per-epoch record and checkpoints, and the validation of the trained
weights beside their EMA."""

from __future__ import annotations

import math
import time

import keras

from keras_tinynet.checkpoints import Checkpoints

# The EMA weights (the exported ones) scoring this far below the trained weights at the end of a run mean
# that the EMA has not caught up: the run says so.
EMA_LAG_WARNING = 0.02


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


class TrainedWeightsValidation(keras.callbacks.Callback):
    """Validates the trained weights too where validation uses their EMA (keras.callbacks.SwapEMAWeights), as
    timm's train.py validates both: `val_top1_no_ema` and `val_loss_no_ema` in the epoch's logs. An EMA lags
    the weights it averages, and its BN statistics are those of the trained weights: early in a short run it
    can score far below them (digits, epoch 2 of 4: 9% against 42%), and without this line that looks like a
    run that does not learn. Costs one more pass over the validation split each epoch."""

    def __init__(self, validation_data):
        super().__init__()
        self.validation_data = validation_data

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "val_top1" not in logs:
            return
        loss, top1, _ = self.model.evaluate(self.validation_data, verbose=0)
        logs["val_loss_no_ema"], logs["val_top1_no_ema"] = loss, top1


def ema_lag_line(history: list[dict]) -> str:
    """A line where the run's last epoch validated its EMA weights well below the trained weights, else ""."""
    last = history[-1] if history else {}
    ema, trained = last.get("val_top1"), last.get("val_top1_no_ema")
    if ema is None or trained is None or trained - ema <= EMA_LAG_WARNING:
        return ""
    return (
        f"The EMA of the weights (exported in final/) validates at {ema:.4f}, the trained weights at {trained:.4f}: "
        "the EMA has not caught up in this short run. Train longer (rerun with more --epochs resumes) or pass "
        "--ema_momentum 0."
    )
