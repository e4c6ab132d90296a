"""Cross-layer equalisation: exact in FP32 (ReLU6 bounds moved per channel), and it fixes the per-tensor INT8
activation between a depthwise conv with 1000x different channel ranges and the pointwise conv reading it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.weights.cases import SMALL, run
from trtq.placement import normalize, plan_qdq
from trtq.weights import WEIGHT_METHODS, resolve_weight_methods
from trtq.weights.equalize import channel_ranges, equalize_graph, find_pairs

C = 8


def _chain(ranges: np.ndarray, *, act: str = "relu6", pad: bool = True, seed: int = 0) -> onnx.ModelProto:
    """x (N, 4, 8, 8) -> 1x1 conv (C) -> act -> [zero Pad] -> 3x3 depthwise conv (channel c scaled by
    ranges[c]) -> act -> 1x1 conv (columns scaled by 1/ranges[c], so every channel matters to y) -> y."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((C, 4, 1, 1)).astype(np.float32)
    b1 = rng.standard_normal(C).astype(np.float32) * 0.1
    wd = (rng.standard_normal((C, 1, 3, 3)) * ranges[:, None, None, None]).astype(np.float32)
    bd = (rng.standard_normal(C) * 0.1 * ranges).astype(np.float32)
    w2 = (rng.standard_normal((6, C, 1, 1)) / ranges[None, :, None, None]).astype(np.float32)
    b2 = rng.standard_normal(6).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (wd, "wd"), (bd, "bd"), (w2, "w2"),
             (b2, "b2"), (np.float32(0), "lo"), (np.float32(6), "hi"), (np.zeros(8, np.int64), "pads0"),
             (np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"), (np.float32(0), "zero"))]  # fmt: skip

    def a(x: str, y: str, name: str) -> onnx.NodeProto:
        if act == "relu6":
            return helper.make_node("Clip", [x, "lo", "hi"], [y], name)
        return helper.make_node("Relu", [x], [y], name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "expand"),
        a("c1", "a1", "act1"),
        helper.make_node("Pad", ["a1", "pads" if pad else "pads0", "zero"], ["p1"], "pad"),
        helper.make_node("Conv", ["p1", "wd", "bd"], ["c2"], "dw", group=C, kernel_shape=[3, 3],
                         pads=[0, 0, 0, 0] if pad else [1, 1, 1, 1]),
        a("c2", "a2", "act2"),
        helper.make_node("Conv", ["a2", "w2", "b2"], ["y"], "project"),
    ]  # fmt: skip
    g = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6, 8, 8])], inits,
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


RANGES = np.logspace(0, -3, C).astype(np.float32) * 4.0  # 4 .. 0.004: 1000x between channels


def _x(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4, 8, 8)).astype(np.float32) * 2.0


@pytest.mark.parametrize("act", ["relu6", "relu"])
def test_fp32_function_unchanged_with_active_relu6_bounds(act):
    model = normalize(_chain(RANGES, act=act))
    res = equalize_graph(model)
    assert [(p.first, p.second) for p in res.pairs] == [("expand", "dw"), ("dw", "project")]
    x = _x(16, 1)
    ref, out = run(model, x), run(res.model, x)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    scale = res.pairs[1].scale
    assert float(scale.max() / scale.min()) > 100  # the ranges really moved
    ops = [n.op_type for n in res.model.graph.node]
    if act == "relu6":
        # the expand conv's channels hit 6 on this input, so a scalar bound would change the function
        assert float(np.abs(x).max()) * 2 > 6
        assert "Clip" not in ops and ops.count("Relu") == 2 and ops.count("Min") == 2
        inits = {t.name: numpy_helper.to_array(t) for t in res.model.graph.initializer}
        (mn,) = [n for n in res.model.graph.node if n.op_type == "Min" and n.name.startswith("act2")]
        np.testing.assert_allclose(inits[mn.input[1]].reshape(-1), 6.0 / scale, rtol=1e-6)
        assert "lo" not in inits and "hi" not in inits  # the scalar bounds are gone with the Clips
    else:
        assert ops.count("Relu") == 2 and "Min" not in ops


def test_weight_ranges_equalised_within_a_pair():
    model = normalize(_chain(RANGES))
    res = equalize_graph(model)
    inits = {t.name: numpy_helper.to_array(t) for t in res.model.graph.initializer}
    r_dw = np.abs(inits["wd"]).reshape(C, -1).max(1)
    r_proj = np.abs(inits["w2"]).max(axis=(0, 2, 3))
    r_exp = np.abs(inits["w1"]).reshape(C, -1).max(1)
    assert res.pairs[1].ratio_before > 20 and res.pairs[1].ratio_after < 3  # max / median of 1000x: 25
    # at the fixed point each channel's range is shared: r_exp = r_dw(in) and r_dw(out) = r_proj(in)
    np.testing.assert_allclose(r_dw, r_proj, rtol=1e-2)
    np.testing.assert_allclose(r_exp, r_dw, rtol=1e-2)


def test_pairs_refused_where_scaling_would_change_the_function():
    model = normalize(_chain(RANGES))
    g = model.graph
    # a second reader of the depthwise output (a graph output) pins its scale
    g.output.append(helper.make_tensor_value_info("a2", TensorProto.FLOAT, None))
    # a Pad with a nonzero constant value does not commute with the scale
    for t in g.initializer:
        if t.name == "zero":
            t.CopyFrom(numpy_helper.from_array(np.float32(1.0), "zero"))
    assert find_pairs(model) == []


def _int8_error(
    model: onnx.ModelProto, x_cal: np.ndarray, x_eval: np.ndarray, methods=("bias-correction",)
) -> float:
    """Relative RMS error of the all-INT8 model (per-tensor minmax activations, per-channel weights)."""
    from tests.weights.cases import feeds
    from trtq.calibration import calibrate
    from trtq.qdq import insert_qdq
    from trtq.weights import weight_ptq

    plan = plan_qdq(model, SMALL)
    amax = calibrate(model, feeds(x_cal), plan.activations, ["minmax"]).amax["minmax"]
    w = weight_ptq(model, plan, feeds(x_cal), list(methods), act_amax=amax, batches=8) if methods else None
    ref = run(model, x_eval)
    out = run(insert_qdq(model, plan, amax, weights=w), x_eval)
    return float(np.sqrt(np.mean((out - ref) ** 2)) / np.sqrt(np.mean(ref**2)))


@pytest.mark.parametrize("data", [False, True])
@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("methods", [(), ("bias-correction",)])
def test_cle_reduces_the_int8_error_of_a_depthwise_layer_with_1000x_channel_ranges(methods, act, data):
    from tests.weights.cases import feeds

    model = normalize(_chain(RANGES, act=act))
    x_cal, x_eval = _x(64, 2), _x(64, 3)
    plain = _int8_error(model, x_cal, x_eval, methods)
    ranges = channel_ranges(model, [p.tensor for p in find_pairs(model)], feeds(x_cal)) if data else None
    equalised = _int8_error(equalize_graph(model, ranges).model, x_cal, x_eval, methods)
    # measured (relative RMS): ReLU 0.46 -> 0.020, with bias correction 0.42 -> 0.020; ReLU6 0.26 -> 0.017,
    # with bias correction 0.21 -> 0.017 (the depthwise output, one per-tensor scale, is what CLE fixes)
    assert equalised < plain / 5, (plain, equalised)


def test_registered_as_a_graph_method_applied_first():
    assert WEIGHT_METHODS["equalize"].graph and not WEIGHT_METHODS["bias-correction"].graph
    assert resolve_weight_methods("bias-correction,equalize") == ["equalize", "bias-correction"]
