"""weights=<tag>: published sources served from 127.0.0.1, verified, converted, cached; the download's limits.

The sources are written by the implementations that publish them, with random weights and randomized
BN statistics: timm writes the `.safetensors` (in this process: conftest imports timm first) and
keras_cv_attention_models writes its `.h5` in a subprocess (it switches TensorFlow to tf-keras, which
it needs, before anything else imports Keras). Each writer's own model gives the expected outputs.
The Keras cache is a temporary KERAS_HOME, never ~/.keras.
"""

import functools
import hashlib
import http.server
import importlib.util
import json
import os
import socket
import threading
import time
import zipfile
from collections import Counter

import numpy as np
import pytest
from conftest import run_python, timm

import keras_tinynet
from keras_tinynet.spec import IMAGENET_PREPROCESSING
from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights.download import TIMEOUT_ENV, download_timeout, size_limit
from keras_tinynet.weights.registry import MIRROR_ENV, REGISTRY_ENV, WeightsDownloadError

pytestmark = pytest.mark.skipif(
    timm is None or importlib.util.find_spec("keras_cv_attention_models") is None,
    reason="needs the `parity` extra (torch, timm, keras-cv-attention-models)",
)

VARIANT = "ghostnet_050"
TIMM_FILE, KCAM_FILE = "ghostnet_050.in1k.safetensors", "ghostnet_050_imagenet.h5"
FULL, SMALL = 224, 64  # the top needs the default size; features are compared at a small one
TOLERANCE = 1e-4
KCAM_WRITER = """
import os, sys
import numpy as np
from keras_cv_attention_models.ghostnet import ghostnet
from keras_cv_attention_models.download_and_load import reload_model_weights
out, seed = sys.argv[1], 0
rng = np.random.default_rng(seed)
model = ghostnet.GhostNet_050(input_shape=(224, 224, 3), pretrained=None, classifier_activation=None)
for layer in model.layers:
    if layer.__class__.__name__ == "BatchNormalization":
        c = layer.gamma.shape[0]
        statistics = [rng.normal(0, 0.2, c), rng.uniform(0.5, 2, c)]
        layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), *statistics])
head = model.get_layer("head")
head.set_weights([head.get_weights()[0] * 20, rng.normal(0, 0.5, head.get_weights()[1].shape)])
model.save_weights(os.path.join(out, "ghostnet_050_imagenet.h5"))  # kcam's published files are tf.keras .h5
features = ghostnet.GhostNet_050(input_shape=(64, 64, 3), pretrained=None, num_classes=0)
reload_model_weights(features, {}, "ghostnetv2", pretrained=os.path.join(out, "ghostnet_050_imagenet.h5"))
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
for name, m, size in (("logits", model, 224), ("features", features, 64)):
    x = np.load(os.path.join(out, f"images_{size}.npy"))
    np.save(os.path.join(out, f"kcam_{name}.npy"), m.predict(((x / 255 - mean) / std).astype("float32"), verbose=0))
"""


def digest(path, algorithm="sha256"):
    return hashlib.new(algorithm, open(path, "rb").read()).hexdigest()


def images(size):
    return np.random.default_rng(size).uniform(0, 255, (2, size, size, 3)).astype("float32")


