"""Where Q/DQ land, on small hand-built graphs (in the style of ModelOpt's test_qdq_rules_int8.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtq.placement import PlacementConfig, plan_qdq
from trtq.qdq import insert_qdq


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


def _qdq_runs(m: onnx.ModelProto, plan) -> onnx.ModelProto:
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


def test_conv_inputs_quantized_outputs_not():
    m = residual_block()
    plan = plan_qdq(m)
    assert set(plan.quantized_nodes) == {"stem", "conv1", "conv2", "head"}
    assert plan.weights == {"stem.w": 0, "conv1.w": 0, "conv2.w": 0, "head.w": 0}
    assert "conv2_out" not in plan.activations  # no Q on a weighted op's output
    assert "stem.b" not in plan.weights  # bias stays float
    _qdq_runs(m, plan)


def test_residual_add_quantizes_only_the_residual_input():
    m = residual_block()
    plan = plan_qdq(m)
    assert plan.activations == ["x", "stem_relu_out", "relu1_out", "out_relu_out"]
    # the skip tensor is read quantized by both conv1 and the Add (one shared Q/DQ pair)
    assert plan.consumers["stem_relu_out"] == ["conv1", "add"]
    assert plan.decision_for("add").rule == "ResidualAdd"
    q = _qdq_runs(m, plan)
    add = next(n for n in q.graph.node if n.name == "add")
    assert add.input[0] == "conv2_out" and add.input[1] == "stem_relu_out_DequantizeLinear_Output"
    assert sum(n.op_type == "QuantizeLinear" and n.input[0] == "stem_relu_out" for n in q.graph.node) == 1


def test_residual_add_with_two_conv_branches_quantizes_the_shorter_one():
    plan = plan_qdq(residual_block(downsample=True))
    assert "down_out" in plan.activations and "conv2_out" not in plan.activations
    assert plan.consumers["down_out"] == ["add"]


def test_residual_add_sees_through_batchnorm():
    plan = plan_qdq(residual_block(bn=True))
    assert plan.decision_for("add").quantized
    assert plan.consumers["stem_relu_out"] == ["conv1", "add"]


def test_residual_add_after_excluded_conv_gets_no_qdq():
    m = residual_block()
    plan = plan_qdq(m, PlacementConfig(exclude_nodes=["conv2"]))
    assert "conv2" not in plan.quantized_nodes
    assert "relu1_out" not in plan.activations  # excluded layer: nothing on its input
    assert plan.consumers["stem_relu_out"] == ["conv1"]
    d = plan.decision_for("add")
    assert not d.quantized and "high precision" in d.reason
    q = _qdq_runs(m, plan)
    conv2 = next(n for n in q.graph.node if n.name == "conv2")
    assert conv2.input[0] == "relu1_out" and conv2.input[1] == "conv2.w"


def test_exclusion_by_regex_op_type_and_first_last():
    m = residual_block()
    assert set(plan_qdq(m, PlacementConfig(exclude_nodes=[r"conv\d"])).quantized_nodes) == {"stem", "head"}
    assert plan_qdq(m, PlacementConfig(exclude_op_types=["Conv"])).activations == []
    plan = plan_qdq(m, PlacementConfig(keep_first_last=True))
    assert set(plan.quantized_nodes) == {"conv1", "conv2"}
    assert (
        plan.decision_for("stem").rule == "KeepFirstLast"
        and plan.decision_for("head").rule == "KeepFirstLast"
    )
    assert "x" not in plan.activations


def test_concat_inputs_share_one_scale():
    g = G()
    a = g.op("Relu", [g.conv("x", 32, 32, "a")], "ra")
    b = g.op("Relu", [g.conv("x", 32, 32, "b")], "rb")
    ya = g.conv(a, 32, 32, "use_a")  # a is quantized for its own conv too
    cat = g.op("Concat", [a, b], "cat", axis=1)
    y = g.conv(cat, 64, 32, "fuse")
    m = g.model(IMG, [ya, y])
    plan = plan_qdq(m)
    assert "cat_out" in plan.activations
    assert plan.scale_groups == [["ra_out", "cat_out"]]
    q = insert_qdq(m, plan, {"x": 1.0, "ra_out": 2.0, "cat_out": 5.0})
    scales = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    assert scales["ra_out_scale"] == scales["cat_out_scale"] == np.float32(5.0 / 127)
    assert not plan_qdq(m, PlacementConfig(concat_shared_scale=False)).scale_groups


def test_average_pool_in_int8_chain_maxpool_untouched():
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    p = g.op("MaxPool", [h], "maxpool", kernel_shape=[2, 2], strides=[2, 2])
    h = g.op("Relu", [g.conv(p, 32, 32, "c2")], "r2")
    a = g.op("AveragePool", [h], "avgpool", kernel_shape=[2, 2], strides=[2, 2])
    y = g.conv(a, 32, 32, "c3")
    m = g.model(IMG, [y])
    plan = plan_qdq(m)
    assert "r1_out" not in plan.activations  # nothing in front of MaxPool (it commutes with Q/DQ)
    assert "maxpool_out" in plan.activations
    assert plan.decision_for("maxpool").rule == "Commuting" and not plan.decision_for("maxpool").quantized
    assert plan.consumers["r2_out"] == ["avgpool"] and "avgpool_out" in plan.activations
    assert plan.decision_for("avgpool").rule == "PoolingChain"
    assert "r2_out" not in plan_qdq(m, PlacementConfig(pooling=False)).activations


def test_global_pool_before_high_precision_head_follows_the_conv():
    """GAP whose input a quantized conv writes is pooled in INT8 even though the classifier stays FP."""
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "c1")], "r1")
    gap = g.op("GlobalAveragePool", [h], "gap")
    flat = g.op("Flatten", [gap], "flat")
    y = g.op("Gemm", [flat, g.const("fc.w", (10, 32)), g.const("fc.b", (10,))], "fc", transB=1)
    plan = plan_qdq(g.model(IMG, [y]))
    assert plan.decision_for("fc").rule == "SmallOrGemv"  # [batch=1, 10]
    assert plan.consumers["r1_out"] == ["gap"]
    assert "flat_out" not in plan.activations


def test_depthwise_and_small_convs():
    g = G()
    h = g.op("Relu", [g.conv("x", 32, 32, "pw")], "r")
    dw = g.conv(h, 32, 32, "dw", k=3, group=32)
    small = g.conv(dw, 32, 4, "tiny", k=1)  # 4 out, 32 in (a multiple of 8): INT8 by ModelOpt's rule
    odd = g.conv(small, 4, 12, "odd", k=3)  # 4 -> 12 channels, neither a multiple of 8
    wide = g.conv(h, 32, 12, "wide", k=3)  # 12 out, but 32 in (a multiple of 8): kept INT8 like ModelOpt
    m = g.model(IMG, [odd, wide])
    plan = plan_qdq(m)
    assert "dw" in plan.quantized_nodes and plan.weights["dw.w"] == 0
    assert {"tiny", "wide"} <= set(plan.quantized_nodes)
    assert plan.decision_for("odd").rule == "SmallConv"
    assert "tiny_out" not in plan.activations  # the skipped conv's input gets nothing
    assert plan.consumers["dw_out"] == ["tiny"]
    assert "odd" in plan_qdq(m, PlacementConfig(skip_small_convs=False)).quantized_nodes


def test_squeeze_excitation_mul_runs_in_int8_silu_is_not_a_product():
    g = G()
    c = g.conv("x", 32, 32, "c1")
    silu = g.op("Mul", [c, g.op("Sigmoid", [c], "sig1")], "silu")
    s = g.op("GlobalAveragePool", [silu], "se_pool")
    s = g.op("Relu", [g.conv(s, 32, 16, "se_fc1", k=1)], "se_relu")
    s = g.op("Sigmoid", [g.conv(s, 16, 32, "se_fc2", k=1)], "se_sig")
    y = g.conv(g.op("Mul", [silu, s], "se_mul"), 32, 32, "proj", k=1)
    plan = plan_qdq(g.model(IMG, [y]))
    assert plan.decision_for("silu") is None  # an activation, fused into c1
    assert "c1_out" not in plan.activations and "sig1_out" not in plan.activations
    assert plan.decision_for("se_mul").rule == "Int8Elementwise"
    assert set(plan.consumers["silu_out"]) == {"se_pool", "se_mul"}
    assert plan.consumers["se_sig_out"] == ["se_mul"]


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


def test_transformer_block_matmuls_layernorm_residuals():
    m = transformer_block()
    plan = plan_qdq(m)
    assert set(plan.quantized_nodes) == {"q", "k", "v", "qk", "av", "o", "fc1", "fc2"}
    assert plan.decision_for("score").rule == "SmallOrGemv"
    # constant B of MatMul: per-channel along the last (output) axis
    assert all(plan.weights[f"{n}.w"] == 1 for n in ("q", "k", "v", "o", "fc1", "fc2"))
    # activation x activation MatMuls: both inputs quantized per-tensor
    assert plan.consumers["q_out"] == ["qk"] and plan.consumers["kT_out"] == ["qk"]
    assert plan.consumers["softmax_out"] == ["av"] and plan.consumers["v_out"] == ["av"]
    # LayerNorm output feeds the projections once (shared Q/DQ); LayerNorm inputs and residual Adds stay FP
    assert plan.consumers["ln1_out"] == ["q", "k", "v"]
    assert "x" not in plan.activations and "res1_out" not in plan.activations
    assert not plan.decision_for("res1").quantized and not plan.decision_for("res2").quantized
    # the scalar attention scale makes Mul a unary op: not a candidate
    assert plan.decision_for("scale_mul") is None and "qk_out" not in plan.activations
    _qdq_runs(m, plan)


def test_gemm_and_conv_transpose_axes():
    g = G()
    flat = g.op("Flatten", ["x"], "flat")
    a = g.op("Gemm", [flat, g.const("ga.w", (32, 2048)), g.const("ga.b", (32,))], "ga", transB=1)
    b = g.op("Gemm", [a, g.const("gb.w", (32, 64))], "gb")
    up = g.op("ConvTranspose", ["x", g.const("up.w", (32, 16, 2, 2))], "up", strides=[2, 2])
    plan = plan_qdq(g.model(IMG, [b, up]), PlacementConfig(batch_hint=8))
    assert plan.weights == {"ga.w": 0, "gb.w": 1, "up.w": 1}
    assert set(plan.quantized_nodes) == {"ga", "gb", "up"}
    # at batch 1 the Gemms are matrix-vector products
    assert set(plan_qdq(g.model(IMG, [b, up])).quantized_nodes) == {"up"}


def test_plan_is_deterministic_and_explains_every_candidate():
    m = residual_block(downsample=True)
    a, b = plan_qdq(m), plan_qdq(m)
    assert a == b
    assert {d.node for d in a.decisions} >= {"stem", "conv1", "conv2", "down", "head", "add"}
    assert all(d.reason for d in a.decisions)


def test_legacy_identity_and_constant_nodes_are_normalised():
    g = G()
    g.nodes.append(helper.make_node("Identity", ["c1.w_raw"], ["c1.w"], "id_w"))
    g.const("c1.w_raw", (32, 32, 3, 3))
    g.nodes.append(
        helper.make_node(
            "Constant", [], ["c1.b"], "const_b", value=numpy_helper.from_array(np.zeros(32, np.float32))
        )
    )
    y = g.op("Conv", ["x", "c1.w", "c1.b"], "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    m = g.model(IMG, [y])
    plan = plan_qdq(m)
    assert plan.weights == {"c1.w_raw": 0}
    q = _qdq_runs(m, plan)
    assert {n.op_type for n in q.graph.node} == {"Conv", "QuantizeLinear", "DequantizeLinear"}


@pytest.mark.parametrize("bad", ["nope", "conv9"])
def test_unknown_exclusions_are_harmless(bad):
    assert plan_qdq(residual_block(), PlacementConfig(exclude_nodes=[bad])).quantized_nodes


def test_excluded_residual_add_gets_one_decision_and_no_qdq():
    plan = plan_qdq(residual_block(), PlacementConfig(exclude_nodes=["add"]))
    assert [d.rule for d in plan.decisions if d.node == "add"] == ["ExcludedByName"]
    assert plan.consumers["stem_relu_out"] == ["conv1"]
