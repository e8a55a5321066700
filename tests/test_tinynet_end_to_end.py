"""TinyNet-E end to end: a few training steps on the embedded digits, SavedModel and TFLite exports, and
the SavedModel reloaded by TensorFlow alone."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import run_python

SIZE = 32


@pytest.mark.slow
def test_tinynet_e_trains_exports_and_reloads_with_tensorflow_alone(tmp_path):
    run, exports, tflite = tmp_path / "run", tmp_path / "exports", tmp_path / "tinynet_e.tflite"
    train_and_export = f"""
import json
import numpy as np
from keras_tinynet import export, training
config = training.TrainConfig(model="tinynet_e", image_size={SIZE}, batch_size=16, epochs=1, steps_per_epoch=2,
                              warmup_epochs=0, model_dir={str(run)!r})
summary = training.train(config, verbose=0)
exportable = export.load_exportable("tinynet_e", weights={str(run / "final" / "ema.weights.h5")!r},
                                    labels=[str(digit) for digit in range(10)], image_size={SIZE})
saved_model = export.export_saved_model(exportable, {str(exports)!r})
export.export_tflite(exportable, {str(tflite)!r})
images = np.random.default_rng(0).uniform(0, 255, (1, {SIZE}, {SIZE}, 3)).astype("float32")
np.save({str(tmp_path / "images.npy")!r}, images)
np.save({str(tmp_path / "keras.npy")!r}, exportable.model.predict(images, verbose=0))
np.save({str(tmp_path / "tflite.npy")!r}, export.tflite_predict({str(tflite)!r}, images))
print(json.dumps({{"saved_model": saved_model, "activation": exportable.activation,
                  "steps": summary["steps_per_epoch"], "name": exportable.name}}))
"""
    printed = json.loads(run_python(train_and_export).stdout.strip().splitlines()[-1])
    assert printed["activation"] == "swish" and printed["steps"] == 2 and printed["name"] == "tinynet_e"
    assert json.loads((run / "summary.json").read_text())["config"]["activation"] == "swish"

    reload = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({printed["saved_model"]!r})
        images = tf.constant(np.load({str(tmp_path / "images.npy")!r}))
        probabilities = loaded.signatures["serving_default"](images=images)["probabilities"]
        np.save({str(tmp_path / "saved_model.npy")!r}, probabilities.numpy())
        assert not [m for m in sys.modules if m.startswith("keras_tinynet")], "keras_tinynet was imported"
        print("TENSORFLOW ONLY OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", reload], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300
    )
    assert result.returncode == 0 and "TENSORFLOW ONLY OK" in result.stdout, result.stderr[-3000:]
    expected = np.load(tmp_path / "keras.npy")
    assert expected.shape == (1, 10)
    np.testing.assert_allclose(np.load(tmp_path / "saved_model.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "tflite.npy"), expected, atol=1e-5)
