"""`trtq.qdq`'s INT8 weight storage (`--weight-storage int8`): INT8 initializers -> DequantizeLinear."""

from __future__ import annotations

import numpy as np

from tests.weights.cases import conv_model, plan_of, run
from trtq.qdq import insert_qdq


def test_int8_weight_storage_is_the_same_graph_about_4x_smaller():
    """INT8 initializers -> DequantizeLinear compute exactly what FP32 -> Q -> DQ computes, in about 1/4 the bytes."""
    rng = np.random.default_rng(4)
    w = rng.normal(0, 1, (64, 64, 3, 3)).astype(np.float32)
    model = conv_model(w, np.zeros(64, np.float32), size=6, pads=1)
    plan = plan_of(model)
    amax = {"x": 3.0}
    qdq = insert_qdq(model, plan, amax)
    int8 = insert_qdq(model, plan, amax, weight_storage="int8")
    import onnx

    onnx.checker.check_model(int8, full_check=True)
    x = rng.normal(0, 1, (4, 64, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(run(qdq, x), run(int8, x))
    kinds = {t.name: t.data_type for t in int8.graph.initializer}
    assert "w" not in kinds and kinds["w_quantized"] == onnx.TensorProto.INT8
    ratio = len(int8.SerializeToString()) / len(model.SerializeToString())
    assert 0.24 < ratio < 0.3, ratio
    from trtq.precision import to_strongly_typed  # the typed graph (model.trt.onnx) handles DQ-only weights

    typed = to_strongly_typed(int8)
    onnx.checker.check_model(typed, full_check=True)
    assert not any(t.name == "w" for t in typed.graph.initializer)
    exact = run(int8, x)
    err = np.abs(run(typed, x) - exact).max() / np.abs(exact).max()
    assert err < 1e-2, err  # FP16 math only, measured 2.3e-3 (the INT8 weights are exact)
