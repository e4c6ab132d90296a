"""Tiny ONNX graphs the runner and benchmark tests run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["conv_proto", "conv_onnx"]


def conv_proto(batch: str | int = "N") -> onnx.ModelProto:
    """Conv(3 -> 8, 3x3, same padding) + Relu over `x` (batch x 3 x 16 x 16), output `z`."""
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 8, 16, 16])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_onnx(path: Path, batch: str | int = "N") -> Path:
    """`conv_proto(batch)` written to `path`."""
    path.write_bytes(conv_proto(batch).SerializeToString())
    return path
