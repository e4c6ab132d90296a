"""Sensitivity analysis and FP16 fallback: ranking, the budget met by real evaluation, exact fast path, outputs.

Models: the trained demo DigitsNet (trained once per module), a copy of it made deliberately sensitive at one
layer (a BatchNorm channel scaled by 1000 before a ReLU, the next conv reading it 1000x weaker: the same
function, but one activation with a huge outlier), a tiny randomly initialised resnet18 (residual Adds), and
hand-built graphs for the graph utilities.
"""

from __future__ import annotations

import copy
import json
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import TrtqError, UsageError
from trtq.placement import normalize, plan_qdq
from trtq.progress import set_quiet
from trtq.qdq import insert_qdq
from trtq.runners.onnxrt import OnnxRuntimeRunner
from trtq.sensitivity import (
    SensitivityResult,
    analyze_sensitivity,
    choose_fallback,
    mixed_model,
    resolve_metric,
    top1_agreement,
)
from trtq.sensitivity.analysis import quantized_model, replan
from trtq.sensitivity.evaluate import VariantEvaluator
from trtq.sensitivity.fallback import priority_order, resolve_names
from trtq.sensitivity.graphs import changed_tensors, live_tensors, suffix_model
from trtq.sensitivity.macs import layer_macs

OUTLIER_LAYER = "/conv2/conv2.0/Conv"


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def _minmax(fp32: onnx.ModelProto, x: np.ndarray, tensors: list[str], scale: float = 1.0) -> dict[str, float]:
    """Independent calibration: max |x| of each activation over the data (ONNX Runtime extra outputs)."""
    amax: dict[str, float] = {}
    with OnnxRuntimeRunner(fp32, extra_outputs=[t for t in tensors if t != "input"]) as r:
        for i in range(0, len(x), 64):
            out = r.infer({"input": x[i : i + 64]})
            out["input"] = x[i : i + 64]
            for t in tensors:
                amax[t] = max(amax.get(t, 0.0), float(np.abs(out[t]).max()))
    return {t: v * scale for t, v in amax.items()}


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(model) as r:
        return np.concatenate(
            [next(iter(r.infer({"input": x[i : i + 64]}).values())) for i in range(0, len(x), 64)]
        )


@pytest.fixture(scope="module")
def digits():
    """(trained DigitsNet, 256 validation images, their labels)."""
    from trtq.demo import _normalise, train_digits

    model, _, images, labels = train_digits()
    return model, _normalise(images[:256]), labels[:256]


@pytest.fixture(scope="module")
def demo(digits):
    """The demo model exported, with thresholds at 0.3x max |x|: INT8 clips hard and loses accuracy."""
    from trtq.export import export_onnx

    model, x, y = digits
    fp32 = normalize(export_onnx(model, x[:2]).model)
    plan = plan_qdq(fp32)
    return fp32, _minmax(fp32, x, plan.activations, scale=0.3), x, y


@pytest.fixture(scope="module")
def outlier(digits):
    """The demo model with a huge outlier channel at the input of one convolution (same FP32 function)."""
    from trtq.export import export_onnx

    model, x, _ = digits
    net = copy.deepcopy(model)
    with torch.no_grad():
        bn = net.conv1[1]
        bn.weight[0] *= 1000.0
        bn.bias[0] *= 1000.0
        net.conv2[0].weight[:, 0] /= 1000.0
        assert torch.allclose(net(torch.from_numpy(x)), model(torch.from_numpy(x)), atol=1e-3)
    fp32 = normalize(export_onnx(net, x[:2]).model)
    plan = plan_qdq(fp32)
    return fp32, _minmax(fp32, x, plan.activations), x


@pytest.fixture(scope="module")
def outlier_ranking(outlier):
    fp32, amax, x = outlier
    return analyze_sensitivity(fp32, amax, x, batch_size=64)


# ---- ranking and fallback ------------------------------------------------------------------------------


