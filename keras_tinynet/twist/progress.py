"""Progress of a search while it runs: a line per finished trial with trials done/total and the time left.

A module of its own because it subclasses Ray Tune's callback (Ray is imported with it); Ray Tune pickles it
with the experiment, and a restored search resets it when the run starts.
"""

from __future__ import annotations

import time

from ray import tune


class Progress(tune.Callback):
    """`labels` maps each trial's key to how a line names it; `log` prints a line."""

    def __init__(self, total: int, labels: dict[str, str], log=print):
        self.total, self.labels, self.log = total, labels, log
        self.setup()

    def setup(self, **info):
        self.started, self.finished_here = time.time(), 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trials, trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, trial, "FAILED")

    def _line(self, trials, trial, status: str) -> None:
        self.finished_here += 1
        done = sum(t.status in ("TERMINATED", "ERROR") and t is not trial for t in trials) + 1
        elapsed = time.time() - self.started
        eta = elapsed / self.finished_here * max(0, self.total - done)
        top1 = (trial.last_result or {}).get("top1")
        self.log(
            f"[{min(done, self.total)}/{self.total}] {status}: {self.labels.get(trial.config.get('trial'), '?')}, "
            f"top-1 {'-' if top1 is None else f'{top1:.4f}'}; elapsed {duration(elapsed)}, ETA {duration(eta)}"
        )


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"
