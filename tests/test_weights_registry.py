"""weights="imagenet": the registry, the verified download from a local HTTP server, the cache, the mirror.

Everything is served from 127.0.0.1; the Keras cache is a temporary KERAS_HOME, never ~/.keras.
"""

import functools
import hashlib
import http.server
import json
import os
import socket
import threading
from collections import Counter

import keras
import numpy as np
import pytest

import keras_tinynet
import keras_tinynet.models  # noqa: F401  (conftest.build_cached reaches keras_tinynet.models)
from keras_tinynet.weights import registry as registry_lib
from keras_tinynet.weights.loading import load_imagenet_weights, load_weights
from keras_tinynet.weights.registry import MIRROR_ENV, REGISTRY_ENV, WeightsDownloadError

VARIANT = "ghostnet_050"
TOP, NOTOP = "ghostnet_050.weights.h5", "ghostnet_050_notop.weights.h5"


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; `/short/<file>` announces the full length but sends half (a cut transfer)."""

    hits: Counter

    def do_GET(self):
        self.hits[self.path] += 1
        if self.path.startswith("/short/"):
            data = open(os.path.join(self.directory, self.path[len("/short/") :]), "rb").read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory, build_cached):
    """Weight files of ghostnet_050 (top and notop), a truncated copy, and a server for them."""
    root = tmp_path_factory.mktemp("served")
    build_cached(VARIANT).save_weights(root / TOP)
    build_cached(VARIANT, include_top=False).save_weights(root / NOTOP)
    (root / "truncated").mkdir()
    (root / "truncated" / TOP).write_bytes((root / TOP).read_bytes()[:100_000])
    hits = Counter()
    handler = functools.partial(type("Handler", (_Handler,), {"hits": hits}), directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 10
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield {"root": root, "base": f"http://127.0.0.1:{server.server_address[1]}", "hits": hits}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh, not yet existing KERAS_HOME per test, and no registry/mirror from the environment."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    return home


def entry(served, file, url=..., **overrides):
    path = served["root"] / file
    return {
        "file": file,
        "url": f"{served['base']}/{file}" if url is ... else url,
        "sha256": sha256(path),
        "size": path.stat().st_size,
        "source": "test",
        "license": "apache-2.0",
        "top1": None,
        **overrides,
    }


def use_registry(tmp_path, monkeypatch, weights):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"format": 1, "weights": weights}))
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    return path


@pytest.fixture
def registered(served, tmp_path, monkeypatch):
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP), "notop": entry(served, NOTOP)}})
    served["hits"].clear()
    return served


def cached(home, file=TOP):
    return home / "models" / "keras_tinynet" / file


def images(size=224):
    return np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")


def test_shipped_registry_is_valid_and_has_no_invented_entries():
    weights = registry_lib.load_registry()
    for variant in ("ghostnet_a", "ghostnet_b", "ghostnet_c", "ghostnet_d"):
        assert variant not in weights  # no public ImageNet checkpoint of GhostNet-A..D exists
    for kinds in weights.values():
        for item in kinds.values():
            assert item["url"] and item["source"] and item["license"]


def test_imagenet_downloads_verifies_caches_and_loads(registered, build_cached, isolated):
    x = images()
    model = keras_tinynet.GhostNet050(weights="imagenet")
    assert cached(isolated).is_file()  # in the (not yet existing) KERAS_HOME, not a temporary folder
    assert registered["hits"][f"/{TOP}"] == 1
    direct = keras_tinynet.GhostNet050(weights=str(registered["root"] / TOP))
    np.testing.assert_array_equal(model(x), direct(x))
    np.testing.assert_allclose(model(x), build_cached(VARIANT)(x), atol=1e-6)  # the model that wrote the file
    keras_tinynet.GhostNet050(weights="imagenet")  # from the cache
    assert registered["hits"][f"/{TOP}"] == 1


def test_include_top_false_loads_the_notop_file(registered, build_cached, isolated):
    x = images(96)
    model = keras_tinynet.GhostNet050(include_top=False, weights="imagenet", input_shape=(96, 96, 3))
    assert registered["hits"] == Counter({f"/{NOTOP}": 1})
    np.testing.assert_allclose(model(x), build_cached(VARIANT, include_top=False)(x), atol=1e-6)


def check_message(error, url, variant=VARIANT):
    message = str(error.value)
    assert repr(variant) in message and url in message, message
    return message


def test_wrong_hash_is_fetched_again_once_then_a_clear_error(served, tmp_path, monkeypatch, isolated, build_cached):
    url = f"{served['base']}/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, sha256="0" * 64)}})
    served["hits"].clear()
    with pytest.raises(WeightsDownloadError) as error:
        load_imagenet_weights(build_cached(VARIANT), VARIANT, True)
    message = check_message(error, url)
    assert "failed verification" in message and sha256(served["root"] / TOP) in message
    assert served["hits"][f"/{TOP}"] == 2
    assert not cached(isolated).exists()  # the bad file does not stay in the cache


def test_truncated_file_on_the_server(served, tmp_path, monkeypatch, isolated):
    url = f"{served['base']}/truncated/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=url)}})
    with pytest.raises(WeightsDownloadError) as error:
        registry_lib.fetch_weights(VARIANT, True)
    assert "truncated (100000 of" in check_message(error, url)
    assert not cached(isolated).exists()


def test_transfer_cut_short_is_retried_once_then_a_clear_error(served, tmp_path, monkeypatch, isolated):
    url = f"{served['base']}/short/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=url)}})
    served["hits"].clear()
    with pytest.raises(WeightsDownloadError) as error:
        registry_lib.fetch_weights(VARIANT, True)
    assert "cut short" in check_message(error, url)
    assert served["hits"][f"/short/{TOP}"] == 2
    assert not cached(isolated).exists()


def test_404_is_a_clear_error(served, tmp_path, monkeypatch):
    url = f"{served['base']}/missing/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=url)}})
    with pytest.raises(WeightsDownloadError) as error:
        keras_tinynet.GhostNet050(weights="imagenet")
    assert "HTTP error 404" in check_message(error, url)


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_is_a_clear_error(served, tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=url)}})
    with pytest.raises(WeightsDownloadError) as error:
        registry_lib.fetch_weights(VARIANT, True)
    assert "could not be reached" in check_message(error, url)


def test_corrupt_cached_file_is_fetched_again_once(registered, isolated, tmp_path, monkeypatch):
    path = cached(isolated)
    path.parent.mkdir(parents=True)
    path.write_bytes((registered["root"] / TOP).read_bytes()[:5000])
    assert registry_lib.fetch_weights(VARIANT, True) == str(path)
    assert sha256(path) == sha256(registered["root"] / TOP)
    assert registered["hits"][f"/{TOP}"] == 1
    # A corrupt cached file and a server with a bad file: one more fetch, then the error.
    path.write_bytes(b"corrupt")
    url = f"{registered['base']}/truncated/{TOP}"
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(registered, TOP, url=url)}})
    with pytest.raises(WeightsDownloadError) as error:
        registry_lib.fetch_weights(VARIANT, True)
    check_message(error, url)
    assert registered["hits"][f"/truncated/{TOP}"] == 1
    assert not path.exists()


def test_mirror_replaces_the_registry_urls(served, tmp_path, monkeypatch, isolated):
    dead = f"http://127.0.0.1:{closed_port()}/{TOP}"
    use_registry(
        tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=dead), "notop": entry(served, NOTOP, url=None)}}
    )
    monkeypatch.setenv(MIRROR_ENV, served["base"] + "/")
    served["hits"].clear()
    assert registry_lib.resolve_entry(VARIANT, True).url == f"{served['base']}/{TOP}"
    registry_lib.fetch_weights(VARIANT, True)
    registry_lib.fetch_weights(VARIANT, False)  # an entry without url is served by the mirror
    assert served["hits"] == Counter({f"/{TOP}": 1, f"/{NOTOP}": 1})
    # A local folder works as a mirror too.
    monkeypatch.setenv(MIRROR_ENV, served["root"].as_uri())
    assert registry_lib.fetch_weights(VARIANT, True, cache_dir=tmp_path / "other") == str(cached(tmp_path / "other"))
    monkeypatch.setenv(MIRROR_ENV, "mirror.example/weights")
    with pytest.raises(ValueError, match=rf"\${MIRROR_ENV} must be a base URL .* received 'mirror.example/weights'"):
        registry_lib.fetch_weights(VARIANT, True)


def test_entry_without_url_needs_a_mirror(served, tmp_path, monkeypatch):
    use_registry(tmp_path, monkeypatch, {VARIANT: {"top": entry(served, TOP, url=None)}})
    with pytest.raises(ValueError, match=rf"'ghostnet_050' with include_top=True has no url .* set \${MIRROR_ENV}"):
        registry_lib.fetch_weights(VARIANT, True)


def test_unregistered_variant_is_an_error_never_random_weights(registered, tmp_path):
    with pytest.raises(
        ValueError, match="No ImageNet weights are registered for 'ghostnet_d' with include_top=True"
    ) as error:
        keras_tinynet.GhostNetD(weights="imagenet")
    assert "ghostnet_050 (top, notop)" in str(error.value) and str(tmp_path / "registry.json") in str(error.value)
    assert registered["hits"] == Counter()


def test_registry_from_an_argument(served, tmp_path, isolated):
    path = tmp_path / "explicit.json"
    path.write_text(json.dumps({"format": 1, "weights": {VARIANT: {"top": entry(served, TOP)}}}))
    assert registry_lib.fetch_weights(VARIANT, True, registry_path=path) == str(cached(isolated))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        registry_lib.load_registry(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": 2}, r"`format` must be 1; received 2"),
        ({"weights": {"ghostnet_z": {}}}, r"unknown variant 'ghostnet_z'; allowed: ghostnet_a, .*ghostnet_150"),
        ({"weights": {VARIANT: {"full": {}}}}, r"weights\['ghostnet_050'\] must map some of \('top', 'notop'\)"),
        ({"entry": {"sha256": "abc"}}, r"\['sha256'\] must be 64 lowercase hexadecimal digits; received 'abc'"),
        ({"entry": {"file": "../x.weights.h5"}}, r"\['file'\] must be a plain file name ending with '.weights.h5'"),
        ({"entry": {"url": "ftp//x"}}, r"\['url'\] must be null or a URL"),
        ({"entry": {"top1": 120}}, r"\['top1'\] must be null or a percentage"),
        ({"entry": {"extra": 1}}, r"unknown key\(s\) \['extra'\]"),
        ({"drop": "license"}, r"lacks 'license'"),
    ],
)
def test_invalid_registries_are_refused_clearly(served, tmp_path, change, message):
    item = entry(served, TOP)
    item.update(change.get("entry", {}))
    item.pop(change.get("drop"), None)
    document = {"format": change.get("format", 1), "weights": change.get("weights", {VARIANT: {"top": item}})}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message) as error:
        registry_lib.load_registry(path)
    assert str(path) in str(error.value)


# Loading files into other models: by name like keras.applications, a clear error where it cannot fit.


def test_top_file_into_a_model_without_top_loads_by_name(served, build_cached):
    model = keras_tinynet.GhostNet050(include_top=False)
    load_weights(model, served["root"] / TOP)  # conv_head and predictions in the file are ignored
    source = build_cached(VARIANT)
    features = keras.Model(source.input, source.get_layer("final_act").output)
    x = images()
    np.testing.assert_allclose(model(x), features(x), atol=1e-6)


def test_notop_file_into_a_model_with_top_is_a_clear_error(served, build_cached):
    model = build_cached(VARIANT)
    with pytest.raises(
        ValueError, match=r"no weights for 2 layer\(s\) \('conv_head', 'predictions'\).*include_top=False"
    ):
        load_weights(model, served["root"] / NOTOP)


def test_file_of_another_variant_is_a_clear_error_and_leaves_the_model_untouched(served, build_cached):
    model = build_cached("ghostnet_100")
    before = [np.array(v) for v in model.weights]
    with pytest.raises(
        ValueError,
        match=r"layer 'stem_conv' variable .* has shape \(3, 3, 3, 16\) in the model but \(3, 3, 3, 8\) in the file\. Was the file saved from another variant\?",
    ):
        load_weights(model, served["root"] / TOP)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, model.weights))


def test_other_class_count_is_a_clear_error(served, build_cached):
    with pytest.raises(
        ValueError, match=r"layer 'predictions' variable .* \(1280, 10\) in the model but \(1280, 1000\)"
    ):
        load_weights(build_cached(VARIANT, classes=10), served["root"] / TOP)


def test_registered_file_of_another_variant_names_the_url(served, tmp_path, monkeypatch, build_cached):
    use_registry(tmp_path, monkeypatch, {"ghostnet_100": {"top": entry(served, TOP)}})
    with pytest.raises(ValueError, match=rf"ImageNet weights of 'ghostnet_100' \({served['base']}/{TOP}, cached at"):
        load_imagenet_weights(build_cached("ghostnet_100"), "ghostnet_100", True)
