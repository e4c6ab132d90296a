"""`G`, a tiny ONNX graph builder for hand-written test graphs (in the style of ModelOpt's test_qdq_rules_int8.py)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["G", "IMG", "model_of"]

#: The image input most hand-built graphs take: 32 channels of 8x8, dynamic batch.
IMG = {"x": ["N", 32, 8, 8]}


def model_of(
    nodes: Iterable[onnx.NodeProto],
    inputs: Iterable[onnx.ValueInfoProto],
    outputs: Iterable[onnx.ValueInfoProto],
    initializers: Iterable[onnx.TensorProto] = (),
    *,
    name: str = "g",
    opset: int = 17,
    ir_version: int | None = None,
) -> onnx.ModelProto:
    """A model of one graph at `opset` (default ONNX domain)."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        m.ir_version = ir_version
    return m


class G:
    """A tiny ONNX graph builder: every op's output is named `<node name>_out`; weights are seeded normals."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)

    def const(self, name: str, shape, scale: float = 0.1) -> str:
        self.inits.append(
            numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    def op(self, op_type: str, inputs, name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [f"{name}_out"], name, **attrs))
        return f"{name}_out"

    def conv(self, x: str, cin: int, cout: int, name: str, k: int = 3, group: int = 1) -> str:
        w = self.const(f"{name}.w", (cout, cin // group, k, k))
        b = self.const(f"{name}.b", (cout,))
        return self.op("Conv", [x, w, b], name, kernel_shape=[k, k], pads=[k // 2] * 4, group=group)

    def matmul(self, x: str, k: int, n: int, name: str) -> str:
        return self.op("MatMul", [x, self.const(f"{name}.w", (k, n))], name)

    def model(self, inputs: dict[str, list], outputs: list[str]) -> onnx.ModelProto:
        """The graph with float inputs of the given shapes; output types inferred; checked (full check)."""
        m = model_of(
            self.nodes,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
            self.inits,
            ir_version=8,
        )
        inferred = onnx.shape_inference.infer_shapes(m).graph.output
        for out, typed in zip(m.graph.output, inferred):
            out.CopyFrom(typed)
        onnx.checker.check_model(m, full_check=True)
        return m
