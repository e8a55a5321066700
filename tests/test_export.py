"""SavedModel for TF Serving (keras_tinynet.export, scripts/export.py): signatures, TensorFlow-only loading,
saved_model_cli, bad input, atomic writes, arguments and weights files (EMA weights, files from elsewhere)."""

import json
import math
import os
import subprocess
import sys
import textwrap

import export_helpers as H
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from keras_tinynet import data, export, files  # noqa: E402
from keras_tinynet.spec_resolver import resolve_spec  # noqa: E402

# --- arguments -----------------------------------------------------------------------------------


def test_resolve_spec_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one of `model`, `flops` and `spec`.*none of them"):
        resolve_spec()
    with pytest.raises(ValueError, match=r"exactly one.*model='ghostnet_d', flops=100000000.0"):
        resolve_spec("ghostnet_d", flops=1e8)
    with pytest.raises(ValueError, match="`model` must be one of ghostnet_a.*received model='ghostnet_z'"):
        resolve_spec("ghostnet_z")
    with pytest.raises(ValueError, match="`flops` must be a positive number.*flops=-1"):
        resolve_spec(flops=-1)
    with pytest.raises(ValueError, match="`spec` must be a NetworkSpec JSON file.*no such file"):
        resolve_spec(spec="/nonexistent/spec.json")
    assert resolve_spec("ghostnet_d").name == "ghostnet_d"
    assert resolve_spec(flops=100e6).default_size >= 32
    assert resolve_spec(spec=H.tiny_spec().to_dict()) == H.tiny_spec()


def test_read_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n\n")
    assert export.read_labels(path) == ("cat", "dog")
    path.write_text("cat\n\ndog\n")
    with pytest.raises(ValueError, match=r"`labels`=.*one non-empty label per line; found blank line\(s\) \[2\]"):
        export.read_labels(path)
    with pytest.raises(ValueError, match="`labels` must be a text file.*no such file"):
        export.read_labels(tmp_path / "missing.txt")


def test_load_exportable_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="`image_size` must be an integer >= 32; received image_size=16"):
        export.load_exportable(spec=H.tiny_spec(), image_size=16)
    with pytest.raises(ValueError, match="`activation` must be one of.*received activation='gelu'"):
        export.load_exportable(spec=H.tiny_spec(), activation="gelu")
    with pytest.raises(ValueError, match="`weights` must be a weights file.*no such file"):
        export.load_exportable(spec=H.tiny_spec(), weights=tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="`name` must be letters"):
        export.load_exportable(spec=H.tiny_spec(), name="../escape")


# --- eval preprocessing --------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(64, 64), (100, 64), (64, 100), (1, 1), (37, 500), (480, 640), (73, 73)])
def test_resize_size_is_torchvision_rule(height, width):
    # torchvision Resize(int): the shorter side becomes the size, the longer int(size * long / short).
    scale_size = math.floor(64 / 0.875)
    if width <= height:
        expected = (int(scale_size * height / width), scale_size)
    else:
        expected = (scale_size, int(scale_size * width / height))
    new_h, new_w = data.resize_size(height, width, 64, 0.875)
    assert (int(new_h), int(new_w)) == expected


def test_resize_size_matches_timm_eval_transform():
    timm_data = pytest.importorskip("timm.data")
    from PIL import Image

    transform = timm_data.create_transform(input_size=(3, 145, 145), crop_pct=0.875, interpolation="bicubic")
    resize = transform.transforms[0]
    for width, height in [(640, 480), (200, 333), (165, 165), (1000, 90)]:
        resized = resize(Image.new("RGB", (width, height)))
        new_h, new_w = data.resize_size(height, width, 145, 0.875)
        assert resized.size == (int(new_w), int(new_h))


