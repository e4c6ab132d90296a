"""`Metric` and its registry: budgets per unit and direction, formatting, errors, resolving what a user names."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from trtq.errors import TrtqError, UsageError
from trtq.metrics import (
    METRICS,
    Metric,
    applicable_metrics,
    default_metric,
    get_metric,
    register_metric,
    resolve_metric,
)

REF = {"logits": np.array([[1.0, 2.0], [3.0, 0.0]], np.float32)}


@pytest.mark.parametrize(
    ("metric", "ref", "value", "drop"),
    [
        (Metric("acc", len), 0.90, 0.885, 1.5),  # fractions: percentage points
        (Metric("snr", len, unit="db"), 40.0, 37.5, 2.5),
        (Metric("err", len, higher_is_better=False, unit="value"), 0.10, 0.25, 0.15),
        (Metric("err_pct", len, higher_is_better=False), 0.01, 0.03, 2.0),
    ],
)
def test_drop_and_meets_follow_the_unit_and_the_direction(metric, ref, value, drop):
    assert metric.drop(ref, value) == pytest.approx(drop)
    assert metric.meets(ref, value, drop) and metric.meets(ref, value, drop + 0.01)
    assert not metric.meets(ref, value, drop - 0.01)
    assert metric.drop(ref, ref) == 0.0 and metric.meets(ref, ref, 0.0)
    better, worse = sorted([ref, value], key=metric.sort_key)
    assert metric.drop(ref, better) <= metric.drop(ref, worse)


def test_format_and_budget_unit_per_unit():
    assert (
        Metric("a", len).format(0.98765) == "98.77%" and Metric("a", len).budget_unit() == "percentage points"
    )
    assert (
        Metric("s", len, unit="db").format(31.4159) == "31.42 dB"
        and Metric("s", len, unit="db").budget_unit() == "dB"
    )
    v = Metric("v", len, unit="value")
    assert v.format(0.000123456789) == "0.000123457" and v.budget_unit() == "units of the metric"
    assert v.format(None) == "—" and Metric("a", len, title="top-1").heading == "top-1" and v.heading == "v"
    assert Metric("a", len, description="d").to_json() == {"name": "a", "higher_is_better": True, "needs": None,
                                                          "unit": "fraction", "kind": "task", "description": "d"}  # fmt: skip


def test_calling_a_metric_checks_what_it_returns():
    def boom(r, o, t):
        raise KeyError("logits")

    with pytest.raises(TrtqError, match="metric boom failed: KeyError: 'logits'"):
        Metric("boom", boom)(REF, REF)
    with pytest.raises(TrtqError, match="metric text returned 'high'; it must return a number"):
        Metric("text", lambda r, o, t: "high")(REF, REF)
    with pytest.raises(TrtqError, match="metric nan returned nan; it must return a finite number"):
        Metric("nan", lambda r, o, t: float("nan"))(REF, REF)

    def usage(r, o, t):
        raise UsageError("needs labels")

    with pytest.raises(UsageError, match="^needs labels$"):  # trtq's own errors pass through unchanged
        Metric("u", usage)(REF, REF)
    assert Metric("two", lambda r, o: 0.5, takes_targets=False)(REF, REF, targets=[1, 2]) == 0.5
    assert Metric("i", lambda r, o, t: np.int64(3))(REF, REF) == 3.0


def test_usable_reads_the_targets_it_needs_and_whether_it_applies():
    m = Metric("m", len, needs="class", applies=lambda ref: "logits" in ref)
    assert m.usable(REF, "class") and not m.usable(REF, None) and not m.usable({"y": REF["logits"]}, "class")
    assert Metric("any", len).usable({}, None)


def test_register_metric_reads_the_arity_and_the_docstring():
    def plugin_score(reference, outputs):
        """Mean of the first output. Higher is better."""
        return float(np.mean(next(iter(outputs.values()))))

    try:
        assert (
            register_metric("test_plugin_score", unit="value", kind="fidelity")(plugin_score) is plugin_score
        )
        m = get_metric("test_plugin_score")
        assert not m.takes_targets and m.description == "Mean of the first output. Higher is better."
        assert m(REF, REF) == pytest.approx(1.5) and not m.auto
        with pytest.raises(ValueError, match="'test_plugin_score' is registered twice"):
            register_metric("test_plugin_score")(plugin_score)
    finally:
        METRICS.unregister("test_plugin_score")
    with pytest.raises(ValueError, match="metric unit must be one of"):
        register_metric("bad", unit="percent")


def test_resolve_metric_names_defaults_entry_points_and_callables(monkeypatch):
    assert resolve_metric(None, "class").name == default_metric("class") == "top1_accuracy"
    assert resolve_metric(None, None).name == default_metric(None) == "top1_agreement"
    assert (
        resolve_metric(None, True).name == "top1_accuracy"
        and resolve_metric(None, False).name == "top1_agreement"
    )
    m = get_metric("cosine")
    assert resolve_metric(m) is m and resolve_metric("cosine") is m
    with pytest.raises(UsageError, match="--metric top1_accuracy needs evaluation data with class labels"):
        resolve_metric("top1_accuracy", None)
    with pytest.raises(
        UsageError,
        match=r"--metric 'cosin' is not a registered metric; choose from .*, or give package\.module:function",
    ):
        resolve_metric("cosin")
    module = types.ModuleType("trtq_test_metric_base_mod")
    module.score = lambda ref, out, targets: 1.0
    module.not_callable = 3
    monkeypatch.setitem(sys.modules, "trtq_test_metric_base_mod", module)
    user = resolve_metric("trtq_test_metric_base_mod:score")
    assert (
        user.name == "trtq_test_metric_base_mod:score"
        and user.takes_targets
        and user.description == "user metric"
    )
    with pytest.raises(UsageError, match="has no function 'not_callable'"):
        resolve_metric("trtq_test_metric_base_mod:not_callable")

    def four(a, b, c, d):
        return 0.0

    with pytest.raises(UsageError, match="metric four takes 4 positional arguments"):
        resolve_metric(four)
    assert not resolve_metric(lambda a, b: 0.0).takes_targets and resolve_metric(lambda *a: 0.0).takes_targets
    with pytest.raises(UsageError, match="must be a name, package.module:function or a callable, not int"):
        resolve_metric(3)  # type: ignore[arg-type]


def test_applicable_metrics_are_the_automatic_ones_that_apply_then_extras_once():
    names = [m.name for m in applicable_metrics(REF, None)]
    assert names == ["top1_agreement", "cosine", "snr_db"]  # registration order; no labels, no top-1 accuracy
    with_labels = [
        m.name for m in applicable_metrics(REF, "class", (get_metric("mse"), get_metric("cosine")))
    ]
    assert with_labels == ["top1_accuracy", "top5_accuracy", "top1_agreement", "cosine", "snr_db", "mse"]
    assert [m.name for m in applicable_metrics({"ids": np.array([[1, 2]])}, None)] == ["top1_agreement"]
