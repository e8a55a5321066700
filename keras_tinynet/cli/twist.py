"""Twist resolution, depth and width of a base network for FLOPs or latency budgets: the paper's search, on Ray Tune.

For each budget it samples (r, d) configurations, solves the width so that each meets the budget (FLOPs counted,
or latency measured in --runtime on this machine before any training), trains each for a short schedule on the
dataset, ranks them by validation top-1 and fits r(c), d(c) over the best. It writes a table, plots and a curves
file that `--curves` (models, train, evaluate, export), `tiny_formula(..., curves=)` and the builders accept.
Rerunning the same command resumes (finished trials are not trained again).

With no flags: GhostNet-A at 64 px on the embedded digits, budgets of 1/4 and 1/2 of its FLOPs, 4 trials each,
4 epochs (about 15 minutes on 2 CPU cores).

  keras-tinynet twist
  keras-tinynet twist --flops 50M,100M,200M --dataset folder:/data/flowers --trials 8 --epochs 10
  keras-tinynet twist --latency_ms 1.0,2.0 --runtime tflite --threads 1 --model ghostnet_a --image_size 96
  keras-tinynet twist --address ray://head:10001 --scheduler asha ...   # on an existing Ray cluster
"""

from __future__ import annotations

import argparse
import os

from keras_tinynet.cli.common import (
    comma_list,
    flops_value,
    image_size_value,
    make_output_dir,
    positive_int,
    quiet_tensorflow,
)
from keras_tinynet.cli.train import PARAMETER_FLAGS, add_config_arguments, parse_randaugment
from keras_tinynet.twist.trials import TRAIN_FIELDS

DESCRIPTION = __doc__
__all__ = ["DESCRIPTION", "PARAMETER_FLAGS", "add_arguments", "run"]  # PARAMETER_FLAGS: train's, for the trials
DEFAULT_RATIOS = (0.25, 0.5)  # budgets (of the base's FLOPs) when none are given
DEFAULT_EPOCHS = 4
DIGITS_BASE_SIZE = 64
# The training flags of `train` a search passes to every trial (--train_batch_size is train's --batch_size).
TRAIN_FLAGS = tuple(name for name in TRAIN_FIELDS if name != "batch_size")


def budget_list(parse):
    def parse_list(text: str) -> list[float]:
        values = [parse(item) for item in comma_list(text)]
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of budgets; received {text!r}")
        return values

    return parse_list


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1.5; received {text!r}") from None


def add_arguments(parser) -> None:
    from keras_tinynet.latency import RUNTIMES
    from keras_tinynet.twist.sampling import BASES

    parser.add_argument(
        "--model", choices=BASES, default="ghostnet_a", metavar="BASE", help=f"base: {', '.join(BASES)}"
    )
    parser.add_argument(
        "--image_size", type=image_size_value, help="base image size, r = 1 (default: its own; digits: 64)"
    )
    budgets = parser.add_mutually_exclusive_group()
    budgets.add_argument("--flops", type=budget_list(flops_value), help="FLOPs budgets, e.g. 50M,100M,200M")
    budgets.add_argument("--latency_ms", type=budget_list(number), help="latency budgets in ms, e.g. 1.0,2.0")
    parser.add_argument("--trials", type=positive_int, default=4, help="configurations trained per budget (default: 4)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="relative cost tolerance (default: 0.05)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="tflite", help="runtime latency is measured in")
    parser.add_argument("--batch_size", type=positive_int, default=1, help="batch size of the latency measurement")
    parser.add_argument(
        "--threads", type=positive_int, help="threads of the latency measurement (default: the runtime's)"
    )
    parser.add_argument("--output_dir", help="where the plan, trials, table, plots and curves go")
    parser.add_argument("--address", help="join this Ray cluster (default: a local one on this machine's CPUs)")
    parser.add_argument("--concurrent", type=positive_int, help="trials at once (default: one per CPU, or per GPU)")
    parser.add_argument("--scheduler", choices=["fifo", "asha"], default="fifo", help="asha: stop weak trials early")
    parser.add_argument("--train_batch_size", type=positive_int, help="training batch size (train's --batch_size)")
    add_config_arguments(parser, TRAIN_FLAGS)
    parser.set_defaults(epochs=DEFAULT_EPOCHS, strategy="one_device")  # a trial is one process on its share


def search_config(args):
    from keras_tinynet.twist.sampling import resolve_base
    from keras_tinynet.twist.search import SearchConfig

    image_size = args.image_size or (DIGITS_BASE_SIZE if args.dataset == "digits" else None)
    flops = args.flops
    if flops is None and args.latency_ms is None:
        from keras_tinynet.twist.costs import flops as count_flops

        base_flops = count_flops(resolve_base(args.model, image_size).spec())
        flops = [round(ratio * base_flops) for ratio in DEFAULT_RATIOS]
    train = {name: getattr(args, name) for name in TRAIN_FLAGS}
    if isinstance(train["randaugment"], str):
        train["randaugment"] = parse_randaugment(train["randaugment"])
    train["batch_size"] = args.train_batch_size
    model = args.model
    output_dir = args.output_dir or os.path.join("runs", f"twist-{model}-{_slug(args.dataset)}")
    return SearchConfig(
        output_dir=output_dir,
        model=model,
        image_size=image_size,
        flops=tuple(flops) if flops else None,
        latency_ms=tuple(args.latency_ms) if args.latency_ms else None,
        trials=args.trials,
        tolerance=args.tolerance,
        seed=args.seed,
        runtime=args.runtime,
        batch_size=args.batch_size,
        threads=args.threads,
        train=train,
        scheduler=args.scheduler,
        address=args.address,
        concurrent=args.concurrent,
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.replace("folder:", "")).strip("_")


def run(args) -> None:
    quiet_tensorflow()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ImportError('keras-tinynet twist needs Ray Tune: pip install "keras_tinynet[search]".') from None
    from keras_tinynet.twist import search

    config = search_config(args)
    search.check(config)
    make_output_dir(config.output_dir)
    search.run(config)
