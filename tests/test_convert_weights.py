"""scripts/convert_weights.py and keras_tinynet.weights.conversion: timm GhostNet checkpoints to .weights.h5.

The checkpoints are random timm models (BN running statistics randomized) written by the tests;
nothing here reaches the internet (the `timm:` source is tried with the Hugging Face Hub offline).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

timm = pytest.importorskip("timm")  # conftest imported it before Keras
torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from conftest import run_python  # noqa: E402

import keras_tinynet  # noqa: E402
import keras_tinynet.models  # noqa: E402,F401  (conftest.build_cached reaches keras_tinynet.models)
from keras_tinynet.convert import convert_checkpoint, keras_model_from_state_dict  # noqa: E402
from keras_tinynet.files import file_hash  # noqa: E402
from keras_tinynet.weights import conversion as checkpoints  # noqa: E402
from keras_tinynet.weights import registry  # noqa: E402
from keras_tinynet.weights.conversion import CheckpointError, ParityError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "convert_weights.py")


def random_timm(name: str, seed: int):
    torch.manual_seed(seed)
    model = timm.create_model(name).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
        model.classifier.bias.normal_(0, 0.5, generator=generator)
    return model


def write_checkpoints(model, folder, name):
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    safetensors_torch.save_file(state, folder / f"{name}.safetensors")
    torch.save(state, folder / f"{name}.pth")
    return {"model": model, "safetensors": str(folder / f"{name}.safetensors"), "pth": str(folder / f"{name}.pth")}


@pytest.fixture(scope="module")
def ckpt100(tmp_path_factory):
    return write_checkpoints(random_timm("ghostnet_100", 0), tmp_path_factory.mktemp("ckpt100"), "ghostnet_100")


@pytest.fixture(scope="module")
def ckpt050(tmp_path_factory):
    return write_checkpoints(random_timm("ghostnet_050", 1), tmp_path_factory.mktemp("ckpt050"), "ghostnet_050")


def numpy_state(model):
    return {key: value.numpy() for key, value in model.state_dict().items()}


def run_script(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


@pytest.mark.slow
def test_safetensors_converts_without_torch_and_matches_timm(ckpt100, tmp_path):
    output = tmp_path / "ghostnet_100.weights.h5"
    code = f"""
