"""What the inference benchmark can time: every implementation of each network with the runtimes it runs
(and runs by default), the run a configuration selects, and its estimated time. Plain data, no TensorFlow."""

from __future__ import annotations

import dataclasses
import functools

from keras_tinynet import latency
from keras_tinynet.presets import PRESETS


@dataclasses.dataclass(frozen=True)
class Entry:
    """One implementation of a network, and the runtimes it can run (and runs by default)."""

    model: str
    network: str
    implementation: str
    runtimes: tuple[str, ...]
    default_runtimes: tuple[str, ...]


OUR_RUNTIMES = latency.RUNTIMES
APPLICATION_RUNTIMES = ("keras", "keras_folded", "keras_xla", "tflite", "onnxruntime", "openvino")
TIMM_RUNTIMES = ("torch", "torch_tuned", "torch_compile", "onnxruntime", "openvino")
KIMM_RUNTIMES = ("keras", "tflite", "onnxruntime")  # onnxruntime: recorded as not possible (preparation.kimm)
KCAM_RUNTIMES = ("tf_keras", "tflite")
# Every runtime by default for these (the targets and the export comparison read them); fewer for the rest.
ALL_RUNTIMES_BY_DEFAULT = ("ghostnet_100", "ghostnet_b", "ghostnet_d", "efficientnet_b0", "mobilenet_v3_small")
FEWER_RUNTIMES = {
    "keras_tinynet": ("keras", "keras_folded", "tflite", "onnxruntime", "openvino", "optimized", "compiled"),
    "tinynet": ("keras", "tflite", "onnxruntime", "openvino"),
    "keras.applications": ("keras", "keras_folded", "tflite", "onnxruntime", "openvino"),
    "timm": ("torch_tuned", "onnxruntime"),
}
# The other GhostNet widths are selectable (--models) but not in the default run, for its time.
NOT_BY_DEFAULT = ("ghostnet_050", "ghostnet_130", "ghostnet_150")
KERAS_APPLICATIONS = {
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnet_b0": "EfficientNetB0",
}
# Networks timed in the same interleaved rounds as another's (the targets compare them); the rest by network.
MEASURED_WITH = {"efficientnet_b0": "ghostnet_b", "mobilenet_v3_small": "ghostnet_d"}
# Rough preparation costs on the 2-core reference machine, for the up-front estimate (seconds).
# keras_xla: its compile and its slow calls (10-15x the others' on the CPU).
PREPARATION_SECONDS = {
    "model": 5,
    "tflite": 12,
    "onnx": 15,
    "saved_model": 20,
    "keras_xla": 30,
    "torch_compile": 100,
    "kcam": 25,
}


def default_models() -> list[str]:
    return [name for name in PRESETS if name not in NOT_BY_DEFAULT]


def default_runtimes(model: str, family: str, runtimes: tuple[str, ...]) -> tuple[str, ...]:
    return runtimes if model in ALL_RUNTIMES_BY_DEFAULT else FEWER_RUNTIMES[family]


@functools.cache
def catalogue() -> dict[str, Entry]:
    """Every selectable implementation: ours from PRESETS, then what --compare names."""
    entries = {}
    for name, preset in PRESETS.items():
        family = "tinynet" if preset.architecture.family == "tinynet" else "keras_tinynet"
        entries[name] = Entry(name, name, "keras_tinynet", OUR_RUNTIMES, default_runtimes(name, family, OUR_RUNTIMES))
    for name in KERAS_APPLICATIONS:
        plan = default_runtimes(name, "keras.applications", APPLICATION_RUNTIMES)
        entries[name] = Entry(name, name, "keras.applications", APPLICATION_RUNTIMES, plan)
    for name in default_models():
        if PRESETS[name].timm_model:
            plan = TIMM_RUNTIMES if name == "ghostnet_100" else FEWER_RUNTIMES["timm"]
            entries[f"timm_{name}"] = Entry(f"timm_{name}", name, "timm", TIMM_RUNTIMES, plan)
    entries["kimm_ghostnet_100"] = Entry("kimm_ghostnet_100", "ghostnet_100", "kimm", KIMM_RUNTIMES, KIMM_RUNTIMES)
    entries["kcam_ghostnet_100"] = Entry(
        "kcam_ghostnet_100", "ghostnet_100", "keras_cv_attention_models", KCAM_RUNTIMES, KCAM_RUNTIMES
    )
    return entries


def ours() -> list[str]:
    return [name for name, entry in catalogue().items() if entry.implementation == "keras_tinynet"]


def compared() -> list[str]:
    return [name for name, entry in catalogue().items() if entry.implementation != "keras_tinynet"]


def all_runtimes() -> list[str]:
    return list(dict.fromkeys(runtime for entry in catalogue().values() for runtime in entry.runtimes))


def plan(models, compare, runtimes, runtimes_given: bool) -> list[tuple[Entry, tuple[str, ...]]]:
    """(entry, runtimes) of the run; timm first, so that its process heap is as a user's PyTorch has it.
    Each entry runs its default runtimes among `runtimes`, or all it can where `runtimes_given`."""
    entries = catalogue()
    chosen = [entries[name] for name in compare if entries[name].implementation == "timm"]
    chosen += [entries[name] for name in models]
    chosen += [entries[name] for name in compare if entries[name].implementation != "timm"]
    selected = []
    for entry in chosen:
        candidates = entry.runtimes if runtimes_given else entry.default_runtimes
        kept = tuple(runtime for runtime in candidates if runtime in runtimes)
        if kept:
            selected.append((entry, kept))
    return selected


def estimate_seconds(selected, batches: list[int], seconds: float) -> dict:
    """The run's time, roughly: preparation (builds, exports, compiles) and timing (`seconds` each)."""
    cost = PREPARATION_SECONDS
    preparation = 0.0
    for entry, runtimes in selected:
        preparation += cost["kcam"] if entry.implementation == "keras_cv_attention_models" else cost["model"]
        preparation += cost["tflite"] * len(batches) * ("tflite" in runtimes)
        preparation += cost["onnx"] * bool({"onnxruntime", "openvino"} & set(runtimes))
        preparation += cost["saved_model"] * ("saved_model" in runtimes)
        for runtime in ("keras_xla", "torch_compile"):  # per batch size
            preparation += cost[runtime] * len(batches) * (runtime in runtimes)
    measurements = sum(len(runtimes) for _, runtimes in selected) * len(batches)
    timing = measurements * seconds * 1.25  # warmups, and runs that outlast --seconds
    return {"measurements": measurements, "preparation_s": preparation, "timing_s": timing}


def measurement_groups(selected) -> list[list[tuple[Entry, tuple[str, ...]]]]:
    """The run's entries in groups, each prepared, timed in interleaved rounds and released before the next:
    held all at once, the default run's interpreters, sessions and batch-32 buffers filled 23 GB and stalled
    the machine. A group is a network with every implementation of it (and MEASURED_WITH's partners), so
    each comparison the tables make is timed side by side. Every entry timed with PyTorch's default malloc
    (`torch`) joins the first group, timed before any other (see `measuring.measure`)."""
    groups: dict[str, list] = {}
    for entry, runtimes in selected:
        key = "torch" if "torch" in runtimes else MEASURED_WITH.get(entry.network, entry.network)
        groups.setdefault(key, []).append((entry, runtimes))
    if "torch" in groups:  # the rest of the first timm network's group joins it
        first = groups.pop("torch")
        networks = {entry.network for entry, _ in first}
        for key in [key for key in groups if key in networks]:
            first += groups.pop(key)
        return [first, *groups.values()]
    return list(groups.values())
