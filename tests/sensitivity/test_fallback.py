"""FP16 fallback: the budget met by the mixed model's own evaluation, minimal sets, N and named sets, cost order.

Models: tests/sensitivity/fixtures.py (the trained demo DigitsNet with hard-clipping thresholds, its outlier
variant, a random-init torchvision resnet18).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.sensitivity.fixtures import OUTLIER_LAYER, run_all
from trtq.errors import UsageError
from trtq.progress import set_quiet
from trtq.sensitivity import SensitivityResult, analyze_sensitivity, choose_fallback, mixed_model
from trtq.sensitivity.fallback import priority_order, resolve_names


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def test_budget_is_met_by_the_mixed_models_own_evaluation(demo):
    fp32, amax, x, y = demo
    sens = analyze_sensitivity(fp32, amax, x, targets=y, batch_size=64)
    assert sens.metric == "top1_accuracy" and sens.int8_metric < sens.fp32_metric - 0.05
    for max_drop in (2.0, 0.0):
        choice = choose_fallback(fp32, amax, x, targets=y, sensitivity=sens, max_drop=max_drop, batch_size=64)
        accuracy = float(np.mean(run_all(choice.model, x).argmax(1) == y))  # independent re-evaluation
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
            assert np.mean(run_all(model, x).argmax(1) == y) < sens.fp32_metric - max_drop / 100


def test_fallback_n_and_names(outlier, outlier_ranking):
    fp32, amax, x = outlier
    sens = outlier_ranking
    top2 = choose_fallback(fp32, amax, x, sensitivity=sens, fallback=2, batch_size=64)
    assert top2.nodes == sens.ranked_nodes[:2] and top2.met is None
    named = choose_fallback(fp32, amax, x, fallback=[r"/conv2/.*", "/stem/stem.0/Conv"], batch_size=64)
    assert named.nodes == ["/stem/stem.0/Conv", OUTLIER_LAYER]
    assert named.metric == pytest.approx(
        float(np.mean(run_all(fp32, x).argmax(1) == run_all(named.model, x).argmax(1)))
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


def test_torchvision_cnn_budget_met_and_zero_drop_gives_fp32_back(resnet):
    fp32, amax, x = resnet
    sens = analyze_sensitivity(fp32, amax, x, batch_size=32)
    assert len(sens.layers) == 20 and sens.int8_metric < 1.0
    ref = run_all(fp32, x).argmax(1)
    for max_drop in (5.0, 0.0):
        choice = choose_fallback(fp32, amax, x, sensitivity=sens, max_drop=max_drop, batch_size=32)
        agreement = float(np.mean(run_all(choice.model, x).argmax(1) == ref))  # independent re-evaluation
        assert choice.met and agreement == pytest.approx(choice.metric)
        assert agreement >= 1.0 - max_drop / 100
    assert agreement == 1.0
