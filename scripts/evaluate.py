"""Top-1, top-5 and loss of a weights file on a dataset split, with the eval preprocessing of training.

python scripts/evaluate.py --weights runs/ghostnet_d-digits/final/ema.weights.h5
python scripts/evaluate.py --model ghostnet_b --weights b.weights.h5 --dataset imagenet2012 --data_dir ~/tfds
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import run_cleanly  # noqa: E402

from keras_tinynet import training  # noqa: E402
from keras_tinynet.spec import ACTIVATIONS, PRESETS  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("weights", None, "Weights file (.weights.h5, .keras or Keras 2 .h5).", required=True)
flags.DEFINE_enum("model", "ghostnet_d", list(PRESETS), "Variant the weights belong to.")
flags.DEFINE_float("flops", None, "FLOPs budget of a tiny-formula GhostNet instead of --model.")
flags.DEFINE_enum("activation", None, list(ACTIVATIONS), "Activation the model was trained with (default: its own).")
flags.DEFINE_integer("image_size", None, "Input size (default: as in training).")
flags.DEFINE_string("dataset", "digits", "'digits', 'folder:/path' or a tfds name.")
flags.DEFINE_enum("split", "eval", ["eval", "train"], "eval: the validation/test split.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.")
flags.DEFINE_string("manual_dir", None, "Directory of manually downloaded archives (imagenet2012).")
flags.DEFINE_integer("batch_size", None, "Batch size.")


def main(argv):
    del argv
    config = training.TrainConfig(
        model=F.model,
        flops=F.flops,
        activation=F.activation,
        image_size=F.image_size,
        dataset=F.dataset,
        data_dir=F.data_dir,
        manual_dir=F.manual_dir,
        batch_size=F.batch_size,
    )
    result = run_cleanly(lambda: training.evaluate(config, F.weights, F.split))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
