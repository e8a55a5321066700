"""Top-1, top-5 and loss of weights on a dataset split, with the eval preprocessing of training.

A registered tag is evaluated with the transform its source published (its crop_pct and interpolation).

keras-tinynet evaluate --weights runs/ghostnet_d-digits/final/ema.weights.h5   # the run's model, size and data
keras-tinynet evaluate --model ghostnet_100 --weights imagenet --dataset imagenet2012 --data_dir ~/tfds \\
  --manual_dir ~/imagenet
keras-tinynet evaluate --model ghostnet_b --weights b.weights.h5 --dataset imagenet2012 --data_dir ~/tfds
"""

from __future__ import annotations

import json

from keras_tinynet.cli.common import add_run_argument, add_weights_argument, quiet_tensorflow, take_from_run
from keras_tinynet.cli.train import add_config_arguments, config_from

DESCRIPTION = __doc__
CONFIG_FIELDS = (
    "model",
    "flops",
    "curves",
    "spec",
    "activation",
    "image_size",
    "dataset",
    "data_dir",
    "manual_dir",
    "batch_size",
)


RUN_FIELDS = CONFIG_FIELDS[:-1]  # what the run that trained the weights decides (not the evaluation batch)


def add_arguments(parser) -> None:
    add_weights_argument(parser, required=True)
    add_config_arguments(parser, CONFIG_FIELDS)
    add_run_argument(parser, "the network, input size and dataset")
    parser.add_argument("--split", choices=["eval", "train"], default="eval", help="eval: the validation/test split")
    parser.set_defaults(**dict.fromkeys(RUN_FIELDS))  # None: the run's, else TrainConfig's (see run)


def run(args) -> None:
    from keras_tinynet.recipe import TrainConfig

    take_from_run(args, RUN_FIELDS)
    for name in RUN_FIELDS:
        if getattr(args, name) is None:
            setattr(args, name, TrainConfig.__dataclass_fields__[name].default)
    config = config_from(args, CONFIG_FIELDS)
    quiet_tensorflow(args.verbose)
    from keras_tinynet import training

    print(json.dumps(training.evaluate(config, args.weights, args.split), indent=2))
