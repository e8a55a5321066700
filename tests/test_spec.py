"""The architecture as data: tables, rounding, depth and width scaling, round trips, validation."""

import json

import pytest
from conftest import run_python

from keras_tinynet.counting import count
from keras_tinynet.presets import EFFICIENTNET_B0, ORIGINAL_GHOSTNET, PRESETS, TINYNET_GHOSTNET, builder_name, get_spec
from keras_tinynet.spec import BlockSpec, NetworkSpec, make_divisible, scale, scale_stage_depth

# (k, mid, out, se, stride) of GhostNet-A, as the reference lists them.
GHOSTNET_A_BLOCKS = (
    [(3, 32, 28, 8, 1), (3, 88, 44, 8, 2), (3, 136, 44, 16, 1), (5, 136, 72, 16, 2)]
    + [(3, 216, 72, 24, 1)] * 2
    + [(3, 432, 140, 40, 2)]
    + [(3, 352, 140, 32, 1)] * 3
    + [(3, 840, 196, 88, 1)]
    + [(3, 1176, 196, 120, 1)] * 2
    + [(5, 1176, 280, 120, 2)]
    + [(3, 1680, 280, 168, 1)] * 5
)


def as_rows(spec):
    return [(b.kernel_size, b.mid_channels, b.out_channels, b.se_channels, b.stride) for b in spec.blocks]


@pytest.mark.parametrize(
    "value, divisor, expected",
    [(28, 8, 32), (84, 8, 88), (3, 8, 8), (13, 8, 16), (35.5, 8, 32), (35.6, 8, 40), (22.54, 4, 24), (12.8, 4, 12)],
)
def test_make_divisible(value, divisor, expected):
    assert make_divisible(value, divisor) == expected


def test_ghostnet_a_is_the_reference_table():
    spec = get_spec("ghostnet_a")
    assert as_rows(spec) == GHOSTNET_A_BLOCKS
    assert (spec.default_size, spec.stem_channels, spec.final_channels, spec.head_channels) == (240, 28, 1680, 1400)
    assert spec.stage_ends == (0, 2, 5, 12, 18)


def test_original_ghostnet_is_the_reference_table():
    spec = get_spec("ghostnet_100")
    expected = [
        (3, 16, 16, 0, 1),
        (3, 48, 24, 0, 2),
        (3, 72, 24, 0, 1),
        (5, 72, 40, 20, 2),
        (5, 120, 40, 32, 1),
        (3, 240, 80, 0, 2),
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 120, 1),
        (3, 672, 112, 168, 1),
        (5, 672, 160, 168, 2),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 240, 1),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 240, 1),
    ]
    assert as_rows(spec) == expected
    assert (spec.stem_channels, spec.final_channels, spec.head_channels) == (16, 960, 1280)
    assert get_spec("ghostnet_050").head_channels == 1280  # conv_head is never scaled
    assert get_spec("ghostnet_050").stem_channels == 8


@pytest.mark.parametrize(
    "repeats, depth, expected",
    [
        ([1], 1.08, [1]),
        ([1, 1], 1.08, [1, 1]),
        ([1, 2], 1.08, [1, 2]),
        ([1, 3, 3], 1.08, [1, 4, 3]),
        ([1, 5], 1.08, [1, 5]),
        ([1, 3, 3], 0.5, [1, 2, 2]),
        ([1, 5], 0.5, [1, 2]),
        ([1, 2], 0.76, [1, 1]),
    ],
)
def test_stage_depth_scaling(repeats, depth, expected):
    assert scale_stage_depth(repeats, depth) == expected