import json, sys
from keras_tinynet.convert import convert_checkpoint
result = convert_checkpoint({ckpt100["safetensors"]!r}, "ghostnet_100", {str(output)!r}, parity="skip")
assert "torch" not in sys.modules and "timm" not in sys.modules, "torch was imported"
assert "keras" in sys.modules and "safetensors.numpy" in sys.modules
print(json.dumps({{"sha256": result.sha256, "parity": result.parity_diff}}))
"""
    printed = json.loads(run_python(code).stdout.strip().splitlines()[-1])
    assert printed == {"sha256": file_hash(output), "parity": None}
    model = keras_tinynet.GhostNet100(weights=str(output), classifier_activation=None)
    difference = checkpoints.parity_difference(model, ckpt100["model"], "ghostnet_100", include_top=True)
    assert difference <= 1e-4
    with torch.no_grad():
        logits = ckpt100["model"](torch.randn(2, 3, 224, 224)).numpy()
    assert logits.std() > 0.05  # the comparison is not between near-constant outputs


def test_convert_checks_parity_writes_atomically_and_makes_the_entry(ckpt100, tmp_path):
    output = tmp_path / "out" / "ghostnet_100.weights.h5"
    result = convert_checkpoint(
        ckpt100["safetensors"], "ghostnet_100", str(output), parity="require", base_url="https://example.org/w/"
    )
    assert result.parity_diff is not None and result.parity_diff <= 1e-4
    assert os.listdir(output.parent) == [output.name]  # no temporary file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert output.stat().st_mode & 0o777 == 0o666 & ~mask
    entry = result.entry["ghostnet_100"]["converted"]  # a local file: not known to be timm's ImageNet weights
    registry.validate_entry(entry, "test")
    assert entry == {
        "file": "ghostnet_100.weights.h5",
        "url": "https://example.org/w/ghostnet_100.weights.h5",
        "format": "keras_weights_h5",
        "hash_algorithm": "sha256",
        "hash": file_hash(output),
        "size": output.stat().st_size,
        "source": f"ghostnet_100.safetensors (sha256 {file_hash(ckpt100['safetensors'])})",
        "license": "unknown",
        "top1": None,
    }
    with pytest.raises(FileExistsError, match="`output`=.* exists; pass overwrite=True"):
        convert_checkpoint(ckpt100["safetensors"], "ghostnet_100", str(output), parity="skip")


def test_tinynet_e_checkpoint_converts_with_parity(tmp_path):
    checkpoint = write_checkpoints(random_timm("tinynet_e", 2), tmp_path, "tinynet_e")
    output = tmp_path / "tinynet_e.weights.h5"
    result = convert_checkpoint(checkpoint["safetensors"], "tinynet_e", str(output), parity="require")
    assert result.parity_diff <= 1e-4 and list(result.entry) == ["tinynet_e"]
    model = keras_tinynet.TinyNetE(weights=str(output), classifier_activation=None)
    assert checkpoints.parity_difference(model, checkpoint["model"], "tinynet_e", include_top=True) <= 1e-4


def test_pth_without_top_matches_timm_features_and_loads(ckpt050, tmp_path):
    output = tmp_path / "ghostnet_050_notop.weights.h5"
    result = convert_checkpoint(ckpt050["pth"], "ghostnet_050", str(output), include_top=False, parity="require")
    assert result.parity_diff <= 1e-4 and list(result.entry["ghostnet_050"]) == ["converted_notop"]
    model = keras_tinynet.GhostNet050(include_top=False, weights=str(output))
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    assert checkpoints.parity_difference(model, ckpt050["model"], "ghostnet_050", include_top=False) <= 1e-4
    assert model(x).shape == (1, 7, 7, 480)


def test_mismatching_logits_refuse_to_write(ckpt050, tmp_path, monkeypatch):
    mapping = checkpoints.from_timm_state_dict

    def broken(state_dict):  # a mapping bug: the stem kernel flipped, every shape still fits
        weights = mapping(state_dict)
        weights["stem_conv"] = [weights["stem_conv"][0][::-1, ::-1]]
        return weights

    monkeypatch.setattr(checkpoints, "from_timm_state_dict", broken)
    output = tmp_path / "ghostnet_050.weights.h5"
    with pytest.raises(ParityError, match=r"Refusing to write .* differ by .* in their logits \(tolerance 0.0001\)"):
        convert_checkpoint(ckpt050["safetensors"], "ghostnet_050", str(output))
    assert os.listdir(tmp_path) == []


class _Payload:
    """Unpickling it would create a file: what a malicious checkpoint does with code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pth_with_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.zeros(16, 3, 3, 3), "payload": _Payload(str(marker))}, path)
    with pytest.raises(
        CheckpointError,
        match=rf"Refused to load `source`='{path}': torch.load\(weights_only=True\) rejected it.*Unsupported global",
    ):
        checkpoints.read_pth(str(path))
    assert not marker.exists()


