"""ONNX export through tf2onnx, run with onnxruntime."""

import export_helpers as H
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from keras_tinynet import export  # noqa: E402


@pytest.mark.slow
def test_onnxruntime_matches_keras():
    trained, exported = H.trained_digits(), H.exported_digits()
    session = ort.InferenceSession(exported.onnx, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "images" and inp.type == "tensor(float)" and inp.shape[1:] == [64, 64, 3]
    assert out.name == "probabilities" and out.shape[1:] == [10]
    for batch in (1, 7):  # dynamic batch
        x = trained.x_test[:batch]
        (probabilities,) = session.run(None, {"images": x})
        np.testing.assert_allclose(probabilities, trained.model.predict(x, verbose=0), atol=1e-4)
    assert "ONNX (opset 17): " + exported.onnx in exported.stdout


def test_onnx_opset_is_checked(tmp_path):
    exportable = export.load_exportable(spec=H.tiny_spec("tiny_random"))
    with pytest.raises(ValueError, match="`opset` must be an integer from 13 to 18.*received opset=9"):
        export.export_onnx(exportable, tmp_path / "m.onnx", opset=9)