@pytest.mark.parametrize(
    "name, size, blocks", [("ghostnet_b", 205, 20), ("ghostnet_c", 187, 15), ("ghostnet_d", 145, 13)]
)
def test_b_c_d_are_a_twisted(name, size, blocks):
    preset = PRESETS[name]
    spec = get_spec(name)
    assert preset.architecture is TINYNET_GHOSTNET
    assert (spec.default_size, len(spec.blocks)) == (size, blocks)
    assert spec == scale(TINYNET_GHOSTNET, size / 240, preset.depth, preset.width, name=name)
    assert spec.stem_channels == make_divisible(28 * preset.width, 4)
    assert spec.final_channels == make_divisible(1680 * preset.width, 8)
    assert spec.head_channels == make_divisible(1400 * preset.width, 8)
    for block in spec.blocks:  # mid follows the block's scaled input width, SE follows mid
        ratio = block.mid_channels / block.in_channels
        assert block.se_channels == make_divisible(block.mid_channels // 10, 8)
        assert 0.5 < ratio < 7


def test_width_scaling_rounds_each_row_to_four():
    spec = scale(TINYNET_GHOSTNET, width=0.805)
    outs = sorted({b.out_channels for b in spec.blocks})
    assert outs == sorted({make_divisible(c * 0.805, 4) for c in (28, 44, 72, 140, 196, 280)})


@pytest.mark.parametrize("name", list(PRESETS))
def test_spec_round_trips_through_a_dict(name):
    spec = get_spec(name)
    config = json.loads(json.dumps(spec.to_dict()))
    assert NetworkSpec.from_dict(config) == spec
    dict_rows = {**config, "blocks": [dict(zip(BlockSpec.__dataclass_fields__, row)) for row in config["blocks"]]}
    assert NetworkSpec.from_dict(dict_rows) == spec


def test_spec_prints_a_block_table():
    text = str(get_spec("ghostnet_a"))
    lines = text.splitlines()
    assert lines[0].startswith("ghostnet_a: 240x240, stem 28, 19 blocks, final conv 1680, conv_head 1400")
    assert len(lines) == 2 + 19
    assert lines[3].split() == ["1", "ghost", "3", "/4", "28", "88", "44", "8", "conv"]


def test_invalid_specs_are_refused_with_the_field_named():
    spec = get_spec("ghostnet_d")
    config = spec.to_dict()
    broken = dict(config, blocks=[list(b) for b in config["blocks"]])
    broken["blocks"][2][0] += 4
    with pytest.raises(ValueError, match="block 2 .* in_channels=.* does not match the previous output width"):
        NetworkSpec.from_dict(broken)
    broken = dict(config, blocks=[list(b) for b in config["blocks"]])
    broken["blocks"][0][4] = 3
    with pytest.raises(ValueError, match="stride must be 1 or 2; received 3"):
        NetworkSpec.from_dict(broken)
    broken["blocks"][0][4] = 1
    broken["blocks"][0][3] = 4
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        NetworkSpec.from_dict(broken)
    with pytest.raises(ValueError, match=r"needs the keys .* and optionally 'activation'; received .*'extra'"):
        NetworkSpec.from_dict(dict(config, extra=1))
    with pytest.raises(ValueError, match="`activation` must be one of .*; received activation='gelu'"):
        NetworkSpec.from_dict(dict(config, activation="gelu"))
    with pytest.raises(ValueError, match="block 0 .* kind must be one of .*; received 'conv'"):
        NetworkSpec.from_dict(dict(config, blocks=[[*config["blocks"][0][:6], "conv"], *config["blocks"][1:]]))
    with pytest.raises(ValueError, match="`default_size` must be an integer >= 32; received 16"):
        NetworkSpec.from_dict(dict(config, default_size=16))
    no_stride = dict(config, blocks=[[*b[:4], 1, b[5]] for b in config["blocks"]])
    with pytest.raises(ValueError, match="exactly 4 stride-2 blocks"):
        NetworkSpec.from_dict(no_stride)


@pytest.mark.parametrize("arg", ["resolution", "depth", "width"])
@pytest.mark.parametrize("value", [0, -1.0, float("inf"), "1", True])
def test_scale_refuses_bad_multipliers(arg, value):
    with pytest.raises(ValueError, match=f"`{arg}` must be a positive finite number"):
        scale(TINYNET_GHOSTNET, **{arg: value})


def test_scale_refuses_images_below_32_pixels():
    with pytest.raises(ValueError, match="smallest image size is 32"):
        scale(ORIGINAL_GHOSTNET, resolution=0.1)


def test_unknown_variant_lists_the_available_ones():
    with pytest.raises(ValueError, match="Unknown variant `name`='ghostnet_z'; available: ghostnet_a"):
        get_spec("ghostnet_z")


def test_plain_modules_do_not_import_tensorflow():
    run_python(
        "import sys, keras_tinynet.spec, keras_tinynet.counting, keras_tinynet.formula;"
        "import keras_tinynet.weights.timm_mapping, keras_tinynet.cli, keras_tinynet.cli.models;"
        "keras_tinynet.cli.main(['models']); keras_tinynet.cli.main(['models', '--flops', '100M']);"
        "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules]; assert not bad, bad"
    )


def test_old_ghostnet_dicts_without_kind_or_activation_still_load():
    spec = get_spec("ghostnet_d")
    config = spec.to_dict()
    old = {key: value for key, value in config.items() if key != "activation"}
    old["blocks"] = [row[:6] for row in config["blocks"]]
    assert NetworkSpec.from_dict(old) == spec


# timm's tinynet_a..e: repeats per row of EfficientNet-B0, and trainable parameters.
TIMM_TINYNETS = {
    "tinynet_a": (192, [1, 2, 2, 4, 4, 5, 1], 6_187_972),
    "tinynet_b": (188, [1, 2, 2, 3, 3, 4, 1], 3_730_562),
    "tinynet_c": (184, [1, 2, 2, 3, 3, 3, 1], 2_457_234),
    "tinynet_d": (152, [1, 1, 1, 2, 2, 3, 1], 2_338_446),
    "tinynet_e": (106, [1, 1, 1, 2, 2, 2, 1], 2_042_972),
}


@pytest.mark.parametrize("name", list(TIMM_TINYNETS))
def test_tinynets_follow_timms_gen_tinynet(name):
    size, repeats, params = TIMM_TINYNETS[name]
    preset, spec = PRESETS[name], get_spec(name)
    assert preset.architecture is EFFICIENTNET_B0 and spec.activation == "swish"
    assert spec.default_size == size and len(spec.blocks) == sum(repeats)
    assert spec.stem_channels == 32  # fix_stem
    assert spec.final_channels == max(1280, make_divisible(1280 * preset.width, 8)) and spec.head_channels == 0
    assert [b.kind for b in spec.blocks] == ["ds"] + ["mbconv"] * (sum(repeats) - 1)
    for block in spec.blocks:
        expand = 1 if block.kind == "ds" else 6
        assert block.mid_channels == make_divisible(block.in_channels * expand, 8)
        assert block.se_channels == round(block.mid_channels * 0.25 / expand)
        assert block.out_channels % 8 == 0
    assert count(spec).params == params
    assert builder_name(name) == "TinyNet" + name[-1].upper()


def test_tinynet_table_names_kinds_and_no_conv_head():
    lines = str(get_spec("tinynet_e")).splitlines()
    assert lines[0] == "tinynet_e: 106x106, stem 32, 10 blocks, final conv 1280, conv_head none, swish"
    assert lines[2].split() == ["0", "ds", "3", "/2", "32", "32", "8", "8", "conv"]
    assert lines[6].split() == ["4", "mbconv", "3", "/16", "40", "240", "40", "10", "identity"]