def test_pth_contents_that_are_not_state_dicts_are_refused(tmp_path):
    torch.save({"conv_stem.weight": torch.zeros(1), "note": "text"}, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match="entry 'note' is a str, not a tensor"):
        checkpoints.read_pth(str(tmp_path / "a.pth"))
    torch.save([torch.zeros(1)], tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        checkpoints.read_pth(str(tmp_path / "b.pth"))


def test_training_checkpoints_are_unwrapped(ckpt050, tmp_path):
    state = ckpt050["model"].state_dict()
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    wrapped["state_dict"]["module.total_ops"] = torch.zeros(1)  # a thop counter
    torch.save(wrapped, tmp_path / "train.pth")
    normalized = checkpoints.normalize_state_dict(checkpoints.read_pth(str(tmp_path / "train.pth")), "train.pth")
    assert sorted(normalized) == sorted(state)


def test_other_architectures_and_variants_are_refused(ckpt100):
    state = numpy_state(ckpt100["model"])
    with pytest.raises(
        CheckpointError, match=r"not a timm GhostNet or TinyNet state dict: it has no 'conv_stem.weight'"
    ):
        checkpoints.normalize_state_dict({"fc.weight": np.zeros(1)}, "x.safetensors")
    with pytest.raises(CheckpointError, match="is a GhostNet v2/v3 checkpoint"):
        checkpoints.normalize_state_dict({**state, "blocks.3.0.ghost1.short_conv.0.weight": np.zeros(1)}, "v2.pth")
    with pytest.raises(
        CheckpointError, match=r"holds 1 tensor\(s\) a GhostNet or TinyNet does not have \(extra.weight\)"
    ):
        keras_model_from_state_dict({**state, "extra.weight": np.zeros(1)}, "ghostnet_100", True, "x")
    headless = {k: v for k, v in state.items() if not k.startswith("classifier")}
    with pytest.raises(CheckpointError, match=r"has no classifier .* convert it with include_top=False"):
        keras_model_from_state_dict(headless, "ghostnet_100", True, "x")
    with pytest.raises(ValueError, match=r"`source`='x' \(as `variant`='ghostnet_050'\).*'stem_conv'.*another variant"):
        keras_model_from_state_dict(state, "ghostnet_050", True, "x")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"variant": "ghostnet_a"},
            ValueError,
            r"`variant` must be one of ghostnet_050, .* received variant='ghostnet_a'\. GhostNet-A\.\.D have no timm",
        ),
        ({"variant": "resnet50"}, ValueError, r"received variant='resnet50'\.$"),
        (
            {"parity": "maybe"},
            ValueError,
            r"`parity` must be one of \('auto', 'require', 'skip'\); received parity='maybe'",
        ),
        (
            {"output": "out.h5"},
            ValueError,
            r"`output` must be a file name ending with '.weights.h5' .* received output='out.h5'",
        ),
        ({"base_url": "example.org"}, ValueError, r"`base_url` must be a URL .* received base_url='example.org'"),
        ({"top1": 0.0}, ValueError, r"`top1` must be a percentage in \(0, 100\]; received top1=0.0"),
        (
            {"source": "model.bin"},
            ValueError,
            r"`source` must be a .safetensors file, a .pth/.pt file or 'timm:<timm model name>'; "
            r"received source='model.bin'",
        ),
        (
            {"source": "missing.safetensors"},
            FileNotFoundError,
            r"`source` file not found: source='missing.safetensors'",
        ),
        ({"source": "timm:"}, ValueError, r"`source` 'timm:' must name a timm model after 'timm:'"),
        ({"source": "timm:../x"}, ValueError, r"must name a timm model"),
    ],
)
def test_arguments_are_checked_before_any_work(tmp_path, kwargs, error, message):
    arguments = {
        "source": "timm:ghostnet_100.in1k",
        "variant": "ghostnet_100",
        "output": str(tmp_path / "o.weights.h5"),
    }
    with pytest.raises(error, match=message):
        convert_checkpoint(**{**arguments, **kwargs})


def test_timm_names_are_parsed():
    assert checkpoints.parse_source("timm:ghostnet_100.in1k") == ("timm", "ghostnet_100.in1k")
    assert checkpoints.parse_source("timm:ghostnet_050") == ("timm", "ghostnet_050")


def test_script_errors_exit_non_zero_with_one_clear_line(tmp_path):
    result = run_script("--source", "x.safetensors", "--model", "ghostnet_100")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "keras-tinynet convert: error: --output_dir is required (where the .weights.h5 file goes)."
    )
    evil = tmp_path / "evil.pth"
    torch.save({"payload": _Payload(str(tmp_path / "unpickled"))}, evil)
    result = run_script("--source", str(evil), "--model", "ghostnet_100", "--output_dir", str(tmp_path))
    assert result.returncode == 2 and f"error: Refused to load --source='{evil}'" in result.stderr
    assert os.listdir(tmp_path) == ["evil.pth"]


