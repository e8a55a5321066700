"""Resumable epoch checkpoints of a training run: staged, verified against a recorded sha256, walked back
past a corrupt one, and never fewer than two verified on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import keras

from keras_tinynet import _compat
from keras_tinynet.files import file_hash, staged_directory
from keras_tinynet.recipe import TrainingError


class CheckpointError(Exception):
    """A checkpoint that cannot be resumed from; the message says what is wrong with it."""


class Checkpoints:
    """One directory per finished epoch (`epoch-0007/`: weights with optimizer state, and `state.json` with
    the history, the config and the weights' sha256), staged and renamed into place, then read back and
    verified. The newest `KEEP` verified ones are kept: an older one is deleted only after a newer one is
    verified, so a kill, a full disk or a corrupted file at any moment leaves a checkpoint to resume from."""

    KEEP = 2
    WEIGHTS, STATE = "state.weights.h5", "state.json"

    def __init__(self, model_dir: str):
        self.root = os.path.join(model_dir, "checkpoints")

    def newest_first(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        epochs = sorted((d for d in os.listdir(self.root) if d.startswith("epoch-")), reverse=True)
        return [os.path.join(self.root, d) for d in epochs]

    def verify(self, path: str) -> dict:
        """The checkpoint's state, if its state file parses and its weights have the recorded sha256."""
        try:
            with open(os.path.join(path, self.STATE)) as f:
                state = json.load(f)
            recorded = state["weights_sha256"], state["epoch"], state["history"], state["config"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"unreadable {self.STATE} ({type(error).__name__}: {error})") from None
        try:
            actual = file_hash(os.path.join(path, self.WEIGHTS))
        except OSError as error:
            raise CheckpointError(f"unreadable {self.WEIGHTS} ({error.strerror})") from None
        if actual != recorded[0]:
            raise CheckpointError(f"{self.WEIGHTS} has sha256 {actual[:12]}..., not the recorded {recorded[0][:12]}...")
        return state

    def newest_verified(self) -> tuple[str, dict] | None:
        """The newest checkpoint that verifies, with its state; prints which newer ones it skipped and why."""
        for path in self.newest_first():
            try:
                return path, self.verify(path)
            except CheckpointError as error:
                print(f"Skipping checkpoint {path}: {error}.")
        return None

    def save(self, model: keras.Model, epoch: int, state: dict) -> None:
        weights = _compat.weights_h5_bytes(model)
        state = {**state, "weights_sha256": hashlib.sha256(weights).hexdigest()}
        path = os.path.join(self.root, f"epoch-{epoch:04d}")
        with staged_directory(path, replace=True) as staging:
            with open(os.path.join(staging, self.WEIGHTS), "wb") as stream:
                stream.write(weights)
            with open(os.path.join(staging, self.STATE), "w") as stream:
                json.dump(state, stream, indent=2, default=str)
            try:
                self.verify(staging)  # what the disk holds, before anything older is deleted
            except CheckpointError as error:
                raise TrainingError(
                    f"Checkpoint {path} did not read back as written ({error}); check the disk of {self.root!r}."
                ) from None
        verified = 0
        for older in self.newest_first():
            if verified < self.KEEP:
                try:
                    self.verify(older)
                    verified += 1
                    continue
                except CheckpointError:
                    pass
            shutil.rmtree(older, ignore_errors=True)
