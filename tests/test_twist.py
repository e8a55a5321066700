"""keras-tinynet twist: sampling within the budget, the curves file and its readers, the refusals, and a tiny
search on Ray Tune (one Ray runtime for the session) that is killed mid-search and resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from keras_tinynet.cli import main
from keras_tinynet.counting import count
from keras_tinynet.formula import tiny_formula
from keras_tinynet.twist import costs
from keras_tinynet.twist.curves import Curves, load_curves
from keras_tinynet.twist.sampling import Base, reach, resolve_base, sample

TOLERANCE = 0.05


def test_samples_meet_the_budget_and_start_width_only():
    base = resolve_base("ghostnet_a", 64)
    budget = 0.3 * costs.flops(base.spec())
    found, skipped = sample(base, budget, costs.flops, 4, TOLERANCE, seed=0)
    assert len(found) == 4 and skipped >= 0
    assert (found[0].resolution, found[0].depth) == (1.0, 1.0)  # the width-only reference
    assert len({c.key for c in found}) == 4
    for candidate in found:
        assert abs(count(candidate.spec).flops / budget - 1) <= TOLERANCE
        assert candidate.spec.default_size == round(64 * candidate.resolution)
    again, _ = sample(base, budget, costs.flops, 4, TOLERANCE, seed=0)
    assert [c.key for c in again] == [c.key for c in found]  # deterministic: a rerun plans the same trials


def test_a_measured_cost_stops_at_the_first_width_within_the_tolerance():
    """A latency is bisected with few (expensive) measurements: a stand-in cost that counts its calls."""
    base = resolve_base("ghostnet_d", 64)
    calls = []

    def latency(spec):
        calls.append(spec)
        return count(spec).flops / 1e6  # "ms": monotone in width like a latency

    budget = 0.6 * latency(base.spec())
    found, _ = sample(base, budget, latency, 3, TOLERANCE, seed=1, exact=False)
    assert len(found) == 3 and all(abs(c.cost / budget - 1) <= TOLERANCE for c in found)
    exact_calls = len(calls)
    calls.clear()
    sample(base, budget, latency, 3, TOLERANCE, seed=1, exact=True)
    assert exact_calls < len(calls)


def test_a_preset_base_is_its_own_spec_at_one():
    base = resolve_base("ghostnet_100")
    assert base.spec().to_dict() == {**__import__("keras_tinynet").get_spec("ghostnet_100").to_dict()}
    with pytest.raises(ValueError, match="--model must be one of .*received --model 'resnet50'"):
        resolve_base("resnet50")


def _synthetic_curves(base: Base, path) -> str:
    """A curves file as a search writes it, from made-up best trials at two ratios."""
    base_cost = costs.flops(base.spec())
    points = [
        {"ratio": 0.25, "resolution": 0.9, "depth": 0.8, "width": 0.45, "top1": 0.9, "trial": "a"},
        {"ratio": 0.5, "resolution": 0.95, "depth": 0.9, "width": 0.7, "top1": 0.93, "trial": "b"},
    ]
    measurement = {"runtime": "tflite", "batch_size": 1, "threads": 1, "machine": {"cpu": "elsewhere", "cores": 64}}
    return Curves(base, "flops", base_cost, tuple(points), (), "digits", measurement).write(str(path))


def test_curves_round_trip_into_the_formula_and_the_builder(tmp_path):
    base = resolve_base("ghostnet_a", 64)
    path = _synthetic_curves(base, tmp_path / "curves.json")
    curves = load_curves(path)
    assert curves(1.0) == pytest.approx({"resolution": 1.0, "depth": 1.0, "width": 1.0}, abs=1e-3)
    budget = 0.35 * curves.base_cost
    config = tiny_formula(budget, curves=path)
    assert abs(config.counts.flops / budget - 1) <= TOLERANCE
    assert config.image_size == pytest.approx(64 * curves(0.35)["resolution"], abs=9)
    assert config.spec.to_dict() != tiny_formula(budget).spec.to_dict()  # not the published curves
    from keras_tinynet.models import GhostNet

    model = GhostNet(flops=budget, curves=path, classes=10)
    assert model.input_shape[1] == config.image_size
    assert model.count_params() > 0
    with pytest.raises(ValueError, match="fitted on the base ghostnet_a .* twists the tinynet family"):
        tiny_formula(budget, base="efficientnet_b0", curves=path)
    with pytest.raises(ValueError, match="fitted for flops budgets; `latency_ms` needs curves of a latency_ms"):
        GhostNet(latency_ms=1.0, curves=path)


def test_latency_curves_build_and_warn_on_another_machine(tmp_path):
    base = resolve_base("ghostnet_a", 64)
    data = json.loads(open(_synthetic_curves(base, tmp_path / "c.json")).read())
    data.update(budget_kind="latency_ms", base_cost=4.0)
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="measured on 'elsewhere' \\(64 cores\\)"):
        spec = load_curves(path).latency_spec(1.4)
    knobs = load_curves(path)(1.4 / 4.0)
    assert spec.default_size == base.size_at(knobs["resolution"])


def _cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    "argv, flag, possible",
    [
        (["--flops", "1e15"], "--flops 1e+15", "FLOPs"),
        (["--trials", "0"], "--trials", "integer >= 1"),
        (["--flops", "10M", "--tolerance", "0"], "--tolerance", "(0, 1)"),
    ],
)
def test_impossible_searches_are_refused_before_anything_is_written(tmp_path, capsys, argv, flag, possible):
    output_dir = tmp_path / "search"
    code, err = _cli(["twist", "--image_size", "32", "--output_dir", str(output_dir), *argv], capsys)
    assert code == 2 and len(err) == 1, err
    assert flag in err[0] and possible in err[0]
    assert not output_dir.exists()


@pytest.mark.slow
def test_a_latency_budget_below_the_fastest_configuration_is_refused(tmp_path, capsys):
    output_dir = tmp_path / "search"
    argv = ["twist", "--image_size", "32", "--latency_ms", "0.0001", "--runtime", "keras", "--output_dir"]
    code, err = _cli([*argv, str(output_dir)], capsys)
    assert code == 2 and len(err) == 1, err
    assert "--latency_ms 0.0001 is out of reach of ghostnet_a at 32 px" in err[0] and " ms (r, d, w" in err[0]
    assert not output_dir.exists()


def test_unreadable_curves_and_curves_of_another_base_are_one_line_errors(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "keras_tinynet.twist.curves"')
    code, err = _cli(["models", "--flops", "10M", "--curves", str(broken)], capsys)
    assert code == 2 and len(err) == 1, err
    assert f"--curves {broken}" in err[0] and "not a readable twist curves file" in err[0]

    tinynet = _synthetic_curves(resolve_base("efficientnet_b0", 64), tmp_path / "tinynet.json")
    code, err = _cli(["models", "--flops", "10M", "--curves", tinynet], capsys)
    assert code == 2 and len(err) == 1, err
    assert f"--curves {tinynet}" in err[0] and "efficientnet_b0 (tinynet family)" in err[0]
    assert "pass curves of a ghostnet base" in err[0]


def test_the_base_and_its_reach(tmp_path):
    base = resolve_base("ghostnet_a", 32)
    low, high = reach(base, costs.flops)
    assert low < costs.flops(base.spec()) < high


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray runtime for the test session (2 CPUs); the search tests run on it."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the command does for its local runtime
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


SEARCH = ["--model", "ghostnet_d", "--image_size", "32", "--flops", "2M,3M", "--trials", "2", "--epochs", "1"]
SEARCH += ["--steps_per_epoch", "1"]
SEARCH += ["--runtime", "keras", "--train_batch_size", "32"]


@pytest.mark.slow
def test_a_killed_search_resumes_without_retraining_and_writes_table_plots_and_curves(tmp_path, ray_address, capsys):
    output_dir = str(tmp_path / "search")
    argv = ["twist", *SEARCH, "--output_dir", output_dir]
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "keras_tinynet", *argv, "--address", ray_address], stdout=log, stderr=log
    )
    trials = os.path.join(output_dir, "trials")
    deadline = time.time() + 1200
    first = None
    while first is None and time.time() < deadline and driver.poll() is None:
        time.sleep(1)
        done = (
            [d for d in os.listdir(trials) if os.path.exists(os.path.join(trials, d, "summary.json"))]
            if (os.path.isdir(trials))
            else []
        )
        first = done[0] if done else None
    assert first is not None, f"no trial finished (driver exit {driver.poll()}):\n{open(log.name).read()[-3000:]}"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    summary = os.path.join(trials, first, "summary.json")

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Resuming the search" in out and "[4/4]" in out
    with open(summary) as handle:
        assert len(json.load(handle)["history"]) == 1  # trained once: its epoch was not redone

    for name in ("results.md", "results.json", "curves.json", "top1_vs_budget.png", "curves.png"):
        assert os.path.getsize(os.path.join(output_dir, name)) > 0
    with open(os.path.join(output_dir, "results.json")) as handle:
        rows = json.load(handle)["trials"]
    assert len(rows) == 4 and all(0 <= row["top1"] <= 1 for row in rows)
    assert all(row["latency_ms"] > 0 and row["activation_mb"] > 0 for row in rows)
    curves = load_curves(os.path.join(output_dir, "curves.json"))
    for budget in (2e6, 3e6):
        assert abs(tiny_formula(budget, curves=curves.path).counts.flops / budget - 1) <= TOLERANCE