def normalized_nchw(x):
    mean, std = np.asarray(IMAGENET_PREPROCESSING.mean), np.asarray(IMAGENET_PREPROCESSING.std)
    return np.ascontiguousarray(((x / 255 - mean) / std).transpose(0, 3, 1, 2)).astype("float32")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; `/hang/...` never answers (3 s at most), `/flood/...` streams up to 200 MB."""

    counts: Counter

    def do_GET(self):
        self.counts[self.path] += 1
        if self.path.startswith("/hang/"):
            time.sleep(3)
            self.close_connection = True
            return
        if self.path.startswith("/flood/"):
            self.send_response(200)
            self.end_headers()
            chunk = b"\0" * (1 << 20)
            for _ in range(200):
                try:
                    self.wfile.write(chunk)
                except OSError:
                    break
                self.counts["flood bytes"] += len(chunk)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A timm and a kcam GhostNet 0.5x source, the writers' outputs on fixed images, and a server for them."""
    import safetensors.torch
    import torch

    root = tmp_path_factory.mktemp("served")
    for size in (FULL, SMALL):
        np.save(root / f"images_{size}.npy", images(size))
    run_python(KCAM_WRITER.replace("sys.argv[1]", repr(str(root))), timeout=300)

    torch.manual_seed(0)
    model = timm.create_model(VARIANT).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
        model.classifier.weight.mul_(20)
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, root / TIMM_FILE)
        timm_logits = model(torch.from_numpy(normalized_nchw(images(FULL)))).numpy()
        timm_features = model.forward_features(torch.from_numpy(normalized_nchw(images(SMALL)))).numpy()
    counts = Counter()
    handler = functools.partial(type("Handler", (_Handler,), {"counts": counts}), directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield {
            "root": root,
            "base": f"http://127.0.0.1:{server.server_address[1]}",
            "counts": counts,
            "timm": (timm_logits, timm_features.transpose(0, 2, 3, 1)),
            "kcam": (np.load(root / "kcam_logits.npy"), np.load(root / "kcam_features.npy")),
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def entry(served, file, url=None, **overrides):
    path = served["root"] / file
    timm_source = file.endswith(".safetensors")
    algorithm = "sha256" if timm_source else "md5"
    return {
        "file": file,
        "url": url or f"{served['base']}/{file}",
        "format": "timm_safetensors" if timm_source else "kcam_h5",
        "hash_algorithm": algorithm,
        "hash": digest(path, algorithm),
        "size": path.stat().st_size,
        "source": "test",
        "license": "Apache-2.0",
        "top1": 50.0,
        **overrides,
    }


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh, not yet existing KERAS_HOME per test, and no registry/mirror/timeout from the environment."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    for name in (MIRROR_ENV, REGISTRY_ENV, TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    return home


def use_registry(tmp_path, monkeypatch, tags):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"format": 2, "weights": {VARIANT: tags}}))
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    return path


@pytest.fixture
def registered(served, tmp_path, monkeypatch):
    use_registry(
        tmp_path, monkeypatch, {"imagenet": entry(served, TIMM_FILE), "imagenet_ssld": entry(served, KCAM_FILE)}
    )
    served["counts"].clear()
    return served


def cache(home):
    return home / "models" / "keras_tinynet"


def cached_files(home):
    """Everything in the cache folder, staged files included."""
    return sorted(os.listdir(cache(home))) if cache(home).is_dir() else []


def max_difference(model, size, expected):
    return float(np.max(np.abs(np.asarray(model(images(size))) - expected)))


@pytest.mark.parametrize("tag, writer, file", [("imagenet", "timm", TIMM_FILE), ("imagenet_ssld", "kcam", KCAM_FILE)])
def test_tag_downloads_verifies_converts_caches_and_matches_the_writer(registered, isolated, tag, writer, file):
    logits, features = registered[writer]
    model = keras_tinynet.GhostNet050(weights=tag, classifier_activation=None)
    assert registered["counts"] == Counter({f"/{file}": 1})
    assert max_difference(model, FULL, logits) <= TOLERANCE and np.abs(logits).max() > 1
    digest_start = registry_lib.load_registry()[VARIANT][tag]["hash"][:12]
    assert cached_files(isolated) == sorted([file, f"{VARIANT}_{tag}-{digest_start}.weights.h5"])
    backbone = keras_tinynet.GhostNet050(weights=tag, include_top=False, input_shape=(SMALL, SMALL, 3))
    assert max_difference(backbone, SMALL, features) <= TOLERANCE
    assert registered["counts"] == Counter({f"/{file}": 1})  # the second load read the cache only


