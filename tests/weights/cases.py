"""Tiny ONNX models built for one weight-side technique each (graphs made in code, seeded)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.placement import PlacementConfig, plan_qdq

#: Quantize every conv, however small (the default placement skips tiny ones, as NVIDIA's quantizer does).
SMALL = PlacementConfig(disable_rules=("SmallConv", "SmallOrGemv"))


def conv_model(
    weight: np.ndarray, bias: np.ndarray, *, size: int = 6, pads: int = 0, group: int = 1
) -> onnx.ModelProto:
    """x (N, C, size, size) -> Conv(weight, bias) -> y; opset 17."""
    cin = weight.shape[1] * group
    k = weight.shape[2]
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], "conv", kernel_shape=[k, k], pads=[pads] * 4, group=group
    )
    out = size - k + 1 + 2 * pads
    g = helper.make_graph(
        [node], "case",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[0], out, out])],
        [numpy_helper.from_array(weight.astype(np.float32), "w"), numpy_helper.from_array(bias.astype(np.float32), "b")],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def plan_of(model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    return plan_qdq(model, SMALL)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from trtq.runners import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model) as r:
        return r.infer({"x": x})["y"]


def feeds(x: np.ndarray, batch: int = 32):  # type: ignore[no-untyped-def]
    for s in range(0, len(x), batch):
        yield {"x": x[s : s + batch]}


def quantized(model: onnx.ModelProto, x_cal: np.ndarray, methods, amax=None, **kw):  # type: ignore[no-untyped-def]
    """`model` with `methods` applied (8 batches of `x_cal`) and its Q/DQ inserted; (Q/DQ model, WeightPTQ)."""
    from trtq.qdq import insert_qdq
    from trtq.weights import weight_ptq

    plan = plan_of(model)
    amax = amax or {t: float(np.abs(x_cal).max()) for t in plan.activations}
    w = weight_ptq(model, plan, feeds(x_cal), methods, act_amax=amax, batches=8, **kw)
    return insert_qdq(model, plan, amax, weights=w), w
