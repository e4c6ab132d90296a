"""Constants and small graphs the QAT tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.runners import OnnxRuntimeRunner

__all__ = ["HAS_TYPED", "OUTLIER_SCALE", "RUN", "conv_bn_graph", "run_graph", "graph"]

HAS_TYPED = importlib.util.find_spec("trtq.precision") is not None
OUTLIER_SCALE = 300.0

#: Settings of the outlier runs: 2 epochs on 800 images, SGD at lr 0.01, one CPU thread (fast and exact).
RUN = {"calib": "minmax", "epochs": 2, "lr": 0.01, "train_samples": 800, "calib_samples": 256, "threads": 1}


def graph(nodes: list, inputs: list, outputs: list, inits: list) -> onnx.ModelProto:
    """An opset-17 model of `nodes`."""
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def conv_bn_graph(quantized_weight: bool) -> tuple[onnx.ModelProto, np.ndarray]:
    """x -> Conv(W [, per-channel Q/DQ]) -> BatchNormalization -> Relu; gamma has a negative and a zero entry."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    gamma = np.array([1.5, -0.7, 0.0, 2.0], np.float32)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(gamma, "gamma"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "var"),
    ]
    nodes = []
    weight = "W"
    if quantized_weight:
        scale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
        inits += [numpy_helper.from_array(scale, "ws"), numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
        nodes += [
            helper.make_node("QuantizeLinear", ["W", "ws", "wz"], ["Wq"], "wq", axis=0),
            helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["Wdq"], "wdq", axis=0),
        ]
        weight = "Wdq"
    nodes += [
        helper.make_node("Conv", ["x", weight], ["c"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["b"], "bn"),
        helper.make_node("Relu", ["b"], ["y"], "relu"),
    ]
    model = graph(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 6, 6])],
        inits,
    )
    return model, rng.standard_normal((2, 3, 6, 6)).astype(np.float32)


def run_graph(model: onnx.ModelProto, x: np.ndarray, output: str = "y") -> np.ndarray:
    """`output` of `model` on input `x` (ONNX Runtime, Q/DQ as written)."""
    with OnnxRuntimeRunner(model) as r:
        return r.infer({"x": x})[output]
