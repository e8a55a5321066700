"""The inference benchmark's flags (defined by `define_flags`, when it runs) and the `Config` they are
parsed into once, which every stage of the run then receives."""

from __future__ import annotations

import dataclasses

import bench_flags
import catalogue
from absl import app, flags


def define_flags() -> None:
    ours, compared, runtimes = catalogue.ours(), catalogue.compared(), catalogue.all_runtimes()
    flags.DEFINE_list("models", catalogue.default_models(), f"keras_tinynet models: {', '.join(ours)}.")
    flags.DEFINE_list(
        "runtimes",
        runtimes,
        f"Runtimes: {', '.join(runtimes)}. Default: each model's own plan (every runtime for "
        f"{', '.join(catalogue.ALL_RUNTIMES_BY_DEFAULT)}); given, each model runs those of them it can.",
    )
    flags.DEFINE_list("compare", compared, f"Models to compare with: {', '.join(compared)}.")
    bench_flags.define_batch_sizes()
    bench_flags.define_threads("Threads for every framework (TF intra/inter-op, torch, TFLite).")
    flags.DEFINE_integer("tf_intra_op_threads", None, "TensorFlow intra-op threads (default: --threads).")
    flags.DEFINE_integer("tf_inter_op_threads", None, "TensorFlow inter-op threads (default: --threads).")
    bench_flags.define_seconds(2.0, "Time each measurement for about this long in all (split over the rounds).")
    flags.DEFINE_integer("min_runs", 3, "At least this many timed runs per measurement.")
    bench_flags.define_rounds(3, "Interleave the measurements in this many rounds over all models.")
    flags.DEFINE_integer("warmup", 2, "Untimed runs first (XLA compiles, TFLite allocates, caches fill).")
    bench_flags.define_onednn(
        "TF_ENABLE_ONEDNN_OPTS for TensorFlow (oneDNN kernels; PyTorch uses oneDNN too). "
        "TensorFlow leaves it off on CPUs without AVX-512 VNNI/BF16/AMX."
    )
    bench_flags.define_output_dir("inference.json, inference.md and inference.png")


@dataclasses.dataclass(frozen=True)
class Config:
    """One run of the inference benchmark, as its flags asked for it (checked)."""

    models: tuple[str, ...]
    runtimes: tuple[str, ...]
    runtimes_given: bool  # each model runs every runtime of --runtimes it can, not its default plan
    compare: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    threads: int
    tf_intra_op_threads: int
    tf_inter_op_threads: int
    seconds: float
    min_runs: int
    rounds: int
    warmup: int
    onednn: bool
    output_dir: str

    @classmethod
    def from_flags(cls, values=flags.FLAGS) -> Config:
        """The parsed flags, checked: a one-line UsageError names the flag, the value and what is allowed."""
        for name, allowed in (
            ("models", catalogue.ours()),
            ("runtimes", catalogue.all_runtimes()),
            ("compare", catalogue.compared()),
        ):
            bench_flags.check_known(name, values[name].value, allowed)
        batch_sizes = bench_flags.batch_sizes(values.batch_sizes)
        bench_flags.check_at_least_one({name: values[name].value for name in ("threads", "min_runs", "rounds")})
        if values.seconds <= 0 or values.warmup < 0:
            raise app.UsageError(
                f"--seconds must be positive and --warmup non-negative; received {values.seconds}, {values.warmup}."
            )
        return cls(
            models=tuple(values.models),
            runtimes=tuple(values.runtimes),
            runtimes_given=values["runtimes"].present,
            compare=tuple(values.compare),
            batch_sizes=tuple(batch_sizes),
            threads=values.threads,
            tf_intra_op_threads=values.tf_intra_op_threads or values.threads,
            tf_inter_op_threads=values.tf_inter_op_threads or values.threads,
            seconds=values.seconds,
            min_runs=values.min_runs,
            rounds=values.rounds,
            warmup=values.warmup,
            onednn=values.onednn,
            output_dir=values.output_dir,
        )

    def plan(self):
        """(entry, runtimes) of every implementation this run times."""
        return catalogue.plan(self.models, self.compare, self.runtimes, self.runtimes_given)
