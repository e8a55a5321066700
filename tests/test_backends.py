"""Backend independence: the same model and weights on the PyTorch and JAX Keras backends."""

import importlib.util
import json

import numpy as np
import pytest
from conftest import run_python

import keras_tinynet

FORWARD = """
import json
import numpy as np
import keras, keras_tinynet
assert keras.backend.backend() == {backend!r}, keras.backend.backend()
args = json.loads({args!r})
model = keras_tinynet.GhostNet(args["variant"], input_shape=(args["size"], args["size"], 3), weights=args["weights"])
x = np.load(args["inputs"])
np.save(args["outputs"], keras.ops.convert_to_numpy(model(x, training=False)))
pyramid = keras_tinynet.feature_pyramid(keras_tinynet.GhostNet(args["variant"], include_top=False))
assert [tuple(v.shape) for v in pyramid(x).values()][-1][1:3] == (args["size"] // 32, args["size"] // 32)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
history = model.fit(x, np.array([1, 2]), epochs=1, verbose=0)
assert np.isfinite(history.history["loss"][0])
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_forward_pass_matches_tensorflow(backend, tmp_path, rng):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    size = 96
    model = keras_tinynet.GhostNetD(input_shape=(size, size, 3))
    # Give BN real statistics so that the comparison exercises inference-mode BN.
    for layer in model.layers:
        if layer.name.endswith("_bn"):
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    weights = tmp_path / "d.weights.h5"
    model.save_weights(weights)
    x = (rng.random((2, size, size, 3)) * 255).astype("float32")
    np.save(tmp_path / "x.npy", x)
    args = {
        "variant": "ghostnet_d",
        "size": size,
        "weights": str(weights),
        "inputs": str(tmp_path / "x.npy"),
        "outputs": str(tmp_path / "y.npy"),
    }
    result = run_python(FORWARD.format(backend=backend, args=json.dumps(args)), env={"KERAS_BACKEND": backend})
    assert result.stdout.strip().endswith("ok")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x), atol=1e-4)
