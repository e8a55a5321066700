"""Parity with the reference implementation (timm) through the package's own state-dict mapping."""

import numpy as np
import pytest
from conftest import timm

import keras_tinynet
from keras_tinynet.weights.loading import assign_by_name
from keras_tinynet.weights.timm_mapping import from_timm_state_dict, timm_block_prefixes

pytestmark = pytest.mark.skipif(timm is None, reason="needs the `parity` extra (torch, timm)")


def random_timm_ghostnet(width: float, seed: int = 0):
    """A timm GhostNet with random weights and randomized BN statistics (so BN is not an identity)."""
    import torch
    from timm.models.ghostnet import GhostNet, _create_ghostnet

    torch.manual_seed(seed)
    if width == 1.5:  # timm registers no 1.5x: build it from the same table
        model = GhostNet(_create_ghostnet("ghostnet_100").cfgs, width=1.5)
    else:
        model = _create_ghostnet(f"ghostnet_{round(width * 100):03d}", width=width)
    return randomize(model)


def random_timm_tinynet(name: str, seed: int = 0):
    """timm's `tinynet_*` (SiLU, sigmoid SE, PyTorch padding) with random weights and BN statistics."""
    import torch

    torch.manual_seed(seed)
    return randomize(timm.create_model(name))


def randomize(model):
    import torch

    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.classifier.weight.mul_(20.0)  # logits of order 1..10, so 1e-4 is a real bound
    return model


def compare(timm_model, keras_builder, size, rng):
    import torch

    state = {k: v.numpy() for k, v in timm_model.state_dict().items()}
    model = keras_builder(include_preprocessing=False, classifier_activation=None, input_shape=(size, size, 3))
    assign_by_name(model, from_timm_state_dict(state), source="timm")
    x = rng.standard_normal((2, size, size, 3)).astype("float32")
    with torch.no_grad():
        expected = timm_model(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    actual = np.asarray(model(x))
    assert np.abs(expected).max() > 1.0
    return np.abs(actual - expected).max()


@pytest.mark.parametrize("size", [224, 193])
def test_ghostnet_100_matches_timm(size, rng):
    assert compare(random_timm_ghostnet(1.0), keras_tinynet.GhostNet100, size, rng) <= 1e-4


@pytest.fixture(scope="module")
def timm_tinynet_e():
    return random_timm_tinynet("tinynet_e")


@pytest.mark.parametrize("size", [106, 97])
def test_tinynet_e_matches_timm(size, rng, timm_tinynet_e):
    assert compare(timm_tinynet_e, keras_tinynet.TinyNetE, size, rng) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, size", [("tinynet_a", 192), ("tinynet_b", 188), ("tinynet_c", 184), ("tinynet_d", 152), ("tinynet_a", 97)]
)
def test_other_tinynets_match_timm(name, size, rng):
    builder = getattr(keras_tinynet, "TinyNet" + name[-1].upper())
    assert compare(random_timm_tinynet(name), builder, size, rng) <= 1e-4


def test_tinynet_mapping_covers_every_timm_tensor(timm_tinynet_e):
    state = {k: v.numpy() for k, v in timm_tinynet_e.state_dict().items()}
    blocks, final = timm_block_prefixes(state)
    assert len(blocks) == 10 and final == ""
    mapped = from_timm_state_dict(state)
    assert sum(a.size for arrays in mapped.values() for a in arrays) == sum(
        v.size for k, v in state.items() if not k.endswith("num_batches_tracked")
    )
    assert [a.shape for a in mapped["block0_project_conv"]] == [(1, 1, 32, 8)]  # ds: conv_pw projects
    assert [a.shape for a in mapped["block1_expand_conv"]] == [(1, 1, 8, 48)]  # mbconv: conv_pw expands


@pytest.mark.slow
@pytest.mark.parametrize("width, builder", [(0.5, "GhostNet050"), (1.3, "GhostNet130"), (1.5, "GhostNet150")])
def test_other_widths_match_timm(width, builder, rng):
    assert compare(random_timm_ghostnet(width), getattr(keras_tinynet, builder), 160, rng) <= 1e-4


def test_spec_matches_timms_module_shapes():
    """Every timm tensor lands in a Keras variable of the same size: nothing is left over."""
    state = {k: v.numpy() for k, v in random_timm_ghostnet(1.0).state_dict().items()}
    blocks, final = timm_block_prefixes(state)
    assert len(blocks) == 16 and final == "blocks.9.0"
    mapped = from_timm_state_dict(state)
    mapped_size = sum(a.size for arrays in mapped.values() for a in arrays)
    timm_size = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert mapped_size == timm_size


def test_mapping_refuses_a_state_dict_that_is_not_a_ghostnet():
    with pytest.raises(ValueError, match="not a timm GhostNet or EfficientNet"):
        from_timm_state_dict({"conv1.weight": np.zeros((8, 3, 3, 3))})
