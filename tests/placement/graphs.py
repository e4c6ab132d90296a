"""Tiny hand-built ONNX graphs for the placement tests (in the style of ModelOpt's test_qdq_rules_int8.py)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.qdq import insert_qdq

__all__ = [
    "G",
    "IMG",
    "qdq_runs",
    "residual_block",
    "transformer_block",
    "concat_graph",
    "pooling_graph",
    "classifier_head",
    "small_convs",
    "squeeze_excitation",
    "computed_weight",
]


class G:
    """A tiny ONNX graph builder: every op's output is named `<node name>_out`."""

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
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
            initializer=self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(m).graph.output
        for out, typed in zip(m.graph.output, inferred):
            out.CopyFrom(typed)
        onnx.checker.check_model(m, full_check=True)
        return m


IMG = {"x": ["N", 32, 8, 8]}


def qdq_runs(m: onnx.ModelProto, plan) -> onnx.ModelProto:
    """The plan inserts cleanly (checker) for any amax; returns the Q/DQ model."""
    q = insert_qdq(m, plan, {t: 1.0 for t in plan.activations})
    onnx.checker.check_model(q, full_check=True)
    return q


def residual_block(downsample: bool = False, bn: bool = False) -> onnx.ModelProto:
    g = G()
    stem = g.op("Relu", [g.conv("x", 32, 32, "stem")], "stem_relu")
    h = g.op("Relu", [g.conv(stem, 32, 32, "conv1")], "relu1")
    h = g.conv(h, 32, 32, "conv2")
    if bn:
        h = g.op(
            "BatchNormalization",
            [
                h,
                g.const("bn.s", (32,)),
                g.const("bn.b", (32,)),
                g.const("bn.m", (32,)),
                g.const("bn.v", (32,), 0),
            ],
            "bn2",
        )
        g.inits[-1] = numpy_helper.from_array(np.ones(32, np.float32), "bn.v")
    skip = g.conv(stem, 32, 32, "down", k=1) if downsample else stem
    y = g.op("Relu", [g.op("Add", [h, skip], "add")], "out_relu")
    y = g.conv(y, 32, 32, "head")
    return g.model(IMG, [y])


def transformer_block(seq: int = 16, d: int = 32) -> onnx.ModelProto:
    g = G()
    ln_w, ln_b = g.const("ln.w", (d,)), g.const("ln.b", (d,))
    h = g.op("LayerNormalization", ["x", ln_w, ln_b], "ln1", axis=-1)
    q = g.matmul(h, d, d, "q")
    k = g.matmul(h, d, d, "k")
    v = g.matmul(h, d, d, "v")
    kt = g.op("Transpose", [k], "kT", perm=[0, 2, 1])
    scores = g.op("MatMul", [q, kt], "qk")
    scaled = g.op("Mul", [scores, g.const("scale", (), 1.0)], "scale_mul")
    attn = g.op("Softmax", [scaled], "softmax", axis=-1)
    ctx = g.op("MatMul", [attn, v], "av")
    o = g.op("Add", [g.matmul(ctx, d, d, "o"), g.const("o.b", (d,))], "o_bias")
    r1 = g.op("Add", ["x", o], "res1")
    h = g.op("LayerNormalization", [r1, ln_w, ln_b], "ln2", axis=-1)
    h = g.op("Relu", [g.matmul(h, d, 4 * d, "fc1")], "act")
    r2 = g.op("Add", [r1, g.matmul(h, 4 * d, d, "fc2")], "res2")
    pooled = g.op("ReduceMean", [r2], "pool", axes=[1], keepdims=0)
    logit = g.matmul(pooled, d, 1, "score")  # N == 1: a matrix-vector product
    return g.model({"x": ["N", seq, d]}, [logit])


