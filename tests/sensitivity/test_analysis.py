"""Per-layer sensitivity: the outlier layer ranked first, determinism, user metrics, re-planned variants.

Models: tests/sensitivity/fixtures.py (the trained demo DigitsNet and its outlier variant).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tests.sensitivity.fixtures import OUTLIER_LAYER, run_all
from trtq.errors import TrtqError, UsageError
from trtq.placement import plan_qdq
from trtq.progress import set_quiet
from trtq.qdq import insert_qdq
from trtq.sensitivity import (
    analyze_sensitivity,
    choose_fallback,
    resolve_metric,
    top1_agreement,
)
from trtq.sensitivity.analysis import quantized_model, replan
from trtq.sensitivity.graphs import changed_tensors


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


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
    ref, got = run_all(fp32, x), run_all(choice.model, x)
    assert np.mean(ref.argmax(1) == got.argmax(1)) == pytest.approx(choice.metric) and choice.metric >= 0.995
    conv = next(n for n in choice.model.graph.node if n.name == OUTLIER_LAYER)
    assert not any(i.endswith("_DequantizeLinear_Output") for i in conv.input)  # no Q/DQ on it
    assert OUTLIER_LAYER not in choice.plan.quantized_nodes
    assert set(choice.plan.quantized_nodes) == set(sens.ranked_nodes) - {OUTLIER_LAYER}
    assert 0 < choice.int8_mac_share < choice.all_int8_mac_share


def test_results_are_deterministic(outlier, outlier_ranking):
    fp32, amax, x = outlier
    again = analyze_sensitivity(fp32, amax, x, batch_size=64, workers=1, alone_int8=True)
    # No cache at all: no checkpoints, every batch its own chunk, sessions re-created per chunk.
    chunked = analyze_sensitivity(fp32, amax, x, batch_size=64, cache_bytes=1, alone_int8=True)

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


def test_alone_int8_is_opt_in_and_does_not_change_the_ranking(outlier, outlier_ranking, monkeypatch):
    from trtq.sensitivity.analysis import SensitivityResult
    from trtq.sensitivity.evaluate import VariantEvaluator

    fp32, amax, x = outlier
    added = []
    original = VariantEvaluator.add_variant

    def counting(self, key, base, model):
        added.append(key[0])
        return original(self, key, base, model)

    monkeypatch.setattr(VariantEvaluator, "add_variant", counting)
    sens = analyze_sensitivity(fp32, amax, x, batch_size=64)
    # One variant per layer (alone FP16), where --alone-int8 builds two.
    assert added == ["fp16"] * len(sens.layers)
    assert all(
        layer.metric_quantized_alone is None and layer.noise_quantized_alone is None for layer in sens.layers
    )
    # What the ranking uses is measured the same way: the same order, the same alone-FP16 numbers.
    assert sens.ranked_nodes == outlier_ranking.ranked_nodes
    for a, b in zip(sens.layers, outlier_ranking.layers):
        assert a.metric_fp16_alone == b.metric_fp16_alone
        assert a.noise_fp16_alone == pytest.approx(b.noise_fp16_alone, rel=1e-5)
        assert a.cosine_fp16_alone == pytest.approx(b.cosine_fp16_alone, rel=1e-6)
    # sensitivity.json writes null for what was not measured, and reads it back.
    doc = sens.to_json()
    assert doc["layers"][0]["metric_quantized_alone"] is None
    assert SensitivityResult.from_json(doc).layers[0].metric_quantized_alone is None
    assert SensitivityResult.from_json(outlier_ranking.to_json()).layers[0].metric_quantized_alone is not None


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
