"""The flags the benchmarks share, defined by each benchmark's `define_flags` (never at import, so that
benchmarks can be imported side by side), and their checks, each a one-line UsageError naming the flag."""

from __future__ import annotations

import os

from absl import app, flags

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def define_output_dir(files: str) -> None:
    flags.DEFINE_string("output_dir", RESULTS_DIR, f"Where {files} go.")


def define_threads(help_text: str) -> None:
    flags.DEFINE_integer("threads", os.cpu_count() or 1, help_text)


def define_batch_sizes() -> None:
    flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes.")


def define_seconds(default: float, help_text: str) -> None:
    flags.DEFINE_float("seconds", default, help_text)


def define_rounds(default: int, help_text: str) -> None:
    flags.DEFINE_integer("rounds", default, help_text)


def define_onednn(help_text: str) -> None:
    flags.DEFINE_bool("onednn", True, help_text)


def check_no_arguments(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")


def check_known(name: str, values: list[str], allowed) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise app.UsageError(f"--{name}: unknown {unknown}; allowed: {', '.join(allowed)}.")


def check_at_least_one(values: dict[str, int]) -> None:
    for name, value in values.items():
        if value < 1:
            raise app.UsageError(f"--{name} must be at least 1; received {value}.")


def batch_sizes(values: list[str]) -> list[int]:
    if not all(value.isdigit() and int(value) > 0 for value in values):
        raise app.UsageError(f"--batch_sizes must be positive integers; received {values}.")
    return [int(value) for value in values]
