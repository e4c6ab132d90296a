"""`trtq.quantize`: FP32 ONNX + thresholds -> the Q/DQ model (and the typed one), as `trtq build` writes them."""

from __future__ import annotations

import pytest
from onnx import TensorProto

from trtq.calibration import Calibration
from trtq.errors import UsageError
from trtq.placement import PlacementConfig, plan_qdq
from trtq.qdq import insert_qdq
from trtq.quantization import load_calibration, quantize


def _calibration_file(tmp_path, amax, name="calibration.json"):
    path = tmp_path / name
    Calibration.from_amax(amax, method="entropy").save(path)
    return path


def test_quantize_api_matches_plan_and_insert(tmp_path, onnx_graph):
    import onnx

    m = onnx_graph("conv_relu_conv")
    amax = {"x": 2.0, "r1": 3.0, "unused": 1.0}
    direct = insert_qdq(m, plan_qdq(m), amax).SerializeToString(deterministic=True)
    from_dict = quantize(m, amax)
    assert from_dict.model.SerializeToString(deterministic=True) == direct
    assert from_dict.amax == {"x": 2.0, "r1": 3.0} and from_dict.typed is None
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    from_file = quantize(path, _calibration_file(tmp_path, amax), typed=True)
    assert from_file.model.SerializeToString(deterministic=True) == direct
    assert from_file.method == "entropy"
    assert (
        from_file.typed is not None
        and from_file.typed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    )


def test_quantize_refuses_mismatched_calibration_and_qdq_models(tmp_path, onnx_graph):
    m = onnx_graph("conv_relu_conv")
    with pytest.raises(UsageError, match=r"calibration file .* no amax for 1 tensor.*'r1'"):
        quantize(m, _calibration_file(tmp_path, {"x": 1.0}))
    q = insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0})
    with pytest.raises(UsageError, match="already has QuantizeLinear"):
        quantize(q, {"x": 1.0, "r1": 1.0})
    with pytest.raises(UsageError, match="does not exist"):
        quantize(tmp_path / "nope.onnx", {"x": 1.0})


def test_placement_config_and_typed_keep_lists_apply(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    amax = {"x": 2.0, "r1": 3.0}
    res = quantize(
        m, amax, config=PlacementConfig(exclude_nodes=("conv2",)), typed=True, keep_fp32_nodes=["conv1"]
    )
    assert res.plan.quantized_nodes == ["conv1"] and res.amax == {"x": 2.0}
    summary = res.summary()
    assert summary["quantized_nodes"] == 1 and summary["typed"] is True
    assert {"node": "conv2", "op_type": "Conv", "rule": "ExcludedByName"}.items() <= summary[
        "high_precision"
    ][0].items()
    producers = {o: n for n in res.typed.graph.node for o in n.output}
    conv1 = next(n for n in res.typed.graph.node if n.name == "conv1")
    assert [producers[i].op_type for i in conv1.input[:2]] == ["Cast", "Cast"]  # conv1 kept FP32: cast inputs
    inits = {t.name: t.data_type for t in res.typed.graph.initializer}
    assert inits["b1"] == TensorProto.FLOAT and inits["w2"] == TensorProto.FLOAT16


def test_load_calibration_from_every_form(tmp_path):
    from trtq.engines.calib_cache import write_trt_cache

    cal = Calibration(methods=["minmax", "entropy"], amax={"minmax": {"x": 4.0}, "entropy": {"x": 2.0}})
    assert load_calibration(cal) is cal
    assert load_calibration(cal, "max").method == "minmax" and cal.method == "minmax"  # a copy is changed
    external = load_calibration({"x": 3})
    assert external.method == "external" and external.amax_for() == {"x": 3.0}
    cache = write_trt_cache(tmp_path / "c.cache", {"x": 1.0})
    from_cache = load_calibration(cache)
    assert from_cache.method == "cache" and from_cache.amax_for()["x"] == pytest.approx(1.0, rel=1e-7)
    assert str(cache) in from_cache.origin
    with pytest.raises(UsageError, match="--method applies to a calibration.json"):
        load_calibration(cache, "minmax")
    with pytest.raises(UsageError, match="plain amax mapping"):
        load_calibration({"x": 3.0}, "minmax")
    with pytest.raises(UsageError, match="'mse' was not computed"):
        load_calibration(cal, "mse")
    with pytest.raises(UsageError, match="does not exist; pass the calibration.json"):
        load_calibration(tmp_path / "none.json")
