"""Parameters and FLOPs against the published figures."""

import pytest

from keras_tinynet.counting import conv_output_size, count
from keras_tinynet.presets import get_spec

# (variant, params, FLOPs) of Table 1 of the TinyNet appendix.
TINYNET_TABLE = [
    ("ghostnet_a", 11.9e6, 591e6),
    ("ghostnet_b", 8.0e6, 300e6),
    ("ghostnet_c", 5.0e6, 141e6),
    ("ghostnet_d", 2.6e6, 52e6),
]
# The original GhostNets: parameters to three digits, multiply-adds in whole millions (the GhostNet
# paper counts conv multiply-adds only, without the squeeze-excite gating multiplies).
ORIGINAL_TABLE = [
    ("ghostnet_050", 2.59e6, 42e6),
    ("ghostnet_100", 5.18e6, 141e6),
    ("ghostnet_130", 7.36e6, 227e6),
    ("ghostnet_150", 9.07e6, 298e6),
]


@pytest.mark.parametrize("name, params, flops", TINYNET_TABLE)
def test_ghostnet_a_to_d_match_table_1_within_one_percent(name, params, flops):
    counts = count(get_spec(name))
    assert counts.params == pytest.approx(params, rel=0.01)
    assert counts.flops == pytest.approx(flops, rel=0.01)


@pytest.mark.parametrize("name, params, flops", ORIGINAL_TABLE)
def test_original_ghostnets_match_the_published_figures(name, params, flops):
    counts = count(get_spec(name))
    assert counts.params == pytest.approx(params, abs=0.005e6)
    assert counts.macs == pytest.approx(flops, abs=0.5e6)  # within the rounding to whole millions
    assert counts.flops == pytest.approx(flops, rel=0.015)


def test_ghostnet_a_flops_split_into_multiply_adds_and_se_gating():
    spec = get_spec("ghostnet_a")
    counts = count(spec)
    gating = 0
    size = conv_output_size(240, 3, 2)
    for block in spec.blocks:
        size = conv_output_size(size, block.kernel_size, block.stride)
        gating += size * size * block.mid_channels if block.se_channels else 0
    assert counts.gate_multiplies == gating == pytest.approx(3.4e6, rel=0.02)
    assert counts.macs == pytest.approx(587.5e6, rel=0.001)
    assert counts.flops == counts.macs + counts.gate_multiplies


def test_original_ghostnet_100_has_timms_parameter_count():
    assert count(get_spec("ghostnet_100")).params == 5_182_508


def test_top_and_classes_and_resolution():
    spec = get_spec("ghostnet_b")
    full, no_top = count(spec), count(spec, include_top=False)
    head = spec.final_channels * spec.head_channels + spec.head_channels + spec.head_channels * 1000 + 1000
    assert full.params - no_top.params == head
    assert count(spec, classes=10).params == full.params - spec.head_channels * 990 - 990
    assert count(spec, 2 * spec.default_size).flops > 3.5 * full.flops
    assert count(spec, input_channels=1).params == full.params - 2 * 9 * spec.stem_channels


@pytest.mark.parametrize("size", [31, 0, 224.0, "224", True])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="`image_size` must be an integer >= 32"):
        count(get_spec("ghostnet_a"), size)


@pytest.mark.parametrize(
    "size, kernel, stride, expected", [(224, 3, 2, 112), (193, 3, 2, 97), (97, 5, 2, 49), (7, 3, 1, 7)]
)
def test_symmetric_padding_output_sizes(size, kernel, stride, expected):
    assert conv_output_size(size, kernel, stride) == expected


# TinyNet-A..E as the paper publishes them (Table 3): FLOPs rounded to whole millions.
@pytest.mark.parametrize(
    "name, flops, tolerance",
    [
        ("tinynet_a", 339e6, 0.01),
        ("tinynet_b", 202e6, 0.01),
        ("tinynet_c", 100e6, 0.01),
        ("tinynet_d", 52e6, 0.01),
        # 24.57M: 2.4% over the rounded 24M (multiply-adds alone, 24.36M, are 1.5% over; no one
        # convention reproduces all five rounded figures, so the package keeps its own).
        ("tinynet_e", 24e6, 0.025),
    ],
)
def test_tinynets_match_the_papers_flops(name, flops, tolerance):
    assert count(get_spec(name)).flops == pytest.approx(flops, rel=tolerance)


def test_tinynet_e_counts_are_pinned():
    counts = count(get_spec("tinynet_e"))
    assert (counts.params, counts.macs, counts.gate_multiplies) == (2_042_972, 24_356_848, 214_544)