def test_outlier_layer_is_ranked_first_and_chosen_alone(outlier, outlier_ranking):
    fp32, amax, x = outlier
    sens = outlier_ranking
    assert sens.metric == "top1_agreement" and sens.fp32_metric == 1.0
    assert sens.int8_metric < 0.5  # the outlier wipes out the other channels at that input
    assert sens.ranked_nodes[0] == OUTLIER_LAYER
    top = sens.layer(OUTLIER_LAYER)
    assert top.metric_fp16_alone == 1.0
    assert top.metric_quantized_alone == min(layer.metric_quantized_alone for layer in sens.layers)
    for layer in sens.layers[1:]:  # every other layer alone in FP16 leaves the outlier quantized
        assert layer.metric_fp16_alone < 0.5

    choice = choose_fallback(fp32, amax, x, sensitivity=sens, max_drop=0.5, batch_size=64)
    assert choice.nodes == [OUTLIER_LAYER] and choice.met
    # Confirmed independently: the returned model, run in full, agrees with FP32 within the budget.
    ref, got = _run(fp32, x), _run(choice.model, x)
    assert np.mean(ref.argmax(1) == got.argmax(1)) == pytest.approx(choice.metric) and choice.metric >= 0.995
    conv = next(n for n in choice.model.graph.node if n.name == OUTLIER_LAYER)
    assert not any(i.endswith("_DequantizeLinear_Output") for i in conv.input)  # no Q/DQ on it
    assert OUTLIER_LAYER not in choice.plan.quantized_nodes
    assert set(choice.plan.quantized_nodes) == set(sens.ranked_nodes) - {OUTLIER_LAYER}
    assert 0 < choice.int8_mac_share < choice.all_int8_mac_share


def test_budget_is_met_by_the_mixed_models_own_evaluation(demo):
    fp32, amax, x, y = demo
    sens = analyze_sensitivity(fp32, amax, x, targets=y, batch_size=64)
    assert sens.metric == "top1_accuracy" and sens.int8_metric < sens.fp32_metric - 0.05
    for max_drop in (2.0, 0.0):
        choice = choose_fallback(fp32, amax, x, targets=y, sensitivity=sens, max_drop=max_drop, batch_size=64)
        accuracy = float(np.mean(_run(choice.model, x).argmax(1) == y))  # independent re-evaluation
        assert choice.met and accuracy == pytest.approx(choice.metric)
        assert accuracy >= sens.fp32_metric - max_drop / 100 - 1e-12
        assert choice.evaluations[-1]["met"] or any(e["met"] for e in choice.evaluations)
        if max_drop == 0.0:
            assert accuracy == pytest.approx(sens.fp32_metric)  # the FP32 metric back
        assert 0 < len(choice.nodes) < len(sens.layers)  # a partial fallback, not everything
        # Minimal: dropping any chosen layer breaks the budget (each of these was measured).
        for node in choice.nodes:
            rest = [n for n in choice.nodes if n != node]
            model, _ = mixed_model(fp32, amax, rest)
            assert np.mean(_run(model, x).argmax(1) == y) < sens.fp32_metric - max_drop / 100


def test_fallback_n_and_names(outlier, outlier_ranking):
    fp32, amax, x = outlier
    sens = outlier_ranking
    top2 = choose_fallback(fp32, amax, x, sensitivity=sens, fallback=2, batch_size=64)
    assert top2.nodes == sens.ranked_nodes[:2] and top2.met is None
    named = choose_fallback(fp32, amax, x, fallback=[r"/conv2/.*", "/stem/stem.0/Conv"], batch_size=64)
    assert named.nodes == ["/stem/stem.0/Conv", OUTLIER_LAYER]
    assert named.metric == pytest.approx(
        float(np.mean(_run(fp32, x).argmax(1) == _run(named.model, x).argmax(1)))
    )
    with pytest.raises(UsageError, match="matches no quantized layer"):
        choose_fallback(fp32, amax, x, fallback=["/nothing"], batch_size=64)
    with pytest.raises(UsageError, match="needs the sensitivity ranking"):
        choose_fallback(fp32, amax, x, max_drop=1.0, batch_size=64)
    with pytest.raises(UsageError, match="max-drop"):
        choose_fallback(fp32, amax, x, sensitivity=sens, max_drop=-1.0, batch_size=64)
    assert resolve_names(["/conv[13]/.*"], sens.ranked_nodes) == [
        n for n in sens.ranked_nodes if n.startswith(("/conv1/", "/conv3/"))
    ]


