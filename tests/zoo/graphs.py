"""Hand-built ONNX graphs the tests plan, quantize, type, run and build, registered by name.

Weights come from a seeded generator inside each builder, so a graph is the same in every test that asks for it.
Names of tensors and nodes are part of what the tests assert on: change a builder and its tests change with it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.zoo.builder import IMG, G, model_of
from tests.zoo.registry import graph

__all__: list[str] = []

F32 = TensorProto.FLOAT


def _vi(name: str, shape, dtype: int = F32) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


# ---- small CNNs ---------------------------------------------------------------------------------------------


@graph("tiny_cnn")
def tiny_cnn_onnx(widths: tuple[int, int] = (8, 8), classes: int = 10) -> onnx.ModelProto:
    """The torch `tiny_cnn` exported: input x (b, 3, 16, 16), output y (b, classes), opset 17, dynamic batch b."""
    from tests.zoo.models import export_model, tiny_cnn

    return export_model(tiny_cnn(widths, classes), np.zeros((1, 3, 16, 16), np.float32), input_names=["x"],
                        output_names=["y"], dynamic="b")  # fmt: skip


@graph("conv_relu")
def conv_relu(batch: str | int = "N") -> onnx.ModelProto:
    """Conv(3 -> 8, 3x3, same padding) -> y, Relu -> z, over x (batch, 3, 16, 16); no bias, unnamed nodes."""
    w = _init("w", np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    return model_of(nodes, [_vi("x", [batch, 3, 16, 16])], [_vi("z", [batch, 8, 16, 16])], [w])


@graph("conv_relu_conv")
def conv_relu_conv(identity_weights: bool = False, opset: int = 17, seed: int = 0) -> onnx.ModelProto:
    """x -> Conv(w1, b1) -> Relu (r1) -> Conv 1x1 (w2) -> y, 16 -> 32 -> 32 channels on 8x8; w1 channel 5 is all zero.

    `identity_weights` puts an Identity in front of w1 (as the legacy exporter does).
    """
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1
    w1[5] = 0.0  # an all-zero channel exercises the scale floor
    b1 = rng.standard_normal(32).astype(np.float32)
    w2 = rng.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.1
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
    m = model_of(nodes, [_vi("x", ["N", 16, 8, 8])], [_vi("y", ["N", 32, 8, 8])],
                 [_init("w1", w1), _init("b1", b1), _init("w2", w2)], opset=opset, ir_version=8)  # fmt: skip
    onnx.checker.check_model(m, full_check=True)
    return m


@graph("residual_cnn")
def residual_cnn(seed: int = 0) -> onnx.ModelProto:
    """conv1 -> relu1 -> conv2 -> add(residual r1) -> relu2 -> GAP -> flatten -> Gemm (fc), x (N, 16, 8, 8) -> y (N, 10).

    Both convs read one bias initializer `b` (a shared initializer the typed graph must handle).
    """
    rng = np.random.default_rng(seed)

    def c(name: str, shape: tuple[int, ...], scale: float = 0.2) -> onnx.TensorProto:
        return _init(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    inits = [
        c("w1", (32, 16, 3, 3)),
        c("w2", (32, 32, 3, 3)),
        c("b", (32,)),
        c("fc.w", (10, 32)),
        c("fc.b", (10,)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b"], ["c1"], "conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2", "b"], ["c2"], "conv2", pads=[1] * 4),
        helper.make_node("Add", ["c2", "r1"], ["s"], "add"),
        helper.make_node("Relu", ["s"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], "gap"),
        helper.make_node("Flatten", ["p"], ["f"], "flat"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], "fc", transB=1),
    ]
    return model_of(
        nodes, [_vi("x", ["N", 16, 8, 8])], [_vi("y", ["N", 10])], inits, name="cnn", ir_version=8
    )


@graph("qdq_conv")
def qdq_conv(
    batch: str | int = "N",
    height: str | int = 8,
    qdq: bool = True,
    quantize_weight: bool = True,
    fp16: bool = False,
) -> onnx.ModelProto:
    """A Conv over x (batch, 3, height, 8) -> y (4 channels, weights all ones), optionally with Q/DQ and an FP16 tail.

    `qdq`: Q/DQ on x (scale 0.1) and, with `quantize_weight`, on the weight (per channel, scale 0.01);
    `fp16`: Cast -> FP16 Relu -> Cast after the conv (output z).
    """
    inits = [_init("w", np.ones((4, 3, 3, 3), np.float32))]
    nodes = []
    x, weight = "x", "w"
    if qdq:
        inits += [_init("s", np.array(0.1, np.float32)), _init("zp", np.array(0, np.int8))]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xdq"]),
        ]
        x = "xdq"
        if quantize_weight:
            inits += [_init("ws", np.full((4,), 0.01, np.float32)), _init("wzp", np.zeros((4,), np.int8))]
            nodes += [
                helper.make_node("QuantizeLinear", ["w", "ws", "wzp"], ["wq"], axis=0),
                helper.make_node("DequantizeLinear", ["wq", "ws", "wzp"], ["wdq"], axis=0),
            ]
            weight = "wdq"
    nodes.append(helper.make_node("Conv", [x, weight], ["y"], pads=[1, 1, 1, 1]))
    out = "y"
    if fp16:
        nodes += [
            helper.make_node("Cast", ["y"], ["y16"], to=TensorProto.FLOAT16),
            helper.make_node("Relu", ["y16"], ["r16"]),
            helper.make_node("Cast", ["r16"], ["z"], to=TensorProto.FLOAT),
        ]
        out = "z"
    return model_of(nodes, [_vi("x", [batch, 3, height, 8])], [_vi(out, [batch, 4, height, 8])], inits)


@graph("linear_classifier")
def linear_classifier(weight_scale: float = 1.0, qdq: bool = False) -> onnx.ModelProto:
    """x (N, 3, 4, 4) -> Flatten -> [Q/DQ, scale 0.05] -> Gemm -> logits (N, 10); weights seeded normals * scale."""
    w = (np.random.default_rng(0).standard_normal((10, 3 * 4 * 4)) * weight_scale).astype(np.float32)
    inits = [_init("w", w)]
    nodes = [helper.make_node("Flatten", ["x"], ["flat"])]
    src = "flat"
    if qdq:
        inits += [_init("s", np.array(0.05, np.float32)), _init("zp", np.array(0, np.int8))]
        nodes += [
            helper.make_node("QuantizeLinear", ["flat", "s", "zp"], ["fq"]),
            helper.make_node("DequantizeLinear", ["fq", "s", "zp"], ["fdq"]),
        ]
        src = "fdq"
    nodes.append(helper.make_node("Gemm", [src, "w"], ["logits"], transB=1))
    return model_of(nodes, [_vi("x", ["N", 3, 4, 4])], [_vi("logits", ["N", 10])], inits)


@graph("dynamic_weight_conv")
def dynamic_weight_conv() -> onnx.ModelProto:
    """Two convs on x (N, 16, 8, 8); the first one's weight is computed at run time (Mul), which TensorRT cannot quantize."""
    rng = np.random.default_rng(0)
    inits = [
        _init("w1", rng.standard_normal((16, 16, 3, 3)).astype(np.float32)),
        _init("half", np.array(0.5, np.float32)),
        _init("w2", rng.standard_normal((32, 16, 3, 3)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Mul", ["w1", "half"], ["w1_scaled"], name="scale_w1"),
        helper.make_node("Conv", ["x", "w1_scaled"], ["c1"], name="conv_dynamic_weight", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv_static_weight", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    return model_of(nodes, [_vi("x", ["N", 16, 8, 8])], [_vi("y", ["N", 32])], inits)


# ---- graphs for graph utilities and ONNX helpers ------------------------------------------------------------


@graph("live_chain")
def live_chain() -> onnx.ModelProto:
    """x -> Relu (a) -> Neg (b) -> Add(a, b) (c) -> Relu (y), on (None, 4): a is live across b."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], "r0"),
        helper.make_node("Neg", ["a"], ["b"], "n1"),
        helper.make_node("Add", ["a", "b"], ["c"], "add"),
        helper.make_node("Relu", ["c"], ["y"], "r1"),
    ]
    return model_of(nodes, [_vi("x", [None, 4])], [_vi("y", [None, 4])])


@graph("two_inputs")
def two_inputs() -> onnx.ModelProto:
    """features (batch, 4) float and token_ids (batch, 6) int64 -> MatMul(features, ones) + ReduceMean(Cast(ids)).

    The weight w is also listed as a graph input (as old exporters do), so it must not count as an input.
    """
    w = _init("w", np.ones((4, 2), np.float32))
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["mm"]),
        helper.make_node("Cast", ["token_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["ids_f"], ["ids_mean"], axes=[1], keepdims=1),
        helper.make_node("Add", ["mm", "ids_mean"], ["output"]),
    ]
    inputs = [
        _vi("features", ["batch", 4]),
        _vi("w", [4, 2]),
        _vi("token_ids", ["batch", 6], TensorProto.INT64),
    ]
    return model_of(nodes, inputs, [_vi("output", ["batch", 2])], [w], name="two_inputs")


# ---- placement graphs (ModelOpt's test_qdq_rules_int8.py style): every output is `<node>_out` -----------


@graph("residual_block")
def residual_block(downsample: bool = False, bn: bool = False) -> onnx.ModelProto:
    """stem conv+relu, conv1+relu, conv2 [+BatchNormalization], Add with the stem (or a 1x1 `down` conv), relu, head conv."""
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


@graph("transformer_block")
def transformer_block(seq: int = 16, d: int = 32) -> onnx.ModelProto:
    """Pre-LN attention (q, k, v, qk, scale_mul, softmax, av, o) and MLP (fc1, relu, fc2) with residuals; a 1-wide score head."""
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


@graph("lone_activation_matmul")
def lone_activation_matmul(d: int = 32) -> onnx.ModelProto:
    """A MatMul of two activations that is no attention (no Softmax): a Gram matrix `h·hᵀ` of a projection."""
    g = G()
    h = g.matmul("x", d, d, "proj")
    ht = g.op("Transpose", [h], "hT", perm=[0, 2, 1])
    gram = g.op("MatMul", [h, ht], "gram")
    return g.model({"x": ["N", 16, d]}, [gram])


@graph("residual_from_graph_input")
def residual_from_graph_input() -> onnx.ModelProto:
    """`y = relu(conv(x)) + x` followed by a conv: the residual is the graph input itself."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    s = g.op("Add", [h, "x"], "add")
    return g.model(IMG, [g.conv(s, 32, 32, "c2")])


@graph("concat")
def concat_graph() -> onnx.ModelProto:
    """Two conv branches concatenated; branch `ra_out` is also read by a conv of its own."""
    g = G()
    a = g.op("Relu", [g.conv("x", 32, 32, "a")], "ra")
    b = g.op("Relu", [g.conv("x", 32, 32, "b")], "rb")
    ya = g.conv(a, 32, 32, "use_a")  # a is quantized for its own conv too
    cat = g.op("Concat", [a, b], "cat", axis=1)
    y = g.conv(cat, 64, 32, "fuse")
    return g.model(IMG, [ya, y])


@graph("pooling")
def pooling_graph() -> onnx.ModelProto:
    """conv -> MaxPool -> conv -> AveragePool -> conv."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    p = g.op("MaxPool", [h], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    h = g.op("Relu", [g.conv(p, 32, 32, "c2")], "r2")
    a = g.op("AveragePool", [h], "avgpool", kernel_shape=[2, 2], strides=[2, 2])
    y = g.conv(a, 32, 32, "c3")
    return g.model(IMG, [y])


@graph("classifier_head")
def classifier_head() -> onnx.ModelProto:
    """conv -> GlobalAveragePool -> Flatten -> Gemm with 10 classes."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    gap = g.op("GlobalAveragePool", [h], "gap")
    flat = g.op("Flatten", [gap], "flat")
    y = g.op("Gemm", [flat, g.const("fc.w", (10, 32)), g.const("fc.b", (10,))], "fc", transB=1)
    return g.model(IMG, [y])


@graph("small_convs")
def small_convs() -> onnx.ModelProto:
    """A depthwise conv and convs with few channels, some kept INT8 by ModelOpt's exceptions."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "pw")], "r")
    dw = g.conv(h, 32, 32, "dw", k=3, group=32)
    small = g.conv(dw, 32, 4, "tiny", k=1)  # 4 out, 32 in (a multiple of 8): INT8 by ModelOpt's rule
    odd = g.conv(small, 4, 12, "odd", k=3)  # 4 -> 12 channels, neither a multiple of 8
    wide = g.conv(h, 32, 12, "wide", k=3)  # 12 out, but 32 in (a multiple of 8): kept INT8 like ModelOpt
    return g.model(IMG, [odd, wide])


@graph("squeeze_excitation")
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


@graph("computed_weight")
def computed_weight() -> onnx.ModelProto:
    """A conv whose weight is computed at run time (`Abs` of an initializer)."""
    g = G()
    w = g.op("Abs", [g.const("c.w", (32, 32, 3, 3))], "wabs")
    y = g.op("Conv", ["x", w], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.model(IMG, [y])
