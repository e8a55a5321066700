"""The tiny formula: GP curves, width solving, any budget from 20M to 600M FLOPs within 1%."""

import numpy as np
import pytest

from keras_tinynet.counting import count
from keras_tinynet.formula import (
    TINYNET_POINTS,
    GaussianProcess,
    base_flops,
    parse_flops,
    resolution_and_depth,
    tiny_formula,
)

BUDGETS = list(np.geomspace(20e6, 600e6, 25))


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda b: f"{b / 1e6:.0f}M")
def test_any_budget_is_met_within_one_percent(budget):
    config = tiny_formula(budget)
    assert count(config.spec).flops == config.counts.flops
    assert config.counts.flops == pytest.approx(budget, rel=0.01)
    assert config.image_size == config.spec.default_size


def test_curves_pass_through_the_base_model_and_follow_the_tinynet_points():
    assert resolution_and_depth(1.0) == pytest.approx((1.0, 1.0), abs=1e-4)
    points = np.array(TINYNET_POINTS)
    fitted = np.array([resolution_and_depth(c) for c in points[:, 0]])
    # A regression, not an interpolation: TinyNet-A (r 0.86, d 1.2 at c 0.869) sits off the trend.
    r_error, d_error = fitted[:, 0] - points[:, 1], fitted[:, 1] - points[:, 3]
    assert np.sqrt(np.mean(r_error**2)) < 0.06 and np.abs(r_error).max() < 0.12
    assert np.sqrt(np.mean(d_error**2)) < 0.1 and np.abs(d_error).max() < 0.2


def test_smaller_budgets_shrink_resolution_and_depth():
    configs = [tiny_formula(b) for b in (25e6, 60e6, 150e6, 300e6)]
    sizes = [c.image_size for c in configs]
    assert sizes == sorted(sizes) and sizes[0] < 120
    depths = [c.depth for c in configs]
    assert depths == sorted(depths)
    assert len(configs[0].spec.blocks) < len(configs[-1].spec.blocks)


def test_the_base_budget_gives_ghostnet_a_back():
    config = tiny_formula(ratio=1.0)
    assert config.image_size == 240 and len(config.spec.blocks) == 19
    assert config.width == pytest.approx(1.0, abs=0.01)
    assert config.counts.flops == pytest.approx(base_flops(), rel=0.002)


def test_ratio_and_flops_are_the_same_budget():
    assert tiny_formula(ratio=0.25).spec.blocks == tiny_formula(0.25 * base_flops()).spec.blocks


def test_gaussian_process_interpolates_exact_points_and_is_deterministic():
    x = np.linspace(-3, 0, 7)
    y = np.sin(x) + 0.1 * x
    gp = GaussianProcess(x, y, exact=np.ones_like(x, bool))
    np.testing.assert_allclose(gp(x), y, atol=1e-3)
    again = GaussianProcess(x, y, exact=np.ones_like(x, bool))
    assert (gp.length_scale, gp.signal_std) == (again.length_scale, again.signal_std)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "Pass exactly one of `flops` and `ratio`"),
        ({"flops": 1e8, "ratio": 0.5}, "Pass exactly one of `flops` and `ratio`"),
        ({"flops": -5}, "`flops` must be a positive finite number; received -5"),
        ({"ratio": float("nan")}, "`ratio` must be a positive finite number"),
        ({"flops": 1e6}, r"covers 12M to 886M FLOPs .* received flops=1000000.0"),
        ({"ratio": 3.0}, r"`ratio` 0.02 to 1.5 .* received ratio=3.0"),
    ],
)
def test_bad_budgets(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_formula(**kwargs)


# The published TinyNet budgets (Table 3) and their (r, d), as TINYNET_POINTS lists them.
TINYNET_BUDGETS = [
    (339e6, 0.86, 1.2),
    (202e6, 0.84, 1.1),
    (100e6, 0.825, 0.85),
    (52e6, 0.68, 0.695),
    (24e6, 0.475, 0.6),
]


@pytest.mark.parametrize("budget, resolution, depth", TINYNET_BUDGETS, ids=lambda v: f"{v / 1e6:.0f}M" if v > 1 else "")
def test_efficientnet_b0_base_meets_the_tinynet_budgets(budget, resolution, depth):
    config = tiny_formula(budget, base="efficientnet_b0")
    assert config.counts.flops == pytest.approx(budget, rel=0.01)
    assert {block.kind for block in config.spec.blocks} == {"ds", "mbconv"} and config.spec.activation == "swish"
    assert config.spec.name == f"tinynet_tiny_{budget / 1e6:.0f}m"
    # Within the GP's fit (a regression through all six points; the same bounds as the curve test).
    assert abs(config.resolution - resolution) < 0.12 and abs(config.depth - depth) < 0.2


def test_bad_base():
    with pytest.raises(ValueError, match="`base` must be one of ghostnet_a, efficientnet_b0; received base='resnet'"):
        tiny_formula(1e8, base="resnet")


def test_parse_flops():
    assert parse_flops("200M") == 200e6
    assert parse_flops("0.3G") == 0.3e9
    assert parse_flops("2e8") == 2e8
    assert parse_flops(None) is None
    with pytest.raises(ValueError, match="`flops` must be a number such as 200M.*received flops='lots'"):
        parse_flops("lots")
