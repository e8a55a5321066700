r"""Training throughput of a `fit` step: keras_tinynet GhostNet-B against keras.applications EfficientNetB0.

  python benchmarks/train_step.py                 # CPU float32; plus GPU mixed precision + XLA where a GPU is
  python benchmarks/train_step.py --batch_size 64 --steps 20 --configs cpu,gpu

In one process, each model (at its own default resolution, 1000 classes, SGD with momentum, sparse
categorical cross-entropy) trains on the same random images for --warmup_steps + --steps steps; the
median step time of the last --steps gives images/s. Configurations: `cpu` (float32, no XLA: XLA is
~10x slower on CPU for these depthwise-heavy nets) and `gpu` (mixed_float16 and jit_compile=True; skipped
with a note where no GPU is visible). Writes train_step.json and train_step.md to --output_dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform

import bench_flags
from _common import command_line, machine_line, utc_now
from absl import app, flags, logging

from keras_tinynet.files import write_atomically
from keras_tinynet.latency import time_calls

MODELS = {"ghostnet_b": "keras_tinynet.GhostNetB", "efficientnet_b0": "keras.applications.EfficientNetB0"}
CONFIGS = {
    "cpu": {"device": "/CPU:0", "precision": "float32", "jit_compile": False},
    "gpu": {"device": "/GPU:0", "precision": "mixed_float16", "jit_compile": True},
}


def define_flags() -> None:
    flags.DEFINE_list("models", list(MODELS), f"Models: {', '.join(MODELS)}.")
    flags.DEFINE_list(
        "configs", list(CONFIGS), f"Configurations: {', '.join(CONFIGS)} (gpu only where one is visible)."
    )
    flags.DEFINE_integer("batch_size", 32, "Images per step.")
    flags.DEFINE_integer("steps", 10, "Timed steps per model and configuration.")
    flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing, XLA compilation).")
    bench_flags.define_threads("TensorFlow intra/inter-op threads.")
    bench_flags.define_onednn("TF_ENABLE_ONEDNN_OPTS (oneDNN CPU kernels).")
    bench_flags.define_output_dir("train_step.json and train_step.md")


@dataclasses.dataclass(frozen=True)
class Config:
    """The flags, parsed once and checked."""

    models: tuple[str, ...]
    configs: tuple[str, ...]
    batch_size: int
    steps: int
    warmup_steps: int
    threads: int
    onednn: bool
    output_dir: str

    @classmethod
    def from_flags(cls, values=flags.FLAGS) -> Config:
        bench_flags.check_known("models", values.models, MODELS)
        bench_flags.check_known("configs", values.configs, CONFIGS)
        bench_flags.check_at_least_one({name: values[name].value for name in ("batch_size", "steps", "threads")})
        return cls(
            tuple(values.models),
            tuple(values.configs),
            values.batch_size,
            values.steps,
            values.warmup_steps,
            values.threads,
            values.onednn,
            values.output_dir,
        )


def build(name: str, classes: int = 1000):
    import keras

    import keras_tinynet

    if name == "ghostnet_b":
        model = keras_tinynet.GhostNetB(classes=classes)
    else:
        model = keras.applications.EfficientNetB0(weights=None, classes=classes)
    return model, model.input_shape[1]


def step_times(name: str, config: dict, run: Config) -> tuple[list[float], int]:
    """Milliseconds of each timed `fit` step of `name` under `config`, and the image size."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(config["precision"])
    try:
        with tf.device(config["device"]):
            model, size = build(name)
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss="sparse_categorical_crossentropy",
                jit_compile=config["jit_compile"],
            )
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (run.batch_size, size, size, 3)).astype(np.float32)
            labels = rng.integers(0, 1000, (run.batch_size,))
            data = tf.data.Dataset.from_tensors((images, labels)).repeat()
            iterator = iter(data)

            def step():
                model.train_on_batch(*next(iterator))

            times = time_calls(step, 0.0, run.steps, run.warmup_steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return times, size


def measure_all(run: Config, gpus: list) -> tuple[list[dict], list[str]]:
    """A row per model and configuration (the gpu configuration skipped, with a note, where no GPU is)."""
    import numpy as np

    results, notes = [], []
    for config_name in run.configs:
        config = CONFIGS[config_name]
        if config_name == "gpu" and not gpus:
            notes.append("gpu: skipped, no GPU visible to TensorFlow on this machine.")
            print(notes[-1], flush=True)
            continue
        for name in run.models:
            times, size = step_times(name, config, run)
            median = float(np.median(times))
            entry = {
                "model": name,
                "config": config_name,
                **config,
                "batch_size": run.batch_size,
                "image_size": size,
                "median_ms": median,
                "p90_ms": float(np.percentile(times, 90)),
                "steps": len(times),
                "images_per_s": run.batch_size / median * 1e3,
            }
            results.append(entry)
            print(f"{name:16s} {config_name}: {median:8.1f} ms/step, {entry['images_per_s']:7.1f} img/s", flush=True)
    return results, notes


def ratios_of(results: list[dict], configs) -> list[dict]:
    """GhostNet-B's images/s over EfficientNetB0's, per configuration where both ran."""
    ratios = []
    for config_name in configs:
        by_model = {r["model"]: r for r in results if r["config"] == config_name}
        if {"ghostnet_b", "efficientnet_b0"} <= set(by_model):
            ratios.append(
                {
                    "config": config_name,
                    "ghostnet_b_over_efficientnet_b0": by_model["ghostnet_b"]["images_per_s"]
                    / by_model["efficientnet_b0"]["images_per_s"],
                }
            )
    return ratios


def markdown(results: list[dict], ratios: list[dict], notes: list[str], context: dict, run: Config) -> str:
    lines = [
        f"Measured {context['date']} on {context['machine']}, batch {run.batch_size}, {run.threads} threads, "
        f"oneDNN {'on' if run.onednn else 'off'}. Command: `{context['command']}`.",
        "",
        "| model | config | precision | XLA | image size | ms/step (median / p90) | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['config']} | {r['precision']} | {'yes' if r['jit_compile'] else 'no'} | "
            f"{r['image_size']} | {r['median_ms']:.1f} / {r['p90_ms']:.1f} | {r['images_per_s']:.1f} |"
        )
    lines += (
        [""]
        + [
            f"GhostNet-B / EfficientNetB0 training images/s ({r['config']}): "
            f"{r['ghostnet_b_over_efficientnet_b0']:.2f}x"
            for r in ratios
        ]
        + notes
    )
    return "\n".join(lines) + "\n"


def main(argv):
    bench_flags.check_no_arguments(argv)
    run = Config.from_flags(flags.FLAGS)
    logging.set_verbosity(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if run.onednn else "0"
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(run.threads)
    tf.config.threading.set_inter_op_parallelism_threads(run.threads)
    gpus = tf.config.list_physical_devices("GPU")
    results, notes = measure_all(run, gpus)
    ratios = ratios_of(results, run.configs)
    context = {
        "date": utc_now(),
        "machine": machine_line(),
        "gpus": [gpu.name for gpu in gpus],
        "threads": run.threads,
        "onednn": run.onednn,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__},
        "command": command_line(),
    }
    table = markdown(results, ratios, notes, context, run)
    os.makedirs(run.output_dir, exist_ok=True)
    write_atomically(
        os.path.join(run.output_dir, "train_step.json"),
        json.dumps({"context": context, "results": results, "ratios": ratios, "notes": notes}, indent=1),
    )
    write_atomically(os.path.join(run.output_dir, "train_step.md"), table)
    print("\n" + table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
