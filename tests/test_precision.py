"""The strongly typed FP16 + INT8 graph: validity, typing, FP32 islands, and agreement with the FP32-typed graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from tests.zoo import export_model
from trtq.placement import normalize, plan_qdq
from trtq.precision import fp32_nodes, measure_ranges, to_strongly_typed
from trtq.qdq import insert_qdq
from trtq.runners.onnxrt import OnnxRuntimeRunner

RNG = np.random.default_rng(0)
F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _types(m: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    g = inferred.graph
    out = {
        vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)
    }
    out.update({t.name: t.data_type for t in g.initializer})
    return out


def _int8(m: onnx.ModelProto, x: np.ndarray, **plan_kw) -> onnx.ModelProto:
    plan = plan_qdq(m, **plan_kw)
    ranges = measure_ranges(normalize(m), [{"x": x}])
    return insert_qdq(
        m, plan, {t: ranges[t] if t in ranges else float(np.abs(x).max()) for t in plan.activations}
    )


def _run(m: onnx.ModelProto, feed: dict) -> np.ndarray:
    with OnnxRuntimeRunner(m) as r:
        return next(iter(r.infer(feed).values()))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def test_everything_fp16_except_graph_io_and_valid(onnx_graph):
    m = onnx_graph("residual_cnn")
    x = RNG.standard_normal((4, 16, 8, 8)).astype(np.float32)
    q = _int8(m, x)
    t = to_strongly_typed(q)
    onnx.checker.check_model(t, full_check=True)
    types = _types(t)  # strict shape inference passes
    assert next(o.version for o in t.opset_import if o.domain == "") >= 19
    assert types["x"] == F32 and types["y"] == F32
    float_like = {n: ty for n, ty in types.items() if ty in (F32, F16)}
    fp32_inside = {n for n, ty in float_like.items() if ty == F32} - {"x", "y"}
    assert fp32_inside == set(), fp32_inside
    # Q/DQ scales are FP16 (DequantizeLinear therefore yields FP16), zero points stay int8
    for n in t.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert types[n.input[1]] == F16 and types[n.input[2]] == TensorProto.INT8
    casts = [n for n in t.graph.node if n.op_type == "Cast"]
    assert [(c.input[0], c.output[0]) for c in casts] == [("x", "x_fp16"), ("y_fp16", "y")]
    a, b = _run(q, {"x": x}), _run(t, {"x": x})
    assert b.dtype == np.float32
    assert _cos(a, b) > 0.999 and (a.argmax(1) == b.argmax(1)).all()


def test_kept_fp32_nodes_get_casts_and_shared_initializer_is_duplicated(onnx_graph):
    m = onnx_graph("residual_cnn")
    x = RNG.standard_normal((2, 16, 8, 8)).astype(np.float32)
    q = _int8(m, x)
    t = to_strongly_typed(q, keep_fp32_nodes=[r"conv\d"], keep_fp32_op_types=["Gemm"])
    types = _types(t)
    by_name = {n.name: n for n in t.graph.node}
    for conv in ("conv1", "conv2"):
        assert all(types[i] == F32 for i in by_name[conv].input)
        assert types[by_name[conv].output[0]] == F32
    assert types["b"] == F32 and "b_fp16" not in types  # the shared bias is only read by FP32 convs
    assert (
        by_name["fc"].output[0] == "y" and types["y"] == F32
    )  # FP32 output layer writes the output directly
    assert types["r1"] == F16
    assert {d.node for d in fp32_nodes(q, keep_fp32_nodes=[r"conv\d"], keep_fp32_op_types=["Gemm"])} == {
        "conv1",
        "conv2",
        "fc",
    }
    a, b = _run(q, {"x": x}), _run(t, {"x": x})
    assert _cos(a, b) > 0.999


def test_shared_initializer_between_fp16_and_fp32_readers_runs(onnx_graph):
    m = onnx_graph("residual_cnn")
    x = RNG.standard_normal((2, 16, 8, 8)).astype(np.float32)
    t = to_strongly_typed(_int8(m, x), keep_fp32_nodes=["conv2"])
    types = _types(t)
    conv1 = next(n for n in t.graph.node if n.name == "conv1")
    conv2 = next(n for n in t.graph.node if n.name == "conv2")
    assert types[conv1.input[2]] == F16 and types[conv2.input[2]] == F32
    assert conv1.input[2] != conv2.input[2]
    _run(t, {"x": x})  # ONNX Runtime loads it (onnxconverter-common's converter fails here)


def test_overflowing_tensors_keep_their_node_fp32(onnx_graph):
    m = onnx_graph("residual_cnn")
    x = RNG.standard_normal((2, 16, 8, 8)).astype(np.float32)
    q = _int8(m, x)
    ranges = measure_ranges(q, [{"x": x}])
    # measure_ranges agrees with a direct ONNX Runtime run
    with OnnxRuntimeRunner(q, extra_outputs=["r1"]) as r:
        assert ranges["r1"] == pytest.approx(float(np.abs(r.infer({"x": x})["r1"]).max()))
    ranges = dict(ranges, s=1e6)
    kept = {d.node: d.reason for d in fp32_nodes(q, ranges=ranges)}
    assert set(kept) == {"add", "relu2"} and "overflow" in kept["add"]
    t = to_strongly_typed(q, ranges=ranges)
    assert _types(t)["s"] == F32


def test_same_model_gives_same_bytes(onnx_graph):
    m = onnx_graph("residual_cnn")
    x = RNG.standard_normal((2, 16, 8, 8)).astype(np.float32)
    q = _int8(m, x)
    assert to_strongly_typed(q).SerializeToString(deterministic=True) == to_strongly_typed(
        q
    ).SerializeToString(deterministic=True)


def test_resize_scales_stay_float32():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], "relu"),
        helper.make_node("Resize", ["r", "", "scales"], ["y"], "up", mode="nearest"),
    ]
    graph = helper.make_graph(
        nodes,
        "r",
        [helper.make_tensor_value_info("x", F32, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", F32, [1, 2, 8, 8])],
        initializer=[scales],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    t = to_strongly_typed(m)
    types = _types(t)
    assert types["scales"] == F32 and types["r"] == F16
    x = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(t, {"x": x}), _run(m, {"x": x}), atol=2e-3)


def _export(model: torch.nn.Module, res: int) -> onnx.ModelProto:
    return export_model(model, np.zeros((1, 3, res, res), np.float32))


@pytest.mark.slow
def test_resnet18_and_vit_typed_graph_agree_with_int8_fp32_graph_and_autocast(tmp_path, make_model):
    """Torchvision CNN and ViT: typed graph vs FP32-typed INT8 graph in ONNX Runtime, tensor types vs AutoCast."""
    from modelopt.onnx.autocast import convert_to_mixed_precision

    vit = make_model("tiny_vit")
    torch.nn.init.normal_(vit.heads.head.weight, std=0.1)  # torchvision zero-inits the head
    # resnet18 continues from the random state the ViT left (seed=None), as this test always built them
    for name, model in (("resnet18", make_model("resnet18", seed=None)), ("vit", vit)):
        m = _export(model, 64)
        x = RNG.standard_normal((8, 3, 64, 64)).astype(np.float32)
        plan = plan_qdq(m)
        ranges = measure_ranges(normalize(m), [{"input": x}])
        q = insert_qdq(m, plan, {k: ranges[k] for k in plan.activations})
        t = to_strongly_typed(q, ranges=ranges)
        onnx.checker.check_model(t, full_check=True)
        types = _types(t)
        a, b = _run(q, {"input": x}), _run(t, {"input": x})
        assert _cos(a, b) > 0.999, name
        assert (a.argmax(1) == b.argmax(1)).mean() >= 7 / 8, name

        onnx.save(q, str(tmp_path / f"{name}.int8.onnx"))
        ac = convert_to_mixed_precision(
            onnx_path=str(tmp_path / f"{name}.int8.onnx"),
            low_precision_type="fp16",
            keep_io_types=True,
            providers=["cpu"],
        )
        ac_types = _types(ac)
        outputs = [o for n in q.graph.node for o in n.output if o in ac_types and o in types]
        float_outputs = [o for o in outputs if ac_types[o] in (F32, F16)]
        assert len(float_outputs) > 20
        # Everything AutoCast types FP16 is FP16 here too, except the exporter's float shape arithmetic
        # (sqrt of the head size in attention), which trtq keeps FP32 on purpose.
        kept = {d.node: d.reason for d in fp32_nodes(q, ranges=ranges)}
        producer = {o: n.name for n in q.graph.node for o in n.output}
        differ = [o for o in float_outputs if types[o] != ac_types[o]]
        for o in differ:
            assert types[o] == F32 and ac_types[o] == F16, (name, o)
            assert "shape arithmetic" in kept[producer[o]] or "output type" in kept[producer[o]], (name, o)
        assert len(differ) <= len(float_outputs) // 10, name
        c = _run(ac, {"input": x})
        assert _cos(b, c) > 0.999, name


def test_trained_like_cnn_typed_graph_runs_right_in_onnxruntime(make_model):
    """Folded BatchNorm gives conv biases far above x_scale * w_scale. ONNX Runtime's WeightBiasQuantization
    rewrite computes bias / (x_scale * w_scale) in FP16, overflows and corrupts the typed graph's output; the
    runner executes Q/DQ as written (that rewrite disabled) and the typed graph agrees with the FP32-typed one."""
    net = make_model("digits_net")
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):  # statistics like a trained model's, not the identity
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-2, 2)
    m = export_model(net, np.zeros((1, 1, 8, 8), np.float32))
    x = RNG.standard_normal((16, 1, 8, 8)).astype(np.float32)
    plan = plan_qdq(m)
    ranges = measure_ranges(normalize(m), [{"input": x}])
    q = insert_qdq(m, plan, {k: ranges[k] for k in plan.activations})
    a, b = _run(q, {"input": x}), _run(to_strongly_typed(q), {"input": x})
    assert np.abs(a - b).max() < 2e-2 * np.abs(a).max()
    assert (a.argmax(1) == b.argmax(1)).all()


def _all_float_values(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {
        vi.name
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
        if vi.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
    }
    names = [o for n in model.graph.node for o in n.output if o in floats]
    with OnnxRuntimeRunner(model, extra_outputs=names) as runner:
        return runner.infer(feed)


def _masked_encoder_int8() -> tuple[onnx.ModelProto, onnx.ModelProto, dict[str, float]]:
    """The masked encoder exported and quantized, calibrated on sentences without padding (so no range shows
    the mask's -3.4e38: only the graph's constant does)."""
    from tests.transformer_models import MaskedEncoder, token_data
    from trtq.calibration import calibrate
    from trtq.export import export_onnx

    fp32 = export_onnx(MaskedEncoder(), token_data(2, padded=False)).model
    calib = [token_data(16, padded=False, seed=1)]
    plan = plan_qdq(fp32)
    cal = calibrate(fp32, calib, plan.activations, ["minmax"])
    int8 = insert_qdq(fp32, plan, cal.amax_for())
    return fp32, int8, measure_ranges(fp32, calib)


def test_an_attention_mask_of_finfo_min_never_becomes_inf_or_nan_in_the_typed_graph():
    """`(1 - mask) * finfo(float32).min` is finite in FP32; cast to FP16 it is -inf. The typed graph keeps the
    mask's path (from the constant to the Softmax) FP32 without data showing it: on padded sentences no tensor
    of the typed graph is inf or NaN where FP32 is finite, and the embeddings agree with FP32."""
    from tests.transformer_models import token_data

    fp32, int8, ranges = _masked_encoder_int8()
    typed = to_strongly_typed(int8, ranges=ranges)
    padded = token_data(8, padded=True, seed=2)
    assert (padded["attention_mask"] == 0).any()
    ref = _all_float_values(fp32, padded)
    assert all(np.isfinite(v).all() for v in ref.values())  # FP32 itself: finite everywhere
    got = _all_float_values(typed, padded)
    bad = [k for k, v in got.items() if not np.isfinite(v).all()]
    assert bad == [], f"the typed graph turns the mask into inf/NaN at {bad[:3]}"
    kept = {d.op_type for d in fp32_nodes(int8, ranges=ranges) if "mask" in d.reason}
    assert {"Mul", "Add", "Softmax"} <= kept, kept  # the additive mask, the masked scores, the Softmax
    assert _cos(ref["output"], got["output"]) > 0.999


def test_decomposed_layernorm_statistics_that_overflow_fp16_stay_fp32():
    """LayerNorm written out (ReduceMean, Sub, Pow, ReduceMean, Sqrt, Div), as opset < 17 exports it: inputs of
    a few hundred square beyond FP16's range; the measured ranges keep the statistics FP32, and the typed
    graph's output stays finite and equal to FP32's."""
    g = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mu"], "n0", axes=[-1], keepdims=1),
            helper.make_node("Sub", ["x", "mu"], ["xc"], "n1"),
            helper.make_node("Pow", ["xc", "two"], ["sq"], "n2"),
            helper.make_node("ReduceMean", ["sq"], ["var"], "n3", axes=[-1], keepdims=1),
            helper.make_node("Add", ["var", "eps"], ["ve"], "n4"),
            helper.make_node("Sqrt", ["ve"], ["sd"], "n5"),
            helper.make_node("Div", ["xc", "sd"], ["y"], "n6"),
        ],
        "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 64])],
        [numpy_helper.from_array(np.float32(2.0), "two"), numpy_helper.from_array(np.float32(1e-5), "eps")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = (np.random.default_rng(0).standard_normal((2, 8, 64)) * 300).astype(np.float32)
    ranges = measure_ranges(model, [{"x": x}])
    assert ranges["sq"] > 65504  # squares beyond FP16
    kept = {d.op_type for d in fp32_nodes(model, ranges=ranges)}
    assert {"Pow", "ReduceMean"} <= kept, kept
    typed = to_strongly_typed(model, ranges=ranges)
    got = _all_float_values(typed, {"x": x})
    assert all(np.isfinite(v).all() for v in got.values())
    np.testing.assert_allclose(got["y"], _all_float_values(model, {"x": x})["y"], atol=2e-2)


def test_a_huge_clip_bound_is_not_a_mask():
    """`clamp(min=0, max=finfo.max)`: the bound is beyond FP16 but the values are not; the Clip (which reads the
    constant) stays FP32, the ops after it do not."""
    big = np.float32(np.finfo(np.float32).max)
    g = helper.make_graph(
        [
            helper.make_node("Clip", ["x", "lo", "hi"], ["c"], "clip"),
            helper.make_node("Mul", ["c", "two"], ["y"], "mul"),
        ],
        "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(np.float32(0), "lo"),
            numpy_helper.from_array(big, "hi"),
            numpy_helper.from_array(np.float32(2), "two"),
        ],  # fmt: skip
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert [d.node for d in fp32_nodes(model)] == ["clip"]
