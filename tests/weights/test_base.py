"""`trtq.weights.base`: the method registry, the Q -> DQ arithmetic of weights, and `WeightPTQ`."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.formats import MIN_SCALE
from trtq.weights.base import WEIGHT_METHODS, WeightPTQ, channel_scales, fake_quant, register_weight_method
from trtq.weights.run import resolve_weight_methods


def _qdq_graph(w: np.ndarray, scale: np.ndarray) -> onnx.ModelProto:
    """x -> QuantizeLinear(scale, axis 0) -> DequantizeLinear -> y: what ONNX Runtime does to a weight."""
    zero = np.zeros(len(scale), np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)]  # fmt: skip
    g = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(w.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(w.shape))],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_fake_quant_is_what_onnx_runtime_q_dq_computes():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (6, 50)).astype(np.float32)
    w[0, :4] = [0.5, 1.5, -2.5, 300.0]  # ties (round half to even) and a value past the grid (saturates)
    w[5] = 0.0
    amax = np.abs(w).max(axis=1)
    amax[0] = 127.0  # scale 1: ties exact, 300 saturates to 127 (trtq's grid is the symmetric -127..127, and
    # ONNX Runtime saturates at -128 below, so negative values past -amax are left out of this comparison)
    scale = channel_scales(amax)
    np.testing.assert_array_equal(scale, np.maximum(amax / np.float32(127), np.float32(MIN_SCALE)))
    assert scale[5] == np.float32(MIN_SCALE)  # an all-zero channel gets the floor scale, never 0
    got = fake_quant(w, scale[:, None])
    np.testing.assert_array_equal(got, _ort(w, scale))
    assert got[0, :4].tolist() == [0.0, 2.0, -2.0, 127.0]


def _ort(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    from trtq.runners import OnnxRuntimeRunner

    with OnnxRuntimeRunner(_qdq_graph(w, scale)) as r:
        return r.infer({"x": w})["y"]


def test_a_registered_method_is_resolved_in_its_order():
    calls = []

    @register_weight_method("toy-first", order=-1, needs_patches=False, help="a test method")
    def toy(state):  # type: ignore[no-untyped-def]
        calls.append(state)
        return {}

    try:
        assert WEIGHT_METHODS["toy-first"].apply is toy and not WEIGHT_METHODS["toy-first"].needs_patches
        assert resolve_weight_methods("bias-correction,toy-first") == ["toy-first", "bias-correction"]
    finally:
        WEIGHT_METHODS.unregister("toy-first")
    assert "toy-first" not in WEIGHT_METHODS


def test_for_weights_gives_only_the_quantized_layers_new_values():
    res = WeightPTQ(
        initializers={"w1": np.ones(2), "b1": np.zeros(2), "w2": np.ones(3)},
        layers={"w1": ("conv1", "b1"), "w2": ("conv2", None), "w3": ("conv3", "b3")},
    )
    assert set(res.for_weights({"w1": 0})) == {"w1", "b1"}
    assert set(res.for_weights({"w2": 0, "w3": 0, "other": 0})) == {"w2"}  # w3 unchanged; FP16 layers absent
    assert res.to_json()["layers"] == 3


def test_fake_quant_saturates_where_quantize_linear_does():
    """A weight below -amax (a searched clip) lands on -128 in the graph's Q -> DQ, so fake_quant puts it there."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from trtq.runners import OnnxRuntimeRunner
    from trtq.weights.base import channel_scales, fake_quant

    w = np.array([[-1.3, -1.004, -1.0, 0.5, 1.0, 1.3]], np.float32)
    scale = channel_scales(np.array([1.0], np.float32))  # clipped amax 1.0 < max |w| 1.3
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis=0),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)]  # fmt: skip
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                          [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(np.zeros(1, np.int8), "z")])  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    with OnnxRuntimeRunner(m) as r:
        ref = r.infer({"w": w})["y"]
    got = fake_quant(w, scale[:, None])
    np.testing.assert_array_equal(got, ref)
    assert float(got[0, 0] / scale[0]) == -128.0 and float(got[0, -1] / scale[0]) == 127.0
