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

import datetime
import json
import os
import platform
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, time_calls  # noqa: E402

from keras_tinynet.files import write_atomically  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = {"ghostnet_b": "keras_tinynet.GhostNetB", "efficientnet_b0": "keras.applications.EfficientNetB0"}
CONFIGS = {
    "cpu": {"device": "/CPU:0", "precision": "float32", "jit_compile": False},
    "gpu": {"device": "/GPU:0", "precision": "mixed_float16", "jit_compile": True},
}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(MODELS), f"Models: {', '.join(MODELS)}.")
flags.DEFINE_list("configs", list(CONFIGS), f"Configurations: {', '.join(CONFIGS)} (gpu only where one is visible).")
flags.DEFINE_integer("batch_size", 32, "Images per step.")
flags.DEFINE_integer("steps", 10, "Timed steps per model and configuration.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing, XLA compilation).")
flags.DEFINE_integer("threads", os.cpu_count() or 1, "TensorFlow intra/inter-op threads.")
flags.DEFINE_bool("onednn", True, "TF_ENABLE_ONEDNN_OPTS (oneDNN CPU kernels).")
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    "Where train_step.json and train_step.md go.",
)


def build(name: str, classes: int = 1000):
    import keras

    import keras_tinynet

    if name == "ghostnet_b":
        model = keras_tinynet.GhostNetB(classes=classes)
    else:
        model = keras.applications.EfficientNetB0(weights=None, classes=classes)
    return model, model.input_shape[1]


def step_times(name: str, config: dict) -> tuple[list[float], int]:
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
            images = rng.integers(0, 256, (FLAGS.batch_size, size, size, 3)).astype(np.float32)
            labels = rng.integers(0, 1000, (FLAGS.batch_size,))
            data = tf.data.Dataset.from_tensors((images, labels)).repeat()
            iterator = iter(data)

            def step():
                model.train_on_batch(*next(iterator))

            times = time_calls(step, 0.0, FLAGS.steps, FLAGS.warmup_steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return times, size


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    for name, values, allowed in (("models", FLAGS.models, MODELS), ("configs", FLAGS.configs, CONFIGS)):
        if unknown := [v for v in values if v not in allowed]:
            raise app.UsageError(f"--{name}: unknown {unknown}; allowed: {', '.join(allowed)}.")
    for name in ("batch_size", "steps", "threads"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(f"--{name} must be at least 1; received {getattr(FLAGS, name)}.")
    logging.set_verbosity(logging.WARNING)
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if FLAGS.onednn else "0"
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    gpus = tf.config.list_physical_devices("GPU")
    results, notes = [], []
    for config_name in FLAGS.configs:
        config = CONFIGS[config_name]
        if config_name == "gpu" and not gpus:
            notes.append("gpu: skipped, no GPU visible to TensorFlow on this machine.")
            print(notes[-1], flush=True)
            continue
        for name in FLAGS.models:
            times, size = step_times(name, config)
            median = float(np.median(times))
            entry = {
                "model": name,
                "config": config_name,
                **config,
                "batch_size": FLAGS.batch_size,
                "image_size": size,
                "median_ms": median,
                "p90_ms": float(np.percentile(times, 90)),
                "steps": len(times),
                "images_per_s": FLAGS.batch_size / median * 1e3,
            }
            results.append(entry)
            print(f"{name:16s} {config_name}: {median:8.1f} ms/step, {entry['images_per_s']:7.1f} img/s", flush=True)
    ratios = []
    for config_name in FLAGS.configs:
        by_model = {r["model"]: r for r in results if r["config"] == config_name}
        if {"ghostnet_b", "efficientnet_b0"} <= set(by_model):
            ratios.append(
                {
                    "config": config_name,
                    "ghostnet_b_over_efficientnet_b0": by_model["ghostnet_b"]["images_per_s"]
                    / by_model["efficientnet_b0"]["images_per_s"],
                }
            )
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "gpus": [gpu.name for gpu in gpus],
        "threads": FLAGS.threads,
        "onednn": FLAGS.onednn,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__},
        "command": "python benchmarks/train_step.py " + " ".join(sys.argv[1:]),
    }
    lines = [
        f"Measured {context['date']} on {context['machine']}, batch {FLAGS.batch_size}, {FLAGS.threads} threads, "
        f"oneDNN {'on' if FLAGS.onednn else 'off'}. Command: `{context['command']}`.",
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
    table = "\n".join(lines) + "\n"
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    write_atomically(
        os.path.join(FLAGS.output_dir, "train_step.json"),
        json.dumps({"context": context, "results": results, "ratios": ratios, "notes": notes}, indent=1),
    )
    write_atomically(os.path.join(FLAGS.output_dir, "train_step.md"), table)
    print("\n" + table)


if __name__ == "__main__":
    app.run(main)
