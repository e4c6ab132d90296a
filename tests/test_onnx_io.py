"""Models past protobuf's 2 GB limit keep their weights in `<name>.data`: saved, run, checked and shape-inferred.

The threshold is lowered with TRTQ_EXTERNAL_DATA_THRESHOLD so a small model takes the large-model path.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trtq import onnx_io


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("TRTQ_EXTERNAL_DATA_THRESHOLD", "4096")
    return onnx_io.external_data_threshold()


def test_the_threshold_is_protobufs_limit_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTQ_EXTERNAL_DATA_THRESHOLD", raising=False)
    assert onnx_io.external_data_threshold() < onnx_io.PROTOBUF_LIMIT
    monkeypatch.setenv("TRTQ_EXTERNAL_DATA_THRESHOLD", "123")
    assert onnx_io.external_data_threshold() == 123


def test_a_small_model_is_one_file_and_a_large_one_a_pair(tmp_path, onnx_graph, low_threshold) -> None:
    model = onnx_graph("conv_relu_conv")
    assert onnx_io.tensor_bytes(model) > low_threshold and onnx_io.is_large(model)
    path = onnx_io.save_onnx(model, tmp_path / "m.onnx")
    data = onnx_io.data_file(path)
    assert data.is_file() and data.stat().st_size > low_threshold  # the weights went to the data file
    assert path.stat().st_size < data.stat().st_size
    loaded = onnx.load(str(path))  # ONNX reads the pair back to the same weights
    for a, b in zip(model.graph.initializer, loaded.graph.initializer):
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))
    onnx_io.check_onnx_file(path, full_check=True)


def test_session_input_and_checks_work_on_a_large_model_in_memory(onnx_graph, low_threshold) -> None:
    import onnxruntime as ort

    model = onnx_graph("conv_relu_conv")
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    name = model.graph.input[0].name
    with onnx_io.session_input(model) as src:
        assert isinstance(src, str)  # a temporary file pair, not bytes past the limit
        got = ort.InferenceSession(src).run(None, {name: x})[0]
    want = ort.InferenceSession(model.SerializeToString()).run(None, {name: x})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=0)
    onnx_io.check_onnx(model, full_check=True)
    inferred = onnx_io.infer_shapes(model)
    assert len(inferred.graph.value_info) > 0


def test_below_the_threshold_nothing_changes(tmp_path, onnx_graph, monkeypatch) -> None:
    monkeypatch.delenv("TRTQ_EXTERNAL_DATA_THRESHOLD", raising=False)
    model = onnx_graph("conv_relu_conv")
    path = onnx_io.save_onnx(model, tmp_path / "m.onnx")
    assert not onnx_io.data_file(path).exists()
    assert path.read_bytes() == model.SerializeToString(deterministic=True)
    with onnx_io.session_input(model) as src:
        assert isinstance(src, bytes)