def test_priority_order_is_cost_aware():
    def layer(node, macs, gain, noise):
        from trtq.sensitivity import LayerSensitivity

        return LayerSensitivity(node, "Conv", macs, 1.0, 0.5 + gain, 0.0, 1.0 - noise, rank=0)

    layers = [layer("big", 900, 0.02, 0.5), layer("small", 100, 0.01, 0.3), layer("none", 10, 0.0, 0.2)]
    sens = SensitivityResult("top1_agreement", 1.0, 0.5, 1.0, 100, layers, total_macs=1000)
    # small recovers half as much for a ninth of the compute: first; the layer recovering nothing comes last.
    assert priority_order(sens) == ["small", "big", "none"]


# ---- the fast path: exact, deterministic ---------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet():
    """A randomly initialised torchvision resnet18 (10 classes) at 32x32, exported, with max |x| thresholds."""
    import torchvision

    from trtq.export import export_onnx

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    fp32 = normalize(export_onnx(net, x[:2]).model)
    return fp32, _minmax(fp32, x, plan_qdq(fp32).activations), x


def test_fast_path_equals_running_each_variant_in_full(resnet):
    """Suffix evaluation from cached checkpoints gives the outputs of full runs (resnet18: residual Adds)."""
    fp32, amax, x = resnet
    x = x[:16]
    plan = plan_qdq(fp32)
    nodes = plan.quantized_nodes
    picked = [nodes[1], nodes[len(nodes) // 2], nodes[-2]]
    ev = VariantEvaluator({"input": x[:1]}, len(x), workers=2)
    int8, _ = quantized_model(fp32, plan, amax)
    ev.add_base("fp32", fp32)
    ev.add_base("int8", int8)
    models = {}
    for n in picked:
        models[("q", n)], _ = quantized_model(fp32, replan(fp32, None, [o for o in nodes if o != n]), amax)
        models[("f", n)], _ = quantized_model(fp32, replan(fp32, None, [n]), amax)
        ev.add_variant(("q", n), "fp32", models[("q", n)])
        suffix = ev.add_variant(("f", n), "int8", models[("f", n)])
        if n == nodes[-2]:
            assert suffix.nodes < suffix.total_nodes / 4  # a late layer re-runs only the end of the graph
    ev.run([({"input": x[:8]}, None), ({"input": x[8:]}, None)])
    np.testing.assert_array_equal(next(iter(ev.base_outputs("int8").values())), _run(int8, x))
    for key, model in models.items():
        # Equal up to float rounding: ONNX Runtime may fuse a residual Add into a convolution differently
        # when the Add's other input arrives as a graph input of the suffix.
        np.testing.assert_allclose(
            next(iter(ev.outputs(key).values())), _run(model, x), rtol=1e-5, atol=1e-6, err_msg=str(key)
        )


def test_torchvision_cnn_budget_met_and_zero_drop_gives_fp32_back(resnet):
    fp32, amax, x = resnet
    sens = analyze_sensitivity(fp32, amax, x, batch_size=32)
    assert len(sens.layers) == 20 and sens.int8_metric < 1.0
    ref = _run(fp32, x).argmax(1)
    for max_drop in (5.0, 0.0):
        choice = choose_fallback(fp32, amax, x, sensitivity=sens, max_drop=max_drop, batch_size=32)
        agreement = float(np.mean(_run(choice.model, x).argmax(1) == ref))  # independent re-evaluation
        assert choice.met and agreement == pytest.approx(choice.metric)
        assert agreement >= 1.0 - max_drop / 100
    assert agreement == 1.0


def test_results_are_deterministic(outlier, outlier_ranking):
    fp32, amax, x = outlier
    again = analyze_sensitivity(fp32, amax, x, batch_size=64, workers=1)
    # No cache at all: no checkpoints, every batch its own chunk, sessions re-created per chunk.
    chunked = analyze_sensitivity(fp32, amax, x, batch_size=64, cache_bytes=1)

    def strip(result):
        doc = result.to_json()
        doc.pop("timings_s")
        for layer in doc["layers"]:
            layer.pop("seconds")
        return doc

    assert strip(again) == strip(outlier_ranking)
    # Without checkpoints every variant runs from the input: the same ranking and metrics, and output noise
    # equal up to float rounding (ONNX Runtime fuses the residual Add differently when it is not cut).
    assert chunked.ranked_nodes == outlier_ranking.ranked_nodes
    for a, b in zip(chunked.layers, outlier_ranking.layers):
        assert (a.metric_quantized_alone, a.metric_fp16_alone) == (
            b.metric_quantized_alone,
            b.metric_fp16_alone,
        )
        assert a.noise_quantized_alone == pytest.approx(b.noise_quantized_alone, rel=1e-5)
        assert a.noise_fp16_alone == pytest.approx(b.noise_fp16_alone, rel=1e-5)


# ---- metrics -------------------------------------------------------------------------------------------


def test_user_metrics_two_or_three_arguments_and_entry_points(outlier, monkeypatch):
    fp32, amax, x = outlier
    seen = {}

    def mean_abs_error(ref, out):  # two arguments: no labels; higher is better, so negate
        return -float(np.mean(np.abs(ref["output"] - out["output"])))

    def with_labels(ref, out, labels):
        seen["labels"] = labels
        return top1_agreement(ref, out)

    sens = analyze_sensitivity(fp32, amax, x, metric=mean_abs_error, batch_size=64)
    assert sens.metric == "mean_abs_error" and sens.fp32_metric == 0.0 and sens.int8_metric < 0
    assert sens.ranked_nodes[0] == OUTLIER_LAYER
    labels = np.arange(len(x)) % 10
    analyze_sensitivity(fp32, amax, x, metric=with_labels, targets=labels, batch_size=64)
    np.testing.assert_array_equal(seen["labels"], labels)

    module = types.ModuleType("trtq_test_metric_mod")
    module.score = mean_abs_error
    monkeypatch.setitem(sys.modules, "trtq_test_metric_mod", module)
    assert resolve_metric("trtq_test_metric_mod:score", False).name == "trtq_test_metric_mod:score"
    with pytest.raises(UsageError, match="no function"):
        resolve_metric("trtq_test_metric_mod:missing", False)
    with pytest.raises(UsageError, match="cannot import"):
        resolve_metric("no_such_module_xyz:f", False)
    with pytest.raises(UsageError, match="positional arguments"):
        resolve_metric(lambda a: 0.0, False)
    with pytest.raises(UsageError, match="class labels"):
        resolve_metric("top1_accuracy", False)
    assert resolve_metric(None, True).name == "top1_accuracy"
    assert resolve_metric(None, False).name == "top1_agreement"
    with pytest.raises(TrtqError, match="finite"):
        analyze_sensitivity(fp32, amax, x, metric=lambda r, o: float("nan"), batch_size=64)


# ---- outputs -------------------------------------------------------------------------------------------


def test_build_writes_table_plot_and_mixed_graph(tmp_path, digits_npz):
    from trtq.demo import DEMO_PREPROCESS, DigitsNet
    from trtq.pipeline import build

    torch.manual_seed(0)
    result = build(
        DigitsNet(), calib_data=digits_npz, out=tmp_path / "run", preprocess=DEMO_PREPROCESS,
        max_drop=1.0, build_engine=False, calib_samples=128,
    )  # fmt: skip
    doc = json.loads((tmp_path / "run" / "sensitivity.json").read_text())
    assert doc["format"] == "trtq.sensitivity/1" and len(doc["layers"]) == 4
    for layer in doc["layers"]:
        assert {"node", "op_type", "macs", "metric_quantized_alone", "metric_fp16_alone", "rank"} <= set(
            layer
        )
    assert sorted(layer["rank"] for layer in doc["layers"]) == [1, 2, 3, 4]
    assert doc["fallback"]["met"] is True
    assert (tmp_path / "run" / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "run" / "report.md").read_text()
    assert (
        "## Sensitivity and FP16 fallback" in report and "![per-layer sensitivity](sensitivity.png)" in report
    )
    assert "| FP32 |" in report and "all INT8" in report and "mixed" in report
    assert result.sensitivity.fallback.metric >= doc["fp32_metric"] - 0.01
    assert (
        json.loads((tmp_path / "run" / "report.json").read_text())["sensitivity"]["fallback"]["met"] is True
    )
    mixed = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    for node in doc["fallback"]["nodes"]:
        conv = next(n for n in mixed.graph.node if n.name == node)
        assert not any(i.endswith("_DequantizeLinear_Output") for i in conv.input)


def test_cli_sensitivity(tmp_path, outlier, capsys):
    from trtq.calibration import Calibration
    from trtq.cli import main

    fp32, amax, x = outlier
    onnx.save(fp32, str(tmp_path / "model.onnx"))
    np.save(tmp_path / "eval.npy", x[:128])
    Calibration.from_amax(amax, method="minmax").save(tmp_path / "calibration.json")
    args = ["sensitivity", "-m", str(tmp_path / "model.onnx"), "-c", str(tmp_path / "calibration.json"),
            "-d", str(tmp_path / "eval.npy"), "--max-drop", "1", "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["fallback"]["nodes"] == [OUTLIER_LAYER] and payload["ranked"][0] == OUTLIER_LAYER
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "sensitivity.json",
        "sensitivity.png",
        "sensitivity.md",
        "model.mixed.onnx",
        "model.trt.onnx",
    } <= names
    assert main(args) == 2  # the folder exists: refused without --force
    missing = ["sensitivity", "-m", str(tmp_path / "model.onnx"), "-c", str(tmp_path / "nope.json"),
               "-d", str(tmp_path / "eval.npy"), "--out", str(tmp_path / "o2")]  # fmt: skip
    assert main(missing) == 2
    assert "nope.json" in capsys.readouterr().err


# ---- graph utilities -----------------------------------------------------------------------------------


def _chain() -> onnx.ModelProto:
    """x -> Relu(a) -> Neg(b) -> Add(a, b) (c) -> Relu(y): a is live across b."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], "r0"),
        helper.make_node("Neg", ["a"], ["b"], "n1"),
        helper.make_node("Add", ["a", "b"], ["c"], "add"),
        helper.make_node("Relu", ["c"], ["y"], "r1"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_live_tensors_changed_tensors_and_suffix():
    base = _chain()
    live = live_tensors(base)
    assert live == [
        frozenset({"x"}),
        frozenset({"a"}),
        frozenset({"a", "b"}),
        frozenset({"c"}),
        frozenset({"y"}),
    ]
    variant = onnx.ModelProto()
    variant.CopyFrom(base)
    variant.graph.node[2].op_type = "Sub"  # c changes, and y after it
    assert changed_tensors(base, variant) == {"c", "y"}
    suffix = suffix_model(base, variant, frozenset({"a", "b"}))
    assert suffix.cut == ["a", "b"] and suffix.nodes == 2 and suffix.computed == ["y"]
    assert suffix_model(base, variant, frozenset({"a"})).nodes == 3  # b recomputed from a
    assert suffix_model(base, base).model is None


def test_layer_macs_match_the_formula():
    w = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.zeros((8 * 6 * 6, 5), np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], "flat"),
        helper.make_node("MatMul", ["f", "g"], ["y"], "mm"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w, g],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    macs = layer_macs(model, {"x": np.zeros((3, 4, 12, 12), np.float32)})
    assert macs == {"conv": 8 * 6 * 6 * 4 * 3 * 3, "mm": 8 * 6 * 6 * 5}


def test_variants_differ_from_their_base_only_where_the_layer_acts(outlier):
    """Re-planned variants keep the all-INT8 model's tensor names, so what changed is local."""
    fp32, amax, _ = outlier
    int8 = insert_qdq(fp32, plan_qdq(fp32), amax)
    variant, _ = quantized_model(fp32, replan(fp32, None, ["/conv3/conv3.0/Conv"]), amax)
    changed = changed_tensors(int8, variant)
    assert "/conv3/conv3.0/Conv_output_0" in changed
    assert not changed & {
        "/stem/stem.0/Conv_output_0",
        "/conv1/conv1.0/Conv_output_0",
        "/conv2/conv2.0/Conv_output_0",
    }