def test_timm_source_offline_gives_a_clear_error(tmp_path):
    offline = {  # the Hub client refuses to connect, and any stray request goes to a closed local port
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    output = tmp_path / "ghostnet_100.weights.h5"
    result = run_script(
        "--source", "timm:ghostnet_100.in1k", "--model", "ghostnet_100", "--output_dir", str(tmp_path), env=offline
    )
    assert result.returncode == 1, result.stderr
    assert "error: Could not load the pretrained timm model --source='timm:ghostnet_100.in1k'" in result.stderr
    assert "needs the internet" in result.stderr and "pass that file as the source" in result.stderr
    assert not output.exists()


def test_timm_source_must_be_a_ghostnet_v1():
    with pytest.raises(
        ValueError,
        match=r"'timm:ghostnetv2_100.in1k' is not a timm GhostNet \(v1\) or TinyNet; allowed timm models: "
        r"ghostnet_100.in1k, tinynet_a.in1k, .*tinynet_e.in1k",
    ):
        checkpoints.load_timm_pretrained("ghostnetv2_100.in1k")  # refused before any download
    with pytest.raises(
        ValueError, match=r"`source`='timm:ghostnet_130' is timm's ghostnet_130, not `variant`='ghostnet_100'"
    ):
        convert_checkpoint("timm:ghostnet_130", "ghostnet_100", "unused.weights.h5", parity="skip")


def test_timm_after_tensorflow_is_an_error_not_a_crash(ckpt050, tmp_path):
    code = f"""
import keras
from keras_tinynet.convert import convert_checkpoint
try:
    convert_checkpoint({ckpt050["safetensors"]!r}, "ghostnet_050", {str(tmp_path / "o.weights.h5")!r}, parity="require")
except RuntimeError as error:
    print(error)
"""
    assert "timm must be imported before TensorFlow/Keras" in run_python(code).stdout


@pytest.mark.slow
def test_script_end_to_end_then_the_printed_registry_serves_its_tag(ckpt050, tmp_path, monkeypatch):
    published = tmp_path / "published"
    output = published / "ghostnet_050.weights.h5"
    result = run_script(
        "--source",
        ckpt050["safetensors"],
        "--model",
        "ghostnet_050",
        "--output_dir",
        str(published),
        "--base_url",
        published.as_uri(),
        "--license",
        "apache-2.0",
        "--top1",
        "55.5",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert f"sha256 {file_hash(output)}" in lines
    assert any(line.startswith("parity check against timm: max |logits difference|") for line in lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("registry entry")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i] == "}") + 1
    document = json.loads("\n".join(lines[start:end]))
    entry = document["weights"]["ghostnet_050"]["converted"]
    assert (entry["top1"], entry["license"]) == (55.5, "apache-2.0")
    assert f"use it now: keras_tinynet.GhostNet050(weights={str(output)!r})" in lines
    # Publishing: the printed registry, saved as it is.
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(document))
    monkeypatch.setenv(registry.REGISTRY_ENV, str(registry_file))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    model = keras_tinynet.GhostNet050(weights="converted", classifier_activation=None)
    assert checkpoints.parity_difference(model, ckpt050["model"], "ghostnet_050", include_top=True) <= 1e-4


def test_timm_source_path_with_the_download_replaced(tmp_path, monkeypatch):
    """The `timm:` path after the download: timm's own pretrained config gives the license and top-1."""
    create_model = timm.create_model
    calls = []

    def offline_create_model(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        return create_model(name, pretrained=False, **kwargs)  # same model and pretrained_cfg, random weights

    monkeypatch.setattr(timm, "create_model", offline_create_model)
    output = tmp_path / "ghostnet_100.weights.h5"
    result = convert_checkpoint("timm:ghostnet_100.in1k", "ghostnet_100", str(output), parity="require")
    assert calls == [("ghostnet_100.in1k", True)]
    assert result.parity_diff <= 1e-4
    entry = result.entry["ghostnet_100"]["imagenet"]
    assert (entry["source"], entry["license"], entry["top1"]) == ("timm:ghostnet_100.in1k", "apache-2.0", 73.96)
