"""The twist's measurements: the paper's claim at small scale, the latency twist against the architecture gap,
and the wall time of a search with 1 and 2 concurrent trials. Results in benchmarks/results/twist_<job>.{json,md}.

  python benchmarks/twist.py claim --datasets digits,folder:/tmp/photos --seeds 0,1,2
  python benchmarks/twist.py latency            # at MobileNetV3Small's measured TFLite batch-1 latency
  python benchmarks/twist.py concurrency --trials 4

claim: for each dataset and seed, one search (the seed changes both the sampled (r, d) and the training), and
per budget the width-only trial (r = d = 1) against the twisted ones (their mean and their best), then the mean
and spread over seeds. Every search runs through `keras_tinynet.twist.search.run`, the command's own code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_tinynet.files import write_atomically  # noqa: E402
from keras_tinynet.twist import search  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def run_search(output_dir: str, **overrides) -> tuple[dict, float]:
    train = {"dataset": "digits", "epochs": 4, "strategy": "one_device", "seed": overrides.pop("seed", 0)}
    train.update(overrides.pop("train", {}))
    config = search.SearchConfig(output_dir=output_dir, seed=train["seed"], train=train, **overrides)
    started = time.perf_counter()
    outputs = search.run(config)
    return outputs, time.perf_counter() - started


def claim(args) -> dict:
    rows = []
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            name = f"claim-{dataset.replace('folder:', '').strip('/').replace('/', '_')}-{seed}"
            outputs, seconds = run_search(
                os.path.join(args.output_dir, name),
                model="ghostnet_a",
                image_size=args.image_size,
                flops=tuple(float(f) for f in args.flops.split(",")),
                trials=args.trials,
                runtime="keras",
                seed=seed,
                train={"dataset": dataset, "epochs": args.epochs},
            )
            for budget in sorted({row["budget"] for row in outputs["rows"]}):
                trials = [row for row in outputs["rows"] if row["budget"] == budget and row["top1"] is not None]
                width_only = [r["top1"] for r in trials if r["resolution"] == 1.0 and r["depth"] == 1.0]
                twisted = [r["top1"] for r in trials if not (r["resolution"] == 1.0 and r["depth"] == 1.0)]
                rows.append(
                    {
                        "dataset": dataset,
                        "seed": seed,
                        "budget": budget,
                        "width_only": width_only[0] if width_only else None,
                        "twisted_mean": statistics.mean(twisted) if twisted else None,
                        "twisted_best": max(twisted) if twisted else None,
                        "twisted": twisted,
                        "seconds": round(seconds, 1),
                    }
                )
    summary = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for budget in sorted({r["budget"] for r in rows if r["dataset"] == dataset}):
            group = [r for r in rows if r["dataset"] == dataset and r["budget"] == budget]
            entry = {"dataset": dataset, "budget": budget, "seeds": len(group)}
            for field in ("width_only", "twisted_mean", "twisted_best"):
                values = [r[field] for r in group if r[field] is not None]
                entry[field] = _mean_spread(values)
            summary.append(entry)
    return {"rows": rows, "summary": summary}


def _mean_spread(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)}


def latency(args) -> dict:
    """twist --latency_ms at MobileNetV3Small's measured TFLite batch-1 latency, GhostNet-A base at 224 px,
    against GhostNet-D; every model measured in the same run."""
    import keras

    from keras_tinynet import latency as latency_lib
    from keras_tinynet.counting import count
    from keras_tinynet.models import GhostNetD
    from keras_tinynet.presets import get_spec

    mobilenet = keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))
    measure = dict(runtime="tflite", batch_size=1, threads=args.threads)
    target = latency_lib.measure_latency(mobilenet, **measure).median_ms
    ghostnet_d = latency_lib.measure_latency(GhostNetD(), **measure).median_ms
    outputs, seconds = run_search(
        os.path.join(args.output_dir, "latency"),
        model="ghostnet_a",
        image_size=args.image_size,
        latency_ms=(round(target, 3),),
        trials=args.trials,
        runtime="tflite",
        threads=args.threads,
        train={"dataset": args.dataset, "epochs": args.epochs},
    )
    counts = count(get_spec("ghostnet_d"))
    return {
        "mobilenet_v3_small_ms": target,
        "ghostnet_d": {"latency_ms": ghostnet_d, "flops": counts.flops, "params": counts.params},
        "trials": outputs["rows"],
        "seconds": seconds,
    }


def concurrency(args) -> dict:
    rows = []
    for concurrent in (1, 2):
        outputs, seconds = run_search(
            os.path.join(args.output_dir, f"concurrency-{concurrent}"),
            model="ghostnet_a",
            image_size=args.image_size,
            flops=(float(args.flops.split(",")[0]),),
            trials=args.trials,
            runtime="keras",
            concurrent=concurrent,
            train={"epochs": args.epochs},
        )
        rows.append({"concurrent": concurrent, "trials": len(outputs["rows"]), "wall_seconds": round(seconds, 1)})
    return {"rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", choices=["claim", "latency", "concurrency"])
    parser.add_argument("--output_dir", default="runs/twist-bench")
    parser.add_argument("--datasets", default="digits")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--flops", default="12e6")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.time()
    result = {"claim": claim, "latency": latency, "concurrency": concurrency}[args.job](args)
    result["command"] = "python benchmarks/twist.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result["wall_seconds"] = round(time.time() - started, 1)
    path = os.path.join(RESULTS, f"twist_{args.job}.json")
    write_atomically(path, json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2, default=str)[:4000])
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