@pytest.mark.parametrize("writer, file", [("timm", TIMM_FILE), ("kcam", KCAM_FILE)])
def test_weights_path_of_a_source_checkpoint(served, writer, file):
    model = keras_tinynet.GhostNet050(weights=str(served["root"] / file), classifier_activation=None)
    assert max_difference(model, FULL, served[writer][0]) <= TOLERANCE


def test_wrong_hash_is_refused_and_not_cached(served, tmp_path, monkeypatch, isolated):
    url = f"{served['base']}/{KCAM_FILE}"
    use_registry(tmp_path, monkeypatch, {"imagenet": entry(served, KCAM_FILE, hash="0" * 32)})
    with pytest.raises(WeightsDownloadError) as error:
        keras_tinynet.GhostNet050(weights="imagenet")
    message = str(error.value)
    for part in (repr(VARIANT), url, "0" * 32, digest(served["root"] / KCAM_FILE, "md5")):
        assert part in message, message
    assert cached_files(isolated) == []


def test_a_flood_is_cut_off_near_the_registered_size(served, tmp_path, monkeypatch, isolated):
    size = 3 << 20
    use_registry(
        tmp_path, monkeypatch, {"imagenet": entry(served, KCAM_FILE, url=f"{served['base']}/flood/x", size=size)}
    )
    served["counts"].clear()
    with pytest.raises(WeightsDownloadError, match=rf"more than {size_limit(size)} bytes .* Nothing was cached"):
        registry_lib.fetch(registry_lib.resolve_entry(VARIANT, "imagenet"))
    time.sleep(0.5)
    assert served["counts"]["flood bytes"] < size + (8 << 20)  # the server stopped far below its 200 MB
    assert cached_files(isolated) == []


def test_a_hanging_server_times_out_within_the_configured_time(served, tmp_path, monkeypatch, isolated):
    use_registry(tmp_path, monkeypatch, {"imagenet": entry(served, KCAM_FILE, url=f"{served['base']}/hang/x")})
    monkeypatch.setenv(TIMEOUT_ENV, "0.5")
    start = time.monotonic()
    with pytest.raises(WeightsDownloadError, match=r"no answer for 0.5 s"):
        registry_lib.fetch(registry_lib.resolve_entry(VARIANT, "imagenet"))
    assert time.monotonic() - start < 2.5
    start = time.monotonic()
    with pytest.raises(WeightsDownloadError, match=r"no answer for 0.3 s"):  # the argument wins over the variable
        registry_lib.fetch(registry_lib.resolve_entry(VARIANT, "imagenet"), timeout=0.3)
    assert time.monotonic() - start < 2.5


def test_timeout_setting_is_checked(monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=rf"\${TIMEOUT_ENV} must be a positive number of seconds; received 'soon'"):
        download_timeout()
    with pytest.raises(ValueError, match=r"`timeout` must be a positive number of seconds; received -1"):
        download_timeout(-1)


