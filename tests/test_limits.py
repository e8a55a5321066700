"""Limits that keep hostile or unlucky inputs bounded: a download's overall deadline and minimum rate (a server
trickling bytes on 127.0.0.1), the first frame only of an animated GIF, the default batch of a small folder."""

import hashlib
import http.server
import io
import threading
import time

import numpy as np
import pytest

from keras_tinynet import recipe
from keras_tinynet.weights import download as download_lib
from keras_tinynet.weights.download import (
    DEADLINE_ENV,
    MIN_RATE_ENV,
    DownloadError,
    download,
    download_deadline,
    download_min_rate,
)

PAYLOAD = bytes(range(256)) * 40  # 10 KB, announced in full, sent a byte every 20 ms


class _Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/fast":
            self.wfile.write(PAYLOAD)
            return
        for byte in PAYLOAD[:500]:  # 10 s at most
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.02)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_limits_from_the_environment(monkeypatch):
    for name in (DEADLINE_ENV, MIN_RATE_ENV, download_lib.TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)


def fetch(url, destination, **limits):
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    return download(url, destination, algorithm="sha256", expected_hash=expected, size=len(PAYLOAD), what="x", **limits)


def test_a_trickle_is_cut_at_the_deadline_and_nothing_is_left(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError, match=rf"from {server}/trickle: it took longer than 0.5 s \(\d+ bytes arrived; "):
        fetch(f"{server}/trickle", tmp_path / "file", deadline=0.5, timeout=2)
    assert time.monotonic() - started < 2  # each byte came within the read timeout: only the deadline stops it
    assert list(tmp_path.iterdir()) == []


def test_a_trickle_below_the_minimum_rate_is_cut(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download_lib, "RATE_WINDOW", 0.5)
    monkeypatch.setenv(MIN_RATE_ENV, "1000")  # the environment sets it where no argument does
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"bytes/s over the last 1 s, below the minimum of 1000 bytes/s"):
        fetch(f"{server}/trickle", tmp_path / "file", timeout=2)
    assert time.monotonic() - started < 2 and list(tmp_path.iterdir()) == []
    assert fetch(f"{server}/fast", tmp_path / "file", min_rate=1000) == str(tmp_path / "file")  # fast enough


def test_limit_settings_are_checked(monkeypatch):
    assert (download_deadline(), download_min_rate()) == (3600.0, 1024.0)
    assert download_min_rate(0) == 0.0  # off
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match=rf"\${DEADLINE_ENV} must be a positive number of seconds; received 'soon'"):
        download_deadline()
    with pytest.raises(ValueError, match=r"`min_rate` must be a non-negative number of bytes per second \(0: no "):
        download_min_rate(-1)
    with pytest.raises(ValueError, match=r"`deadline` must be a positive number of seconds; received inf"):
        download_deadline(float("inf"))


def animated_gif(frames: int, size: int) -> tuple[bytes, list[np.ndarray]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(frames)]
    images = [Image.fromarray(p).quantize(64) for p in pixels]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buffer.getvalue(), [np.asarray(image.convert("RGB")) for image in images]


def test_an_animated_gif_reaches_the_decoder_as_its_first_frame_only():
    import tensorflow as tf

    from keras_tinynet.export.image_decoding import decode_and_preprocess, first_gif_frame

    data, frames = animated_gif(6, 48)
    assert tf.io.decode_image(data, expand_animations=True).shape == (6, 48, 48, 3)
    first = first_gif_frame(tf.constant(data)).numpy()
    decoded = tf.io.decode_image(first, channels=3, expand_animations=True).numpy()
    assert decoded.shape == (1, 48, 48, 3) and np.array_equal(decoded[0], frames[0])
    assert len(first) < len(data) / 3
    single, _ = animated_gif(1, 48)
    assert first_gif_frame(tf.constant(single)).numpy() == single  # a still GIF is left whole
    image = tf.function(lambda d: decode_and_preprocess(d, 0, 32, 0.875))(tf.constant(data))
    assert image.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "images, batch", [(320, 32), (100, 8), (5, 1), (1_281_167, 1024), (10_240, 1024), (10_239, 512)]
)
def test_the_default_batch_gives_an_epoch_ten_steps(images, batch):
    config = recipe.resolve(recipe.TrainConfig(dataset="folder:x", model_dir="run"))
    assert config.batch_size is None  # the recipe's batch waits for the count of training images
    assert recipe.fit_to_data(config, images)[0].batch_size == batch
    assert recipe.fit_to_data(recipe.TrainConfig(batch_size=48), images)[0].batch_size == 48  # the user's stays
