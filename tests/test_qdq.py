"""Q/DQ insertion: scales, axes, wiring, determinism, errors; checked against numpy/torch fake-quant.

The graph is the zoo's conv_relu_conv (tests/zoo/graphs.py): x -> conv1 -> relu1 (r1) -> conv2 -> y.
"""

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


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


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


def test_scales_axes_and_numerics_match_fake_quant_reference(onnx_graph):
    m = onnx_graph("conv_relu_conv")
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


def test_identity_in_front_of_weight_is_folded(onnx_graph):
    m = onnx_graph("conv_relu_conv", identity_weights=True)
    plan = plan_qdq(m)
    assert "w1" in plan.weights and "w1_id" not in plan.weights
    q = insert_qdq(m, plan, {"x": 1.0, "r1": 1.0})
    assert "Identity" not in {n.op_type for n in q.graph.node}
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    assert conv1.input[1] == "w1_DequantizeLinear_Output"


def test_same_inputs_give_same_bytes(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    plan = plan_qdq(m)
    a = insert_qdq(m, plan, {"x": 1.5, "r1": 2.5}).SerializeToString(deterministic=True)
    b = insert_qdq(m, plan_qdq(m), {"r1": 2.5, "x": 1.5, "extra": 9.0}).SerializeToString(deterministic=True)
    assert a == b


def test_missing_amax_names_the_tensor(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    with pytest.raises(TrtqError, match="'r1'"):
        insert_qdq(m, plan_qdq(m), {"x": 1.0})


def test_nonfinite_amax_is_refused(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    with pytest.raises(TrtqError, match="'x'.*nan"):
        insert_qdq(m, plan_qdq(m), {"x": float("nan"), "r1": 1.0})


def test_old_opset_is_a_usage_error(onnx_graph):
    m = onnx_graph("conv_relu_conv", opset=11)
    with pytest.raises(UsageError, match="opset"):
        insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0})


def test_scale_group_shares_the_largest_amax(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    plan = plan_qdq(m)
    plan.scale_groups = [["x", "r1"]]
    inits = _inits(insert_qdq(m, plan, {"x": 1.0, "r1": 4.0}))
    assert inits["x_scale"] == inits["r1_scale"] == np.float32(4.0 / 127)


def test_only_planned_consumers_read_the_dequantized_tensor(onnx_graph):
    """A reader that is not quantized (e.g. an excluded layer) keeps the full-precision tensor."""
    m = onnx_graph("conv_relu_conv")
    m.graph.node.append(helper.make_node("Sigmoid", ["r1"], ["s"], "side"))
    m.graph.output.append(_vi("s", ["N", 32, 8, 8]))
    plan = plan_qdq(m)
    assert plan.consumers["r1"] == ["conv2"]
    q = insert_qdq(m, plan, {"x": 1.0, "r1": 1.0})
    by_name = {n.name: n for n in q.graph.node}
    assert by_name["side"].input[0] == "r1"
    assert by_name["conv2"].input[0] == "r1_DequantizeLinear_Output"


def test_plan_round_trips_through_json(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    plan = plan_qdq(m)
    again = QDQPlan.from_json(plan.to_json())
    assert again == plan


def test_weight_scales_axis_matches_numpy():
    w = RNG.standard_normal((8, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(weight_scales(w, 1), np.abs(w).max(axis=(0, 2, 3)) / 127, rtol=1e-7)


def test_activation_scales_floor_share_and_take_the_magnitude(onnx_graph):
    from trtq.qdq import activation_scales

    plan = plan_qdq(onnx_graph("conv_relu_conv"))
    scales = activation_scales(plan, {"x": 1e-9, "r1": -254.0})
    assert scales == {"x": MIN_SCALE, "r1": 2.0}  # a dead tensor gets the floor; the sign of amax is dropped
    plan.scale_groups = [["x", "r1"]]
    assert activation_scales(plan, {"x": 1e-9, "r1": 254.0}) == {"x": 2.0, "r1": 2.0}


def test_the_input_model_is_left_alone_and_an_unknown_format_is_refused(onnx_graph):
    m = onnx_graph("conv_relu_conv")
    before = m.SerializeToString(deterministic=True)
    insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0})
    assert m.SerializeToString(deterministic=True) == before
    with pytest.raises(
        UsageError, match="--format 'fp4' is not a registered quantization format; choose from int8"
    ):
        insert_qdq(m, plan_qdq(m), {"x": 1.0, "r1": 1.0}, format="fp4")