def lone_activation_matmul(d: int = 32) -> onnx.ModelProto:
    """A MatMul of two activations that is no attention (no Softmax): a Gram matrix `h·hᵀ` of a projection."""
    g = G()
    h = g.matmul("x", d, d, "proj")
    ht = g.op("Transpose", [h], "hT", perm=[0, 2, 1])
    gram = g.op("MatMul", [h, ht], "gram")
    return g.model({"x": ["N", 16, d]}, [gram])


def residual_from_graph_input() -> onnx.ModelProto:
    """`y = relu(conv(x)) + x` followed by a conv: the residual is the graph input itself."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    s = g.op("Add", [h, "x"], "add")
    return g.model(IMG, [g.conv(s, 32, 32, "c2")])


def concat_graph() -> onnx.ModelProto:
    """Two conv branches concatenated; branch `ra_out` is also read by a conv of its own."""
    g = G()
    a = g.op("Relu", [g.conv("x", 32, 32, "a")], "ra")
    b = g.op("Relu", [g.conv("x", 32, 32, "b")], "rb")
    ya = g.conv(a, 32, 32, "use_a")  # a is quantized for its own conv too
    cat = g.op("Concat", [a, b], "cat", axis=1)
    y = g.conv(cat, 64, 32, "fuse")
    return g.model(IMG, [ya, y])


def pooling_graph() -> onnx.ModelProto:
    """conv -> MaxPool -> conv -> AveragePool -> conv."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    p = g.op("MaxPool", [h], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    h = g.op("Relu", [g.conv(p, 32, 32, "c2")], "r2")
    a = g.op("AveragePool", [h], "avgpool", kernel_shape=[2, 2], strides=[2, 2])
    y = g.conv(a, 32, 32, "c3")
    return g.model(IMG, [y])


def classifier_head() -> onnx.ModelProto:
    """conv -> GlobalAveragePool -> Flatten -> Gemm with 10 classes."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    gap = g.op("GlobalAveragePool", [h], "gap")
    flat = g.op("Flatten", [gap], "flat")
    y = g.op("Gemm", [flat, g.const("fc.w", (10, 32)), g.const("fc.b", (10,))], "fc", transB=1)
    return g.model(IMG, [y])


def small_convs() -> onnx.ModelProto:
    """A depthwise conv and convs with few channels, some kept INT8 by ModelOpt's exceptions."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "pw")], "r")
    dw = g.conv(h, 32, 32, "dw", k=3, group=32)
    small = g.conv(dw, 32, 4, "tiny", k=1)  # 4 out, 32 in (a multiple of 8): INT8 by ModelOpt's rule
    odd = g.conv(small, 4, 12, "odd", k=3)  # 4 -> 12 channels, neither a multiple of 8
    wide = g.conv(h, 32, 12, "wide", k=3)  # 12 out, but 32 in (a multiple of 8): kept INT8 like ModelOpt
    return g.model(IMG, [odd, wide])


def squeeze_excitation() -> onnx.ModelProto:
    """conv + SiLU, then a squeeze-excitation block `silu * sigmoid(...)` before a projection conv."""
    g = G()
    c = g.conv("x", 32, 32, "c1")
    silu = g.op("Mul", [c, g.op("Sigmoid", [c], "sig1")], "silu")
    s = g.op("GlobalAveragePool", [silu], "se_pool")
    s = g.op("Relu", [g.conv(s, 32, 16, "se_fc1", k=1)], "se_relu")
    s = g.op("Sigmoid", [g.conv(s, 16, 32, "se_fc2", k=1)], "se_sig")
    y = g.conv(g.op("Mul", [silu, s], "se_mul"), 32, 32, "proj", k=1)
    return g.model(IMG, [y])


def computed_weight() -> onnx.ModelProto:
    """A conv whose weight is computed at run time (`Abs` of an initializer)."""
    g = G()
    w = g.op("Abs", [g.const("c.w", (32, 32, 3, 3))], "wabs")
    y = g.op("Conv", ["x", w], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.model(IMG, [y])