def test_a_symlink_planted_at_the_cache_path_is_replaced_never_written_through(registered, isolated, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    cache(isolated).mkdir(parents=True)
    os.symlink(victim, cache(isolated) / KCAM_FILE)
    path = registry_lib.fetch(registry_lib.resolve_entry(VARIANT, "imagenet_ssld"))
    assert victim.read_bytes() == b"keep me"
    assert not os.path.islink(path) and digest(path, "md5") == digest(registered["root"] / KCAM_FILE, "md5")


def test_mirror_serves_the_file_names(served, tmp_path, monkeypatch, isolated):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/x.h5"
    use_registry(tmp_path, monkeypatch, {"imagenet": entry(served, KCAM_FILE, url=dead)})
    monkeypatch.setenv(MIRROR_ENV, served["root"].as_uri())
    assert registry_lib.fetch(registry_lib.resolve_entry(VARIANT, "imagenet")) == str(cache(isolated) / KCAM_FILE)


@pytest.mark.parametrize(
    "builder, weights, message",
    [
        ("GhostNetD", "imagenet", r"No weights='imagenet' for model 'ghostnet_d': no ImageNet checkpoint .* published"),
        (
            "GhostNet100",
            "imagenet_ssld",
            r"'ghostnet_100' has weights='imagenet'.* ghostnet_130 \(imagenet, imagenet_ssld\)",
        ),
        (
            "GhostNet050",
            "imagenet_21k",
            r"unknown tag weights='imagenet_21k' \('ghostnet_050' has weights='imagenet'\)",
        ),
    ],
)
def test_tags_without_an_entry_are_one_line_errors(builder, weights, message):
    with pytest.raises(ValueError, match=message) as error:
        getattr(keras_tinynet, builder)(weights=weights)
    assert "\n" not in str(error.value)


def test_shipped_registry_names_the_published_sources():
    weights = registry_lib.load_registry()
    assert not set(weights) & set(registry_lib.NEVER_PUBLISHED)
    assert (
        weights["ghostnet_100"]["imagenet"]["hash"]
        == "8efbcf55d97872c828768b096d4ebebc51f8b7e29623fd3b3933d78cc230e2e2"
    )
    assert weights["ghostnet_130"]["imagenet_ssld"]["hash_algorithm"] == "md5"
    for tags in weights.values():
        for item in tags.values():
            assert item["url"].startswith("https://") and item["top1"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": 1}, r"`format` must be 2; received 1"),
        ({"variant": "ghostnet_a"}, r"'ghostnet_a' has no published checkpoint"),
        ({"entry": {"hash": "abc"}}, r"\['hash'\] must be 32 lowercase hexadecimal digits \(a published md5\)"),
        ({"entry": {"hash_algorithm": "crc32"}}, r"\['hash_algorithm'\] must be one of \('sha256', 'md5'\)"),
        ({"entry": {"format": "onnx"}}, r"\['format'\] must be one of"),
        ({"entry": {"size": None}}, r"\['max_size'\] must be a positive number of bytes where `size` is null"),
        ({"drop": "hash"}, r"lacks 'hash'"),
    ],
)
def test_invalid_registries_are_refused_clearly(served, tmp_path, change, message):
    item = entry(served, KCAM_FILE)
    item.update(change.get("entry", {}))
    item.pop(change.get("drop"), None)
    document = {"format": change.get("format", 2), "weights": {change.get("variant", VARIANT): {"imagenet": item}}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message) as error:
        registry_lib.load_registry(path)
    assert str(path) in str(error.value)


def bad_file(tmp_path, kind):
    if kind == "text.weights.h5":
        (tmp_path / kind).write_text("not hdf5")
    elif kind == "text.keras":
        (tmp_path / kind).write_text("not a zip")
    elif kind == "noconfig.keras":
        with zipfile.ZipFile(tmp_path / kind, "w") as archive:
            archive.writestr("metadata.json", "{}")
    else:
        (tmp_path / kind).mkdir()
    return str(tmp_path / kind)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text.weights.h5", "is not a readable HDF5 weights file"),
        ("text.keras", r"is not a \.keras archive"),
        ("noconfig.keras", "'config.json'.* is missing"),
        ("folder", "is a directory"),
    ],
)
def test_bad_weights_files_name_the_argument_and_the_path(tmp_path, build_cached, kind, message):
    from keras_tinynet.weights.loading import load_weights

    path = bad_file(tmp_path, kind)
    with pytest.raises(ValueError, match=message) as error:
        load_weights(build_cached(VARIANT), path)
    assert f"weights={path!r}" in str(error.value)


def test_source_file_of_another_width_names_the_argument(served, build_cached):
    from keras_tinynet.weights.loading import load_weights

    path = str(served["root"] / TIMM_FILE)
    with pytest.raises(
        ValueError, match=r"layer 'stem_conv' .* \(3, 3, 3, 16\) in the model but \(3, 3, 3, 8\)"
    ) as error:
        load_weights(build_cached("ghostnet_100"), path)
    assert f"weights={path!r}" in str(error.value)
