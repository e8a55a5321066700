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
import re
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

VARIANT, TINYNET = "ghostnet_050", "tinynet_e"
TIMM_FILE, KCAM_FILE = "ghostnet_050.in1k.safetensors", "ghostnet_050_imagenet.h5"
TINYNET_TIMM_FILE, TINYNET_KCAM_FILE = "tinynet_e.in1k.safetensors", "tinynet_e_imagenet.h5"
BUILDERS = {VARIANT: keras_tinynet.GhostNet050, TINYNET: keras_tinynet.TinyNetE}
FULL = {VARIANT: 224, TINYNET: 106}  # the top needs the default size
SMALL = 64  # features are compared at a small one
TOLERANCE = 1e-4
# One interpreter writes every kcam file (TensorFlow starts once). The features are the output of the
# layer that ends this package's include_top=False model (the final 1x1 conv's activation).
KCAM_WRITER = """
import os, sys
import numpy as np
from keras_cv_attention_models.backend import models
from keras_cv_attention_models.ghostnet import ghostnet
from keras_cv_attention_models.mobilenetv3_family import tinynet
from keras_cv_attention_models.download_and_load import reload_model_weights
out, seed = sys.argv[1], 0
rng = np.random.default_rng(seed)
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
for builder, file, size, classifier, features_layer in (
    (ghostnet.GhostNet_050, "ghostnet_050_imagenet.h5", 224, "head", "pre_relu"),
    (tinynet.TinyNetE, "tinynet_e_imagenet.h5", 106, "predictions", "features_swish"),
):
    model = builder(input_shape=(size, size, 3), pretrained=None, classifier_activation=None)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            statistics = [rng.normal(0, 0.2, c), rng.uniform(0.5, 2, c)]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), *statistics])
    head = model.get_layer(classifier)
    head.set_weights([head.get_weights()[0] * 20, rng.normal(0, 0.5, head.get_weights()[1].shape)])
    path = os.path.join(out, file)
    model.save_weights(path)  # kcam's published files are tf.keras .h5
    small = builder(input_shape=(64, 64, 3), pretrained=None, classifier_activation=None)
    reload_model_weights(small, {}, "", pretrained=path)  # kcam's own loader
    features = models.Model(small.input, small.get_layer(features_layer).output)
    for name, m, s in (("logits", model, size), ("features", features, 64)):
        x = np.load(os.path.join(out, f"images_{s}.npy"))
        outputs = m.predict(((x / 255 - mean) / std).astype("float32"), verbose=0)
        np.save(os.path.join(out, file.replace(".h5", f"_{name}.npy")), outputs)
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


def write_timm_source(root, variant, file):
    """A random timm model saved as `file`; returns its (logits, NHWC features) on the fixed images."""
    import safetensors.torch
    import torch

    torch.manual_seed(0)
    model = timm.create_model(variant).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
        model.classifier.weight.mul_(20)
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, root / file)
        logits = model(torch.from_numpy(normalized_nchw(images(FULL[variant])))).numpy()
        features = model.forward_features(torch.from_numpy(normalized_nchw(images(SMALL)))).numpy()
    return logits, features.transpose(0, 2, 3, 1)


def read_kcam_outputs(root, file):
    return tuple(np.load(root / file.replace(".h5", f"_{name}.npy")) for name in ("logits", "features"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """timm and kcam GhostNet 0.5x and TinyNet-E sources, the writers' outputs on fixed images (by file name),
    and a server for them."""
    root = tmp_path_factory.mktemp("served")
    for size in (*FULL.values(), SMALL):
        np.save(root / f"images_{size}.npy", images(size))
    run_python(KCAM_WRITER.replace("sys.argv[1]", repr(str(root))), timeout=300)
    outputs = {
        TIMM_FILE: write_timm_source(root, VARIANT, TIMM_FILE),
        TINYNET_TIMM_FILE: write_timm_source(root, TINYNET, TINYNET_TIMM_FILE),
        KCAM_FILE: read_kcam_outputs(root, KCAM_FILE),
        TINYNET_KCAM_FILE: read_kcam_outputs(root, TINYNET_KCAM_FILE),
    }
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
            **outputs,
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


def use_registry(tmp_path, monkeypatch, tags, variant=VARIANT, **other_variants):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"format": 2, "weights": {variant: tags, **other_variants}}))
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    return path


@pytest.fixture
def registered(served, tmp_path, monkeypatch):
    """GhostNet 0.5x: timm as 'imagenet', kcam as 'imagenet_ssld'; TinyNet-E: kcam as 'imagenet' (as shipped),
    timm as 'imagenet_timm'."""
    use_registry(
        tmp_path,
        monkeypatch,
        {"imagenet": entry(served, TIMM_FILE), "imagenet_ssld": entry(served, KCAM_FILE)},
        tinynet_e={"imagenet": entry(served, TINYNET_KCAM_FILE), "imagenet_timm": entry(served, TINYNET_TIMM_FILE)},
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


@pytest.mark.parametrize(
    "variant, tag, file",
    [
        (VARIANT, "imagenet", TIMM_FILE),
        (VARIANT, "imagenet_ssld", KCAM_FILE),
        (TINYNET, "imagenet", TINYNET_KCAM_FILE),
        (TINYNET, "imagenet_timm", TINYNET_TIMM_FILE),
    ],
)
def test_tag_downloads_verifies_converts_caches_and_matches_the_writer(registered, isolated, variant, tag, file):
    logits, features = registered[file]
    model = BUILDERS[variant](weights=tag, classifier_activation=None)
    assert registered["counts"] == Counter({f"/{file}": 1})
    assert max_difference(model, FULL[variant], logits) <= TOLERANCE and np.abs(logits).max() > 1
    digest_start = registry_lib.load_registry()[variant][tag]["hash"][:12]
    assert cached_files(isolated) == sorted([file, f"{variant}_{tag}-{digest_start}.weights.h5"])
    backbone = BUILDERS[variant](weights=tag, include_top=False, input_shape=(SMALL, SMALL, 3))
    assert max_difference(backbone, SMALL, features) <= TOLERANCE
    assert registered["counts"] == Counter({f"/{file}": 1})  # the second load read the cache only


@pytest.mark.parametrize("variant, file", [(VARIANT, TIMM_FILE), (VARIANT, KCAM_FILE), (TINYNET, TINYNET_KCAM_FILE)])
def test_weights_path_of_a_source_checkpoint(served, variant, file):
    model = BUILDERS[variant](weights=str(served["root"] / file), classifier_activation=None)
    assert max_difference(model, FULL[variant], served[file][0]) <= TOLERANCE


def test_wrong_hash_is_refused_and_not_cached(served, tmp_path, monkeypatch, isolated):
    url = f"{served['base']}/{KCAM_FILE}"
    use_registry(tmp_path, monkeypatch, {"imagenet": entry(served, KCAM_FILE, hash="0" * 32)})
    with pytest.raises(WeightsDownloadError) as error:
        keras_tinynet.GhostNet050(weights="imagenet")
    message = str(error.value)
    for part in (repr(VARIANT), url, "0" * 32, digest(served["root"] / KCAM_FILE, "md5")):
        assert part in message, message
    assert "Offline" not in message and f"Set ${MIRROR_ENV}" in message  # the server answered: no network hint
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
    with pytest.raises(WeightsDownloadError, match=r"no answer for 0.5 s.*Offline or behind a firewall\?"):
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
        (
            "TinyNetE",
            "imagenet_ssld",
            r"No weights='imagenet_ssld' for model 'tinynet_e': 'tinynet_e' has weights='imagenet'\. .*"
            r"tinynet_a \(imagenet, imagenet_kcam\), .* tinynet_e \(imagenet\)\.$",
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


# TinyNet-A..E: timm's tinynet_a.in1k (sha256 of its model.safetensors) and keras_cv_attention_models' files.
TINYNET_HASHES = {
    ("tinynet_a", "imagenet"): ("sha256", "5d9911de836222b28e99095dff561a6600f354c05b61ea179aaa848a830bc3ca"),
    ("tinynet_a", "imagenet_kcam"): ("md5", "ccffe4208feb4e9573834ab9cd4074e8"),
    ("tinynet_b", "imagenet"): ("md5", "4888c408c2ac69bf7824da383c58d52d"),
    ("tinynet_c", "imagenet"): ("md5", "29ce15979b8800176621780b0ea91eaa"),
    ("tinynet_d", "imagenet"): ("md5", "e08615d88e71f1548d040e697926514e"),
    ("tinynet_e", "imagenet"): ("md5", "514fbbcd582db6d4297a140efb84af9a"),
}


def test_shipped_registry_has_the_six_tinynet_entries():
    weights = registry_lib.load_registry()
    shipped = {(variant, tag): item for variant, tags in weights.items() for tag, item in tags.items()}
    assert {key for key in shipped if key[0].startswith("tinynet")} == set(TINYNET_HASHES)
    for key, (algorithm, digest_hex) in TINYNET_HASHES.items():
        assert (shipped[key]["hash_algorithm"], shipped[key]["hash"]) == (algorithm, digest_hex), key
        assert shipped[key]["size"] is None and shipped[key]["max_size"]  # no size known: a cap bounds the download
    assert shipped["tinynet_a", "imagenet"]["url"] == (
        "https://huggingface.co/timm/tinynet_a.in1k/resolve/main/model.safetensors"
    )


def kcam_pinned_files() -> dict:
    """`{url: md5}` of every file keras_cv_attention_models pins, read from its source (importing it would
    switch this process to tf-keras): its PRETRAINED_DICTs and the URL pattern of `reload_model_weights`."""
    import ast
    import pathlib

    package = pathlib.Path(importlib.util.find_spec("keras_cv_attention_models").submodule_search_locations[0])
    pattern = "https://github.com/leondgarse/keras_cv_attention_models/releases/download/{}/{}_{}.h5"
    assert pattern in (package / "download_and_load.py").read_text()
    pinned = {}
    for path in package.rglob("*.py"):
        text = path.read_text()
        release = re.search(r'reload_model_weights\(\w+, PRETRAINED_DICT, "(\w+)"', text)
        if release is None:
            continue
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PRETRAINED_DICT":
                for model, tags in ast.literal_eval(node.value).items():
                    for tag, md5 in tags.items():
                        if isinstance(md5, str):
                            pinned[pattern.format(release.group(1), model, tag)] = md5
    return pinned


def test_shipped_kcam_entries_are_the_files_and_md5s_kcam_pins():
    pinned = kcam_pinned_files()
    entries = [item for tags in registry_lib.load_registry().values() for item in tags.values()]
    kcam = [item for item in entries if item["format"] == "kcam_h5"]
    assert len(kcam) == 8  # GhostNet 0.5x, 1.3x, 1.3x SSLD; TinyNet-A..E
    for item in kcam:
        assert pinned.get(item["url"]) == item["hash"], item["url"]
        assert item["url"].endswith("/" + item["file"])


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


def test_kcam_tinynet_blocks_are_numbered_in_numeric_stack_order():
    from keras_tinynet.weights.kcam_mapping import from_kcam_weights

    def layer(marker):
        return [np.full((3, 3, 8, 1), marker)]

    layers = {"stem_conv": layer(0), "stack10_block1_MB_dw_": layer(3), "stack2_block2_MB_dw_": layer(2)}
    renamed = from_kcam_weights({**layers, "stack2_block1_MB_dw_": layer(1), "features_bn": layer(4)}, "x.h5")
    markers = {name: arrays[0].flat[0] for name, arrays in renamed.items()}
    assert markers == {"stem_conv": 0, "block0_dw_conv": 1, "block1_dw_conv": 2, "block2_dw_conv": 3, "final_bn": 4}
    with pytest.raises(ValueError, match=r"x.h5 holds 1 layer\(s\) a kcam TinyNet does not have \(stack1_block1_x\)"):
        from_kcam_weights({**layers, "stack1_block1_x": layer(5)}, "x.h5")
