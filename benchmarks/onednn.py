r"""Does `import keras_tinynet` make a user's own script faster? TensorFlow's oneDNN CPU kernels, measured.

  python benchmarks/onednn.py                 # ~8 min on 2 cores

A user's script imports keras_tinynet, builds a model and calls it. TensorFlow reads TF_ENABLE_ONEDNN_OPTS
once, at its import, so each setting runs in its own fresh process: "package default" (a plain
`import keras_tinynet` first, the variable unset: what users get), "off" (TF_ENABLE_ONEDNN_OPTS=0) and
"TensorFlow default" (TensorFlow imported before keras_tinynet, the variable unset: TensorFlow's own
choice for this CPU). The processes alternate for --rounds rounds; each times the models as built (in a
tf.function) and as `optimize_for_inference` rewrites them (in a tf.function; `compile_for_inference` runs
TFLite, which oneDNN does not touch), at batch 1 and 32, and reports whether TensorFlow said its oneDNN
custom operations are on. Writes onednn.json and onednn.md to --output_dir.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys

import bench_flags
from absl import app, flags

# Nothing of keras_tinynet is imported at this module's import: a setting's process imports its
# `import_first` before anything else (keras_tinynet's import sets TF_ENABLE_ONEDNN_OPTS).
SETTINGS = {
    "package default": {"import_first": "keras_tinynet", "variable": None},
    "off": {"import_first": "keras_tinynet", "variable": "0"},
    "TensorFlow default": {"import_first": "tensorflow", "variable": None},
}


def define_flags() -> None:
    flags.DEFINE_list("models", ["GhostNet100", "GhostNetB"], "keras_tinynet builders to time.")
    bench_flags.define_batch_sizes()
    bench_flags.define_rounds(2, "Alternate the settings' processes this many times.")
    bench_flags.define_seconds(3.0, "Time each measurement for about this long.")
    bench_flags.define_output_dir("onednn.json and onednn.md")
    flags.DEFINE_string("child", None, "(internal) run one setting's measurements in this process and print JSON.")


@dataclasses.dataclass(frozen=True)
class Config:
    """The flags, parsed once."""

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    rounds: int
    seconds: float
    output_dir: str
    child: str | None

    @classmethod
    def from_flags(cls, values=flags.FLAGS) -> Config:
        if values.child is not None:
            bench_flags.check_known("child", [values.child], SETTINGS)
        bench_flags.check_at_least_one({"rounds": values.rounds})
        batch_sizes = tuple(bench_flags.batch_sizes(values.batch_sizes))
        return cls(tuple(values.models), batch_sizes, values.rounds, values.seconds, values.output_dir, values.child)

    def child_arguments(self) -> list[str]:
        """The flags that a setting's process measures with."""
        return [
            f"--models={','.join(self.models)}",
            f"--batch_sizes={','.join(map(str, self.batch_sizes))}",
            f"--seconds={self.seconds}",
        ]


def fetched(function, images):
    return function(images).numpy()


def measure_in_this_process(import_first: str, config: Config) -> dict:
    """Times every model and batch size as built and optimized; run in a fresh process per setting."""
    import importlib

    importlib.import_module(import_first)
    import numpy as np
    import tensorflow as tf

    import keras_tinynet
    from keras_tinynet.latency import time_calls

    rng = np.random.default_rng(0)
    results = {}
    for name in config.models:
        model = getattr(keras_tinynet, name)()
        optimized_model = keras_tinynet.optimize_for_inference(model)
        as_built = tf.function(lambda x, model=model: model(x, training=False))
        optimized = tf.function(lambda x, model=optimized_model: model(x, training=False))
        for batch in config.batch_sizes:
            images = rng.uniform(0, 255, (batch, *model.input_shape[1:])).astype(np.float32)
            forms = {
                "as built": functools.partial(fetched, as_built, tf.constant(images)),
                "optimized": functools.partial(fetched, optimized, tf.constant(images)),
            }
            for form, call in forms.items():
                times = time_calls(call, config.seconds, 3, 2)
                results[f"{name} | {form} | {batch}"] = batch / float(np.median(times)) * 1e3
    return {"images_per_s": results, "variable_at_end": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def run_setting(setting: str, config: Config) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow logs "oneDNN custom operations are on" at INFO
    if SETTINGS[setting]["variable"] is not None:
        environment["TF_ENABLE_ONEDNN_OPTS"] = SETTINGS[setting]["variable"]
    command = [sys.executable, os.path.abspath(__file__), f"--child={setting}", *config.child_arguments()]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"setting {setting!r} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["onednn_on"] = "oneDNN custom operations are on" in done.stderr
    return result


def markdown(rows: dict, onednn_on: dict, context: dict) -> str:
    settings = list(SETTINGS)
    lines = [
        f"Measured {context['date']} on {context['machine']}; TensorFlow's own choice on this CPU: oneDNN "
        f"{'on' if onednn_on['TensorFlow default'] else 'off'}. Images/s, median of {context['rounds']} "
        f"alternating fresh processes per setting. Command: `{context['command']}`.",
        "",
        "| model | form | batch | "
        + " | ".join(f"{s} (oneDNN {'on' if onednn_on[s] else 'off'})" for s in settings)
        + " | package default / off |",
        "|---|---|---|" + "---|" * (len(settings) + 1),
    ]
    for key, by_setting in rows.items():
        model, form, batch = key.split(" | ")
        cells = " | ".join(f"{by_setting[s]:.1f}" for s in settings)
        lines.append(
            f"| {model} | {form} | {batch} | {cells} | {by_setting['package default'] / by_setting['off']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    bench_flags.check_no_arguments(argv)
    config = Config.from_flags(flags.FLAGS)
    if config.child is not None:
        print(json.dumps(measure_in_this_process(SETTINGS[config.child]["import_first"], config)))
        return
    import numpy as np
    from _common import command_line, machine_line, utc_now

    from keras_tinynet.files import write_atomically

    samples: dict[str, dict[str, list[float]]] = {}
    onednn_on = {}
    for round_index in range(config.rounds):
        for setting in SETTINGS:
            result = run_setting(setting, config)
            onednn_on[setting] = result["onednn_on"]
            for key, rate in result["images_per_s"].items():
                samples.setdefault(key, {}).setdefault(setting, []).append(rate)
            print(f"round {round_index + 1}/{config.rounds}: {setting} done", flush=True)
    rows = {key: {s: float(np.median(v)) for s, v in by_setting.items()} for key, by_setting in samples.items()}
    context = {"date": utc_now(), "machine": machine_line(), "rounds": config.rounds, "command": command_line()}
    os.makedirs(config.output_dir, exist_ok=True)
    write_atomically(
        os.path.join(config.output_dir, "onednn.json"),
        json.dumps({"context": context, "onednn_on": onednn_on, "images_per_s": rows, "samples": samples}, indent=1),
    )
    table = markdown(rows, onednn_on, context)
    write_atomically(os.path.join(config.output_dir, "onednn.md"), table)
    print("\n" + table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
