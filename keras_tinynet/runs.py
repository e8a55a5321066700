"""A training run's record, `summary.json` in its directory: training writes it, and evaluate, export and
publish-hub read it back (`--run DIR`, or the run that holds `--weights`), so that none of the run's flags
(model, input size, class names, dataset) has to be repeated. No TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os

RUN_FILE = "summary.json"


def summary(config, dataset, strategy: dict, network: dict, preprocessing: dict, **fields) -> dict:
    """The JSON record of a run: its resolved config, the dataset with its class names, the network it built (a
    NetworkSpec dict, so that a spec file that moved or a twist curve does not matter) and the eval transform,
    then `fields` (history, metrics, outputs, times)."""
    return {
        "config": dataclasses.asdict(config),
        "dataset": {
            "name": dataset.name,
            "classes": dataset.num_classes,
            "class_names": list(dataset.class_names),
            "train_examples": dataset.train_examples,
            "eval_examples": dataset.eval_examples,
        },
        "network": network,
        "preprocessing": preprocessing,
        "strategy": strategy,
        **fields,
    }


@dataclasses.dataclass(frozen=True)
class Run:
    """What a finished run recorded about the weights it wrote."""

    directory: str
    config: dict
    network: dict | None  # None for runs recorded before it was kept
    class_names: tuple[str, ...] | None

    @property
    def summary_path(self) -> str:
        return os.path.join(self.directory, RUN_FILE)


def load_run(directory: str, parameter: str = "run") -> Run:
    """The run recorded in `directory`; a ValueError naming `parameter` where there is none."""
    path = os.path.join(directory, RUN_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"`{parameter}`={directory!r} is not a finished training run (no {RUN_FILE}); pass the directory "
            "a `keras-tinynet train` run wrote (its --output_dir)."
        )
    try:
        with open(path) as handle:
            recorded = json.load(handle)
        config = recorded["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"`{parameter}`={directory!r}: {path} is not a readable run summary ({error}).") from None
    names = recorded.get("dataset", {}).get("class_names")
    return Run(directory, config, recorded.get("network"), tuple(names) if names else None)


def run_holding(weights: str | None) -> str | None:
    """The run directory that holds a weights file: beside its summary.json, in its final/ folder or in one of
    its checkpoints/epoch-N/ folders; None elsewhere and for a registered tag."""
    if not weights or not os.path.isfile(weights):
        return None
    folder = os.path.dirname(os.path.abspath(weights))
    parent = os.path.dirname(folder)
    candidates = [folder]
    if os.path.basename(folder) == "final":
        candidates.append(parent)
    if os.path.basename(parent) == "checkpoints":
        candidates.append(os.path.dirname(parent))
    return next((c for c in candidates if os.path.isfile(os.path.join(c, RUN_FILE))), None)
