"""Trains a GhostNet with the TinyNet recipe on tf.distribute.

With no flags: GhostNet-D on the embedded digits (scikit-learn's handwritten digits), all local devices,
to about 98% validation accuracy in a few minutes on 2 CPU cores. Rerunning the same command resumes.

  python scripts/train.py
  python scripts/train.py --model ghostnet_b --dataset imagenet2012 --data_dir ~/tfds --manual_dir ~/imagenet
  python scripts/train.py --flops 200e6 --dataset folder:/data/flowers --randaugment 2,9
"""

import dataclasses
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import run_cleanly  # noqa: E402

from keras_tinynet import training  # noqa: E402
from keras_tinynet.spec import ACTIVATIONS, PRESETS  # noqa: E402

F = flags.FLAGS
flags.DEFINE_enum("model", "ghostnet_d", list(PRESETS), "Variant to train (A..D or an original GhostNet).")
flags.DEFINE_float("flops", None, "Train a GhostNet of this FLOPs budget (tiny formula) instead of --model.")
flags.DEFINE_enum("activation", None, list(ACTIVATIONS), "Default: the model's own (GhostNet relu, TinyNet swish).")
flags.DEFINE_integer("image_size", None, "Input size (default: the variant's; 48 for the embedded digits).")
flags.DEFINE_string("dataset", "digits", "'digits' (embedded), 'folder:/path' (ImageFolder layout) or a tfds name.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.")
flags.DEFINE_string("manual_dir", None, "Directory of manually downloaded archives (imagenet2012).")
flags.DEFINE_integer("epochs", None, "Epochs (recipe: 450; digits: 12).")
flags.DEFINE_integer("batch_size", None, "Global batch size, split between the replicas (recipe: 1024; digits: 64).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: one pass over the training split).")
flags.DEFINE_enum("optimizer", "rmsprop", list(training.OPTIMIZERS), "rmsprop (the recipe), sgd or adamw.")
flags.DEFINE_float("learning_rate", None, "Peak learning rate per 1024 images, scaled linearly with --batch_size.")
flags.DEFINE_enum(
    "schedule", "exponential", list(training.SCHEDULES), "Warm-up then x0.97 every 2.4 epochs, or cosine."
)
flags.DEFINE_float("decay_rate", 0.97, "Exponential schedule: multiply the learning rate by this ...")
flags.DEFINE_float("decay_epochs", 2.4, "... every this many epochs.")
flags.DEFINE_float("warmup_epochs", None, "Linear warm-up from 1e-6 (recipe: 3; digits: 1).")
flags.DEFINE_float("weight_decay", None, "Decoupled weight decay, not on BN and biases (rmsprop: 1e-5).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing.")
flags.DEFINE_float("ema_momentum", 0.9999, "EMA of the weights used for evaluation and export (0: off).")
flags.DEFINE_float("dropout_rate", 0.2, "Dropout before the classifier.")
flags.DEFINE_float("drop_connect_rate", 0.0, "Stochastic depth rate of the last block.")
flags.DEFINE_string("randaugment", None, "N,M: RandAugment with N ops of magnitude M (0..10), the '+ RA' rows.")
flags.DEFINE_float("color_jitter", 0.4, "Brightness/contrast/saturation jitter.")
flags.DEFINE_float("crop_min_scale", None, "Smallest random-resized-crop area (recipe: 0.08; digits: 0.35).")
flags.DEFINE_bool("flip", None, "Random horizontal flips (recipe: on; digits: off).")
flags.DEFINE_enum("strategy", "mirrored", list(training.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPUs, mixed_bfloat16 elsewhere.")
flags.DEFINE_bool("jit_compile", False, "XLA (measure first: about 10x slower on CPUs).")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, logs, final weights, summary.json.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def parse_randaugment(text):
    if text is None:
        return None
    try:
        ops, magnitude = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"`--randaugment` must be N,M (two integers, e.g. 2,9); received {text!r}.") from None
    return ops, magnitude


def config_from_flags() -> training.TrainConfig:
    values = {field.name: getattr(F, field.name) for field in dataclasses.fields(training.TrainConfig)}
    values["randaugment"] = parse_randaugment(F.randaugment)
    return training.TrainConfig(**values)


def report(summary: dict) -> str:
    metrics = summary["final_metrics"]
    strategy = summary["strategy"]
    lines = [
        "",
        f"| {'metric':<22} | {'value':>12} |",
        f"|{'-' * 24}|{'-' * 14}|",
        f"| {'validation top-1':<22} | {metrics['top1']:>12.4f} |",
        f"| {'validation top-5':<22} | {metrics['top5']:>12.4f} |",
        f"| {'validation loss':<22} | {metrics['loss']:>12.4f} |",
        f"| {'epochs':<22} | {len(summary['history']):>12} |",
        f"| {'replicas':<22} | {strategy['replicas']:>12} |",
        f"| {'train images/s':<22} | {summary['images_per_second'] or 0:>12.1f} |",
        f"| {'wall time (s)':<22} | {summary['wall_seconds']:>12.1f} |",
        "",
        "Wrote:",
    ]
    lines += [f"  {kind:>8}: {path}" for kind, path in summary["outputs"].items()]
    return "\n".join(lines)


def main(argv):
    del argv
    verbose = 1 if sys.stdout.isatty() else 2  # a progress bar on terminals, a line per epoch in logs
    summary = run_cleanly(lambda: training.train(config_from_flags(), verbose=verbose))
    print(report(summary))


if __name__ == "__main__":
    app.run(main)
