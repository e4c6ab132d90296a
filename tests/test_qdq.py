"""Q/DQ insertion: scales, axes, wiring, determinism, errors; checked against numpy/torch fake-quant."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import TrtqError, UsageError
from trtq.placement import QDQPlan, plan_qdq
from trtq.qdq import MIN_SCALE, insert_qdq, weight_scales
from trtq.runners.onnxrt import OnnxRuntimeRunner

RNG = np.random.default_rng(0)


def _model(nodes, inits, inputs, outputs, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def conv_relu_conv(identity_weights: bool = False, opset: int = 17) -> onnx.ModelProto:
    """x -> Conv(w1,b1) -> Relu -> Conv(w2) -> y, 32 channels; optionally Identity in front of w1 (legacy export)."""
    w1 = RNG.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1
    w1[5] = 0.0  # an all-zero channel exercises the scale floor
    b1 = RNG.standard_normal(32).astype(np.float32)
    w2 = RNG.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.1
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
    ]
    nodes = []
    w1_name = "w1"
    if identity_weights:
        nodes.append(helper.make_node("Identity", ["w1"], ["w1_id"], "w1_identity"))
        w1_name = "w1_id"
    nodes += [
        helper.make_node("Conv", ["x", w1_name, "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], "conv2"),
    ]
    return _model(nodes, inits, [_vi("x", ["N", 16, 8, 8])], [_vi("y", ["N", 32, 8, 8])], opset)


def _fq(x: np.ndarray, scale: np.ndarray | float, axis: int | None = None) -> np.ndarray:
    """Independent fake-quant reference: round half to even, clamp to int8, rescale."""
    s = np.asarray(scale, dtype=np.float32)
    if axis is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    return (np.clip(np.rint(x / s), -128, 127) * s).astype(np.float32)


def _inits(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_scales_axes_and_numerics_match_fake_quant_reference():
    m = conv_relu_conv()
    plan = plan_qdq(m)
    assert plan.activations == ["x", "r1"]
    assert plan.weights == {"w1": 0, "w2": 0}
    amax = {"x": 3.0, "r1": 5.0}
    q = insert_qdq(m, plan, amax)
    onnx.checker.check_model(q, full_check=True)
    onnx.shape_inference.infer_shapes(q, check_type=True, strict_mode=True)
    inits = _inits(q)
    assert inits["x_scale"].shape == () and inits["x_scale"].dtype == np.float32
    assert inits["x_scale"] == np.float32(3.0 / 127)
    assert inits["x_zero_point"].dtype == np.int8 and inits["x_zero_point"] == 0
    w1 = numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "w1"))
    expect = np.abs(w1).reshape(32, -1).max(1) / 127
    expect[5] = MIN_SCALE
    np.testing.assert_allclose(inits["w1_scale"], expect, rtol=1e-7)
    assert inits["w1_zero_point"].shape == (32,) and not inits["w1_zero_point"].any()
    q_nodes = {n.name: n for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert helper.get_attribute_value(q_nodes["w1_QuantizeLinear"].attribute[0]) == 0
    assert not q_nodes["x_QuantizeLinear"].attribute  # per-tensor
    # no Q on weighted-op outputs
    assert "c1" not in {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}

    x = RNG.standard_normal((2, 16, 8, 8)).astype(np.float32)
    with OnnxRuntimeRunner(q) as r:
        got = r.infer({"x": x})["y"]

    def t(a):
        return torch.from_numpy(np.array(a))

    b1 = t(inits["b1"])
    c1 = torch.nn.functional.conv2d(t(_fq(x, 3.0 / 127)), t(_fq(w1, inits["w1_scale"], 0)), b1, padding=1)
    r1 = _fq(torch.relu(c1).numpy(), 5.0 / 127)
    ref = torch.nn.functional.conv2d(t(r1), t(_fq(inits["w2"], inits["w2_scale"], 0))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_identity_in_front_of_weight_is_folded():
    m = conv_relu_conv(identity_weights=True)
    plan = plan_qdq(m)
    assert "w1" in plan.weights and "w1_id" not in plan.weights
    q = insert_qdq(m, plan, {"x": 1.0, "r1": 1.0})
    assert "Identity" not in {n.op_type for n in q.graph.node}
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    assert conv1.input[1] == "w1_DequantizeLinear_Output"


def test_same_inputs_give_same_bytes():
    m = conv_relu_conv()
    plan = plan_qdq(m)
    a = insert_qdq(m, plan, {"x": 1.5, "r1": 2.5}).SerializeToString(deterministic=True)
    b = insert_qdq(m, plan_qdq(m), {"r1": 2.5, "x": 1.5, "extra": 9.0}).SerializeToString(deterministic=True)
    assert a == b


def test_missing_amax_names_the_tensor():
    m = conv_relu_conv()
    with pytest.raises(TrtqError, match="'r1'"):
        insert_qdq(m, plan_qdq(m), {"x": 1.0})


def test_nonfinite_amax_is_refused():
    m = conv_relu_conv()
    with pytest.raises(TrtqError, match="'x'.*nan"):
        insert_qdq(m, plan_qdq(m), {"x": float("nan"), "r1": 1.0})


def test_old_opset_is_a_usage_error():
    m = conv_relu_conv(opset=11)
    with pytest.raises(UsageError, match="opset"):
        insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0})


def test_scale_group_shares_the_largest_amax():
    m = conv_relu_conv()
    plan = plan_qdq(m)
    plan.scale_groups = [["x", "r1"]]
    inits = _inits(insert_qdq(m, plan, {"x": 1.0, "r1": 4.0}))
    assert inits["x_scale"] == inits["r1_scale"] == np.float32(4.0 / 127)


def test_only_planned_consumers_read_the_dequantized_tensor():
    """A reader that is not quantized (e.g. an excluded layer) keeps the full-precision tensor."""
    m = conv_relu_conv()
    m.graph.node.append(helper.make_node("Sigmoid", ["r1"], ["s"], "side"))
    m.graph.output.append(_vi("s", ["N", 32, 8, 8]))
    plan = plan_qdq(m)
    assert plan.consumers["r1"] == ["conv2"]
    q = insert_qdq(m, plan, {"x": 1.0, "r1": 1.0})
    by_name = {n.name: n for n in q.graph.node}
    assert by_name["side"].input[0] == "r1"
    assert by_name["conv2"].input[0] == "r1_DequantizeLinear_Output"


def test_plan_round_trips_through_json():
    m = conv_relu_conv()
    plan = plan_qdq(m)
    again = QDQPlan.from_json(plan.to_json())
    assert again == plan


def test_weight_scales_axis_matches_numpy():
    w = RNG.standard_normal((8, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(weight_scales(w, 1), np.abs(w).max(axis=(0, 2, 3)) / 127, rtol=1e-7)


# ----------------------------------------------------------------------------------------------------------
# trtq.quantize and `trtq quantize`


def _calibration_file(tmp_path, amax):
    from trtq.calibration import Calibration

    path = tmp_path / "calibration.json"
    Calibration.from_amax(amax, method="entropy").save(path)
    return path


def test_quantize_api_matches_plan_and_insert(tmp_path):
    from trtq.quantization import quantize

    m = conv_relu_conv()
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


def test_quantize_refuses_mismatched_calibration_and_qdq_models(tmp_path):
    from trtq.quantization import quantize

    m = conv_relu_conv()
    with pytest.raises(UsageError, match=r"calibration file .* no amax for 1 tensor.*'r1'"):
        quantize(m, _calibration_file(tmp_path, {"x": 1.0}))
    q = insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0})
    with pytest.raises(UsageError, match="already has QuantizeLinear"):
        quantize(q, {"x": 1.0, "r1": 1.0})
    with pytest.raises(UsageError, match="does not exist"):
        quantize(tmp_path / "nope.onnx", {"x": 1.0})


def test_cli_quantize_writes_outputs_and_refuses_overwrite(tmp_path, capsys):
    import json

    from trtq.cli import main

    model = tmp_path / "model.onnx"
    onnx.save(conv_relu_conv(), str(model))
    cal = _calibration_file(tmp_path, {"x": 2.0, "r1": 3.0})
    out, trt, plan = tmp_path / "model.int8.onnx", tmp_path / "model.trt.onnx", tmp_path / "plan.json"
    argv = ["quantize", "--model", str(model), "--calibration", str(cal), "--out", str(out)]
    argv += ["--trt-out", str(trt), "--plan-out", str(plan)]
    assert main([*argv, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (
        payload["quantized_nodes"] == 2 and payload["activation_qdq"] == 2 and payload["method"] == "entropy"
    )
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    typed = onnx.load(str(trt))
    onnx.checker.check_model(typed, full_check=True)
    assert any(t.data_type == TensorProto.FLOAT16 for t in typed.graph.initializer)
    assert json.loads(plan.read_text())["activations"] == ["x", "r1"]

    before = out.read_bytes()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv, "--force", "--exclude", "conv2", "-q"]) == 0
    assert len(onnx.load(str(out)).graph.node) < len(onnx.load_from_string(before).graph.node)
    assert main(["quantize", "--model", str(tmp_path / "missing.onnx"), "--calibration", str(cal)]) == 2