def pil_like_resize(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """PIL's resize: the width, rounded to uint8, then the height, rounded to uint8 (antialiased bicubic)."""
    width_pass = tf.image.resize(image[None], [image.shape[0], new_w], method="bicubic", antialias=True)
    width_pass = np.clip(np.floor(width_pass.numpy() + 0.5), 0, 255)
    height_pass = tf.image.resize(width_pass, [new_h, new_w], method="bicubic", antialias=True)
    return np.clip(np.floor(height_pass.numpy()[0] + 0.5), 0, 255)


def test_eval_preprocess_is_resize_then_center_crop(rng):
    image = rng.uniform(0, 255, (90, 120, 3)).astype("float32")
    out = data.eval_preprocess(image, 64).numpy()
    # By hand: shorter side 90 -> 73, longer 120 -> int(73 * 120 / 90) = 97, crop offsets round(9/2), round(33/2).
    top, left = round((73 - 64) / 2), round((97 - 64) / 2)
    np.testing.assert_array_equal(out, pil_like_resize(image, 73, 97)[top : top + 64, left : left + 64])
    assert out.shape == (64, 64, 3) and out.min() >= 0 and out.max() <= 255


# --- the exported SavedModel ---------------------------------------------------------------------


def by_hand_bytes_preprocess(path: str, size: int) -> np.ndarray:
    """Decode with the format's own op, resize the shorter side to floor(size / 0.875), center-crop."""
    data = open(path, "rb").read()
    decode = tf.io.decode_png if path.endswith(".png") else tf.io.decode_jpeg
    image = decode(data, channels=3).numpy().astype("float32")
    height, width = image.shape[:2]
    scale_size = math.floor(size / 0.875)
    if width <= height:
        new_h, new_w = int(scale_size * height / width), scale_size
    else:
        new_h, new_w = scale_size, int(scale_size * width / height)
    resized = pil_like_resize(image, new_h, new_w)
    top, left = round((new_h - size) / 2), round((new_w - size) / 2)
    return resized[top : top + size, left : left + size]


@pytest.mark.slow
def test_signatures_in_a_tensorflow_only_process_match_keras(tmp_path, rng):
    trained, exported = H.trained_digits(), H.exported_digits()
    model_size = trained.x_test[:4]
    other_size = rng.uniform(0, 255, (3, 50, 90, 3)).astype("float32")
    photos = rng.uniform(0, 255, (2, 80, 120, 3))
    png = H.write_images([*trained.x_test[4:6], photos[0]], str(tmp_path / "png"), "png")
    jpg = H.write_images([*trained.x_test[6:8], photos[1]], str(tmp_path / "jpg"), "jpeg")
    np.save(tmp_path / "model_size.npy", model_size)
    np.save(tmp_path / "other_size.npy", other_size)
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({exported.saved_model!r})
        images = {{n: tf.constant(np.load({str(tmp_path)!r} + f"/{{n}}.npy")) for n in ("model_size", "other_size")}}
        files = {png + jpg!r}
        blobs = tf.constant([open(p, "rb").read() for p in files])
        out = {{}}
        for name, value in images.items():
            for key, tensor in loaded.signatures["serving_default"](images=value).items():
                out[name + "/" + key] = tensor.numpy()
        for key, tensor in loaded.signatures["serving_bytes"](image_bytes=blobs).items():
            out["bytes/" + key] = tensor.numpy()
        out = {{k: v.astype(str) if v.dtype == object else v for k, v in out.items()}}  # labels: bytes -> str
        np.savez({str(tmp_path / "out.npz")!r}, **out)
        assert not [m for m in sys.modules if m.startswith("keras_tinynet")], "keras_tinynet was imported"
        print("TENSORFLOW ONLY OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not even findable
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300
    )
    assert result.returncode == 0 and "TENSORFLOW ONLY OK" in result.stdout, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")

    model = trained.model
    np.testing.assert_allclose(out["model_size/probabilities"], model.predict(model_size, verbose=0), atol=1e-5)
    resized = np.clip(tf.image.resize(other_size, [64, 64], method="bicubic", antialias=True).numpy(), 0, 255)
    np.testing.assert_allclose(out["other_size/probabilities"], model.predict(resized, verbose=0), atol=1e-5)
    by_hand = np.stack([by_hand_bytes_preprocess(p, 64) for p in png + jpg])
    expected = model.predict(by_hand, verbose=0)
    np.testing.assert_allclose(out["bytes/probabilities"], expected, atol=1e-5)

    top = np.argsort(-expected, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(out["bytes/top_k_ids"], top)
    np.testing.assert_allclose(out["bytes/top_k_probabilities"], np.take_along_axis(expected, top, 1), atol=1e-5)
    names = np.array(H.DIGIT_NAMES)
    np.testing.assert_array_equal(out["bytes/top_k_labels"].astype(str), names[top])
    assert out["bytes/top_k_ids"].dtype == np.int32
    # The digits written at model size are predicted as the trained model predicts them.
    assert (out["model_size/top_k_ids"][:, 0] == np.argmax(model.predict(model_size, verbose=0), 1)).all()


@pytest.mark.slow
def test_saved_model_cli_lists_signatures_with_dtypes_and_shapes():
    exported = H.exported_digits()
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "show", "--dir", exported.saved_model, "--all"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    blocks = {}
    for block in text.split("signature_def[")[1:]:
        blocks[block.split("]")[0].strip("'")] = block
    assert {"serving_default", "serving_bytes"} <= set(blocks)
    default, raw = blocks["serving_default"], blocks["serving_bytes"]
    assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, -1, -1, 3)" in default
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in raw
    for block in (default, raw):
        assert "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 10)" in block
        assert "outputs['top_k_ids'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, 5)" in block
        assert "outputs['top_k_labels'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, 5)" in block
        assert "outputs['top_k_probabilities'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 5)" in block
    assert os.path.isfile(os.path.join(exported.saved_model, "assets.extra", "labels.txt"))


@pytest.fixture(scope="module")
def loaded():
    return tf.saved_model.load(H.exported_digits().saved_model)


BAD_IMAGES = {
    "four channels": (
        np.zeros((1, 64, 64, 4), np.float32),
        r"must be float32 \[batch, height, width, 3\].*received shape \[1 64 64 4\]",
    ),
    "zero channels": (np.zeros((1, 64, 64, 0), np.float32), r"received shape \[1 64 64 0\]"),
    "rank 3": (np.zeros((64, 64, 3), np.float32), r"received shape \[64 64 3\]"),
    "rank 5": (np.zeros((1, 1, 64, 64, 3), np.float32), r"received shape \[1 1 64 64 3\]"),
    "zero height": (np.zeros((2, 0, 64, 3), np.float32), r"height and width >= 1.*received shape \[2 0 64 3\]"),
    "int32": (np.zeros((1, 64, 64, 3), np.int32), r"expected to be a float tensor but is a int32 tensor"),
    "uint8": (np.zeros((1, 64, 64, 3), np.uint8), r"expected to be a float tensor but is a uint8 tensor"),
    "NaN pixel": (
        np.pad(np.full((1, 1, 1, 3), np.nan, np.float32), [(1, 0), (0, 63), (0, 63), (0, 0)]),
        r"`images` must hold finite values.*received 3 NaN or infinite",
    ),
    "infinite pixel, resized": (np.full((1, 20, 30, 3), np.inf, np.float32), r"received 1800 NaN or infinite"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_serving_default_rejects_bad_images_with_a_clear_error(loaded, case):
    images, message = BAD_IMAGES[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](images=tf.constant(images))


@pytest.mark.slow
def test_empty_batches_give_empty_results(loaded):
    out = loaded.signatures["serving_default"](images=tf.zeros([0, 64, 64, 3]))
    assert out["probabilities"].shape == (0, 10) and out["top_k_labels"].shape == (0, 5)
    out = loaded.signatures["serving_default"](images=tf.zeros([0, 20, 30, 3]))
    assert out["top_k_ids"].shape == (0, 5)
    out = loaded.signatures["serving_bytes"](image_bytes=tf.constant([], tf.string))
    assert out["probabilities"].shape == (0, 10) and out["top_k_ids"].shape == (0, 5)


@pytest.mark.slow
def test_serving_bytes_rejects_bad_bytes_with_a_clear_error(loaded, tmp_path):
    good = open(H.write_images(np.full((1, 40, 50, 3), 128.0), str(tmp_path))[0], "rb").read()
    cases = {
        b"": r"image_bytes\[1\] is not an encoded JPEG, PNG, GIF or BMP image \(0 bytes",
        b"hello world": (
            r"image_bytes\[1\] is not an encoded JPEG, PNG, GIF or BMP image \(11 bytes, first bytes \[104 101 108"
        ),
        b"\x80\xff\x00": r"image_bytes\[1\] is not an encoded JPEG.*first bytes \[128 255 0\]",
        good[:40]: r"PNG",  # truncated PNG: the decoder's own error
        b"\xff\xd8\xff\xe0 not really a jpeg": r"JPEG",
    }
    for encoded, message in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["serving_bytes"](image_bytes=tf.constant([good, encoded]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"`image_bytes` must be a string vector \[batch\].*received shape \[1 2\]"
    ):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([[good, good]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected to be a string tensor"):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([1.0]))
    # Grayscale and RGBA PNGs are converted to RGB, not rejected.
    gray = tf.io.encode_png(tf.fill([30, 30, 1], tf.constant(200, tf.uint8))).numpy()
    rgba = tf.io.encode_png(tf.fill([30, 30, 4], tf.constant(200, tf.uint8))).numpy()
    assert loaded.signatures["serving_bytes"](image_bytes=tf.constant([gray, rgba]))["probabilities"].shape == (2, 10)


@pytest.mark.slow
def test_serving_bytes_refuses_decompression_bombs(loaded):
    # A valid PNG header that declares 100000 x 100000 pixels: refused before anything is decoded.
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (100000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] declares 10000000000 pixels; at most"):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([header + b"\x00" * 16]))
    # A real 1 x 40000 image would resize to 73 x 2920000 (213 megapixels): refused too.
    thin = tf.io.encode_png(tf.zeros([1, 40000, 3], tf.uint8)).numpy()
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] of shape \[1 40000 3\] cannot be resized"
    ):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([thin]))


MAGICS = [
    b"",
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"BM",
]


def _real_images():
    pixels = tf.constant(np.random.default_rng(1).integers(0, 256, (12, 20, 3)), tf.uint8)
    return [tf.io.encode_png(pixels).numpy(), tf.io.encode_jpeg(pixels).numpy()]


@st.composite
def corrupted_image(draw):
    """A real PNG or JPEG with a few bytes overwritten and maybe truncated."""
    data = bytearray(draw(st.sampled_from(_real_images())))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


random_blob = st.one_of(
    st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGICS), st.binary(max_size=300)),
    corrupted_image(),
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(random_blob, min_size=1, max_size=3))
def test_serving_bytes_survives_random_bytes(loaded, data):
    """Random bytes, bytes behind real magic numbers and corrupted real images: a result or an
    InvalidArgumentError, never a crash or another exception."""
    try:
        out = loaded.signatures["serving_bytes"](image_bytes=tf.constant(data))
    except tf.errors.InvalidArgumentError as error:
        assert error.message
    else:
        assert out["probabilities"].shape == (len(data), 10)
        assert np.isfinite(out["probabilities"].numpy()).all()


# --- atomic writes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_exportable():
    return export.load_exportable(spec=H.tiny_spec("tiny_random"))


def test_version_numbers(tmp_path, tiny_exportable):
    model_dir = tmp_path / "tiny_random"
    assert export.next_version(str(model_dir)) == 1
    for name in ("1", "7", ".8.partial-x", "notes"):
        (model_dir / name).mkdir(parents=True)
    assert export.next_version(str(model_dir)) == 8
    with pytest.raises(ValueError, match=r"`version`=7: .*already exists.*next free: 8"):
        export.export_saved_model(tiny_exportable, tmp_path, version=7)
    with pytest.raises(ValueError, match="`version` must be a positive integer.*received version=0"):
        export.export_saved_model(tiny_exportable, tmp_path, version=0)


def test_failed_export_leaves_no_version_directory(tmp_path, tiny_exportable, monkeypatch):
    def fail_midway(module, path, signatures):
        with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
            handle.write(b"half a model")
        os.makedirs(os.path.join(path, "variables"))
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(export.saved_model, "write_saved_model", fail_midway)
    with pytest.raises(OSError, match="simulated"):
        export.export_saved_model(tiny_exportable, tmp_path)
    assert os.listdir(tmp_path / "tiny_random") == []  # no version, no leftover staging directory
    monkeypatch.undo()
    path = export.export_saved_model(tiny_exportable, tmp_path)
    assert path == str(tmp_path / "tiny_random" / "1")
    assert sorted(os.listdir(tmp_path / "tiny_random")) == ["1"]
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    # Readable like any directory made here (a staging directory starts private to its owner).
    (tmp_path / "ordinary").mkdir()
    assert os.stat(path).st_mode == os.stat(tmp_path / "ordinary").st_mode
    (tmp_path / "ordinary.txt").write_text("")
    assert os.stat(os.path.join(path, "saved_model.pb")).st_mode == os.stat(tmp_path / "ordinary.txt").st_mode


def test_a_full_disk_during_export_is_one_write_error(tmp_path, tiny_exportable, monkeypatch):
    def full_disk(module, path, signatures):
        os.makedirs(os.path.join(path, "variables"))
        raise tf.errors.ResourceExhaustedError(None, None, f"{path}/variables/x.tempstate; No space left on device")

    monkeypatch.setattr(export.saved_model.tf.saved_model, "save", full_disk)
    with pytest.raises(files.WriteError, match=rf"Cannot write {tmp_path}/tiny_random/1: No space left on device"):
        export.export_saved_model(tiny_exportable, tmp_path)
    assert os.listdir(tmp_path / "tiny_random") == []


@pytest.mark.slow
def test_killed_export_leaves_only_a_hidden_staging_directory(tmp_path):
    """A process killed mid-write (no cleanup runs) leaves no directory TF Serving would load, and the next
    export into that model directory removes what it left."""
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        import export_helpers as H
        from keras_tinynet import export
        real = export.saved_model.write_saved_model
        def killed(module, path, signatures):
            real(module, path, signatures)
            os._exit(9)  # like SIGKILL between writing and renaming: no except/finally runs
        export.saved_model.write_saved_model = killed
        export.export_saved_model(export.load_exportable(spec=H.tiny_spec("tiny_random")), {str(tmp_path)!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 9, result.stderr[-2000:]
    entries = os.listdir(tmp_path / "tiny_random")
    assert len(entries) == 1 and entries[0].startswith(".1.partial-") and not entries[0].isdigit()
    assert os.path.isfile(tmp_path / "tiny_random" / entries[0] / "saved_model.pb")  # written, never published
    assert export.next_version(str(tmp_path / "tiny_random")) == 1
    export.export_saved_model(export.load_exportable(spec=H.tiny_spec("tiny_random")), tmp_path)
    assert os.listdir(tmp_path / "tiny_random") == ["1"]  # the next export removed the leftover


# --- weights files and the command line ----------------------------------------------------------


@pytest.mark.slow
def test_cli_exports_ema_weights_and_prints_what_it_wrote():
    trained, exported = H.trained_digits(), H.exported_digits()
    assert trained.accuracy > 0.85  # a real trained model, not noise
    assert f"weights {trained.weights}" in exported.stdout
    assert f"SavedModel (TF Serving): {exported.saved_model}" in exported.stdout
    loaded = tf.saved_model.load(exported.saved_model)
    out = loaded.signatures["serving_default"](images=tf.constant(trained.x_test[:16]))
    np.testing.assert_allclose(
        out["probabilities"].numpy(), trained.model.predict(trained.x_test[:16], verbose=0), atol=1e-5
    )


@pytest.mark.slow
def test_weights_from_elsewhere_load_by_layer_name(tmp_path):
    """A .weights.h5 saved by another build (other name, other stochastic depth, softmax-free head)."""
    from keras_tinynet import GhostNet

    trained = H.trained_digits()
    elsewhere = GhostNet(
        H.tiny_spec(), input_shape=(64, 64, 3), classes=10, classifier_activation=None, name="from_elsewhere"
    )
    for layer in elsewhere.layers:
        if layer.weights:
            layer.set_weights(trained.model.get_layer(layer.name).get_weights())
    path = str(tmp_path / "elsewhere.weights.h5")
    elsewhere.save_weights(path)
    exportable = export.load_exportable(spec=H.tiny_spec(), weights=path, image_size=64)
    assert exportable.classes == 10 and exportable.labels == tuple(str(i) for i in range(10))  # inferred from the file
    x = trained.x_test[:8]
    np.testing.assert_allclose(exportable.model.predict(x, verbose=0), trained.model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_weights_that_do_not_fit_are_refused_naming_the_argument(tmp_path):
    trained = H.trained_digits()
    with pytest.raises(ValueError, match=r"`weights`=.*ema.weights.h5.*do not fit model"):
        export.load_exportable("ghostnet_d", weights=trained.weights)
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match=r"`labels` lists 3 classes but the classifier in `weights`=.* has 10"):
        export.load_exportable(spec=trained.spec, weights=trained.weights, labels=str(labels), image_size=64)


def test_cli_help():
    code, out, _ = H.run_script("export", "--help")
    assert code == 0 and "serving_default and serving_bytes" in out and "--representative_data" in out
    code, out, _ = H.run_script("publish_hub", "--help")
    assert code == 0 and "--forms" in out and "model card" in out


def test_cli_errors_name_the_flag(tmp_path):
    code, _, err = H.run_script("export", "--model=ghostnet_d", f"--output_dir={tmp_path}", "--formats=saved_model,pdf")
    assert (
        code == 2 and "--formats must be a comma-separated subset of saved_model" in err and "'saved_model,pdf'" in err
    )
    code, _, err = H.run_script("export", "--model=ghostnet_d", f"--output_dir={tmp_path}", "--formats=tflite_int8")
    assert code == 2 and "tflite_int8, which needs --representative_data" in err
    code, _, err = H.run_script("export", "--model=ghostnet_z", f"--output_dir={tmp_path}")
    assert code == 2 and "--model" in err and "ghostnet_z" in err and "ghostnet_a" in err
    code, _, err = H.run_script("export", "--model=ghostnet_d")
    assert code == 2 and "--output_dir is required" in err
    code, _, err = H.run_script("export", "--flops=lots", f"--output_dir={tmp_path}")
    assert code == 2 and "received flops='lots'" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_cli_variant_with_imagenet_labels(tmp_path):
    code, out, err = H.run_script(
        "export", "--model=ghostnet_d", f"--output_dir={tmp_path}", "--formats=saved_model", "--version=3"
    )
    assert code == 0, err
    path = tmp_path / "ghostnet_d" / "3"
    assert f"SavedModel (TF Serving): {path}" in out and "weights random (no --weights)" in out
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](images=tf.zeros([1, 145, 145, 3]))
    assert out["probabilities"].shape == (1, 1000)
    labels = out["top_k_labels"].numpy()[0].astype(str)
    from keras_tinynet.imagenet import class_names

    assert list(labels) == [class_names()[i] for i in out["top_k_ids"].numpy()[0]]
    assert (path / "assets.extra" / "labels.txt").read_text().splitlines()[:2] == ["tench", "goldfish"]


def test_spec_json_roundtrip_for_the_cli(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(H.tiny_spec().to_dict()))
    assert resolve_spec(spec=str(path)) == H.tiny_spec()
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"`spec`=.* is not a NetworkSpec JSON file"):
        resolve_spec(spec=str(path))
