"""Choose which layers leave INT8 (FP16 fallback) so the assembled mixed model meets an accuracy budget.

Every candidate set is judged by evaluating the mixed model it gives, in full, on the evaluation data:
single-layer numbers only decide the order in which layers are tried, never whether a set is good enough.

`rank_by="cosine"` or `"kl"` (the default, cosine): greedy forward selection on that continuous measure,
re-evaluating the best candidates' gain given the layers already chosen (`trtq.sensitivity.search`).
`rank_by="metric"`: a static order on the budget metric (cost-aware: layers whose fallback alone recovers
some of the metric come first, by metric recovered per unit of compute; then the others by output noise
removed per unit of compute), its shortest prefix that meets the budget (doubling, then bisection). Compute
is the MACs share with a floor of `MIN_COST` of the total per layer, standing in for the reformat a precision
switch costs, so tiny layers are not free. Both then try to drop each chosen layer again, most expensive
first. Every evaluated set is recorded; the answer is the one meeting the budget with the highest INT8 share
of MACs, and the non-dominated sets are the Pareto front (metric against INT8 share of MACs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.errors import UsageError
from trtq.metrics import Metric, MetricFn, resolve_metric
from trtq.placement import PlacementConfig, QDQPlan, normalize, plan_qdq
from trtq.sensitivity.analysis import (
    RANK_BY,
    EvalData,
    SensitivityResult,
    calibrated,
    quantized_model,
    replan,
)
from trtq.sensitivity.evaluate import run_model
from trtq.sensitivity.macs import layer_macs
from trtq.sensitivity.search import Judge, best_meeting, greedy_search, pareto_front, prefix_search

__all__ = ["FallbackResult", "choose_fallback", "mixed_model", "resolve_names", "priority_order", "MIN_COST"]

#: Smallest cost a layer is given, as a share of all weighted-layer MACs divided by the layer count.
MIN_COST = 0.1


@dataclass
class FallbackResult:
    """The chosen fallback set and the mixed model's measured metric.

    Attributes:
        nodes: layers kept out of INT8, in the order they were chosen.
        metric: the mixed model's metric, measured on the evaluation data.
        fp32_metric: the FP32 model's metric on the same data.
        int8_metric: the all-INT8 model's metric.
        metric_name: which metric.
        max_drop: the budget in percentage points (None when the set was given).
        met: whether `metric >= fp32_metric - max_drop / 100` (None without a budget).
        int8_mac_share: share of weighted-layer MACs that run INT8 in the mixed model.
        all_int8_mac_share: the same for the all-INT8 model.
        evaluations: every mixed model evaluated (`trtq.sensitivity.search.Evaluation.to_json`): nodes, metric,
            measure, INT8 share of MACs, whether it met the budget, its source and whether it is on the front.
        skipped_qdq: activations a re-plan wanted quantized but that have no calibrated amax (left FP).
        model: the mixed Q/DQ model (FP32 typed).
        plan: its plan.
        seconds: time spent choosing.
        rank_by: how candidates were ranked (`trtq.sensitivity.analysis.RANK_BY`).
        measure_name: the continuous measure every evaluation records (a `trtq.metrics` name).
        fp32_measure, int8_measure: that measure for FP32 and all-INT8.
        measure: that measure for the chosen set.
    """

    nodes: list[str]
    metric: float
    fp32_metric: float
    int8_metric: float
    metric_name: str
    max_drop: float | None
    met: bool | None
    int8_mac_share: float
    all_int8_mac_share: float
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    skipped_qdq: list[str] = field(default_factory=list)
    model: onnx.ModelProto | None = field(default=None, repr=False)
    plan: QDQPlan | None = field(default=None, repr=False)
    seconds: float = 0.0
    higher_is_better: bool = True
    unit: str = "fraction"
    rank_by: str = "cosine"
    measure_name: str = "cosine"
    fp32_measure: float | None = None
    int8_measure: float | None = None
    measure: float | None = None

    @property
    def front(self) -> list[dict[str, Any]]:
        """The Pareto front: evaluations no other beats on both INT8 share of MACs and metric."""
        return [e for e in self.evaluations if e.get("front")]

    @property
    def searched(self) -> int:
        """Mixed models the search evaluated (not counting the analysis's alone-FP16 models)."""
        return sum(1 for e in self.evaluations if e.get("source", "search") == "search")

    @property
    def drop(self) -> float:
        """How much worse the mixed model is than FP32, in the budget's unit (points for fraction metrics)."""
        d = self.fp32_metric - self.metric if self.higher_is_better else self.metric - self.fp32_metric
        return 100.0 * d if self.unit == "fraction" else d

    def to_json(self) -> dict[str, Any]:
        """The `fallback` section of sensitivity.json."""
        return {
            "nodes": list(self.nodes),
            "metric": self.metric_name,
            "fp32_metric": self.fp32_metric,
            "int8_metric": self.int8_metric,
            "mixed_metric": self.metric,
            "drop_points": self.drop,
            "max_drop_points": self.max_drop,
            "met": self.met,
            "int8_mac_share": self.int8_mac_share,
            "all_int8_mac_share": self.all_int8_mac_share,
            "rank_by": self.rank_by,
            "measure": self.measure_name,
            "fp32_measure": self.fp32_measure,
            "int8_measure": self.int8_measure,
            "mixed_measure": self.measure,
            "pareto": sorted(self.front, key=lambda e: -e["int8_mac_share"]),
            "evaluations": self.evaluations,
            "skipped_qdq": self.skipped_qdq,
            "seconds": round(self.seconds, 3),
        }


def mixed_model(
    fp32: onnx.ModelProto,
    amax: Mapping[str, float],
    fallback: Sequence[str],
    placement: PlacementConfig | None = None,
    skeleton: onnx.ModelProto | None = None,
) -> tuple[onnx.ModelProto, QDQPlan]:
    """The Q/DQ model with `fallback` nodes (exact names) out of INT8: re-planned, then Q/DQ inserted.

    `skeleton` (`planning_skeleton(normalize(fp32))`) makes repeated re-planning faster.
    """
    fp32n = normalize(fp32)
    plan = replan(skeleton if skeleton is not None else fp32n, placement, list(fallback))
    model, _ = quantized_model(fp32n, plan, amax)
    return model, plan


def resolve_names(patterns: Sequence[str], layers: Sequence[str]) -> list[str]:
    """Quantized layers named by exact names or full-match regexes, in layer order.

    Raises:
        UsageError: a pattern matches no quantized layer (or is not a valid regex and no exact name).
    """
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {n for n in layers if n == pattern}
        if not hits:
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise UsageError(
                    f"--fallback {pattern!r} is neither a layer name nor a valid regex ({e})"
                ) from None
            hits = {n for n in layers if rx.fullmatch(n)}
        if not hits:
            example = f" (e.g. {layers[0]!r})" if layers else ""
            raise UsageError(
                f"--fallback {pattern!r} matches no quantized layer; give ONNX node names or regexes "
                f"matching whole names{example}; `trtq sensitivity` lists them"
            )
        chosen |= hits
    return [n for n in layers if n in chosen]


def priority_order(sensitivity: SensitivityResult, min_cost: float = MIN_COST) -> list[str]:
    """Layers in the order the budget search tries them (see module doc)."""
    layers = sensitivity.layers
    total = max(sensitivity.total_macs, 1)
    floor = min_cost / max(len(layers), 1)

    def cost(macs: int) -> float:
        return max(macs / total, floor)

    gains = [(layer, sensitivity.gain(layer)) for layer in layers]
    first = sorted(
        ((layer, g) for layer, g in gains if g > 0),
        key=lambda lg: (-lg[1] / cost(lg[0].macs), lg[0].rank),
    )
    rest = sorted(
        (layer for layer, g in gains if g <= 0),
        key=lambda layer: (-(sensitivity.int8_noise - layer.noise_fp16_alone) / cost(layer.macs), layer.rank),
    )
    return [layer.node for layer, _ in first] + [layer.node for layer in rest]


def _mac_share(plan: QDQPlan, macs: Mapping[str, int]) -> float:
    total = sum(macs.values())
    return sum(macs.get(n, 0) for n in plan.quantized_nodes) / total if total else 0.0


def choose_fallback(
    fp32: onnx.ModelProto,
    amax: Mapping[str, float],
    data: Any,
    *,
    sensitivity: SensitivityResult | None = None,
    max_drop: float | None = None,
    fallback: int | Sequence[str] | None = None,
    placement: PlacementConfig | None = None,
    metric: str | MetricFn | Metric | None = None,
    targets: Any = None,
    input_name: str | Sequence[str] | None = None,
    batch_size: int = 32,
    prune_limit: int = 12,
    rank_by: str = "cosine",
    top_k: int = 6,
    greedy_limit: int = 12,
    workers: int | None = None,
    cache_bytes: int = 2 << 30,
) -> FallbackResult:
    """Choose the layers to keep out of INT8 and build the mixed model.

    The returned plan is the one the mixed model was built from (activations without a calibrated amax left
    out), so `trtq.qdq.insert_qdq(fp32, result.plan, amax)` gives the same model.

    Args:
        fp32: the FP32 model.
        amax: calibrated thresholds.
        data: the evaluation data (see `trtq.sensitivity.analysis.EvalData`).
        sensitivity: the ranking (needed for `max_drop` and for an integer `fallback`).
        max_drop: budget in the metric's unit (percentage points for fraction metrics such as top-1): the
            mixed model may be at most this much worse than FP32. 0 asks for the FP32 metric exactly.
        fallback: N (the N highest-ranked layers) or node names / full-match regexes; with `max_drop` they
            are kept out of INT8 first and the search adds what else the budget needs.
        placement: placement controls (the same as for the all-INT8 plan).
        metric, targets, input_name, batch_size: as for `analyze_sensitivity`; the metric must be the one
            the ranking used.
        prune_limit: try dropping chosen layers again only when at most this many were chosen.
        rank_by: "cosine" or "kl" (greedy forward selection on that measure) or "metric" (a static order on
            the budget metric); `--fallback N` takes the N first of `sensitivity`'s own ranking.
        top_k: candidates re-evaluated per greedy step.
        greedy_limit: the greedy search runs when the prefix search on the measure needs at most this many layers.
        workers: parallel evaluations of a greedy step (default: the CPUs available).
        cache_bytes: memory for the activations a greedy step caches (see `VariantEvaluator`).

    Returns:
        The chosen set, the measured metric of the mixed model, and the model.

    Raises:
        UsageError: negative budget, an integer fallback out of range, a name matching no layer, or a
            budget / integer fallback without a ranking.
    """
    from trtq.export import input_names

    start = time.perf_counter()
    if max_drop is not None and (not np.isfinite(max_drop) or max_drop < 0):
        raise UsageError(f"--max-drop must be a number >= 0, not {max_drop}")
    if rank_by not in RANK_BY:
        raise UsageError(f"--rank-by {rank_by!r}: choose one of {', '.join(RANK_BY)}")
    if top_k < 1:
        raise UsageError(f"top_k {top_k}: re-evaluate at least 1 candidate per step")
    fp32n = normalize(fp32)
    full_plan = plan_qdq(fp32n, placement)
    layers = list(full_plan.quantized_nodes)
    name = input_name or input_names(fp32n)
    ev_data = EvalData(data, name, batch_size, targets)
    met = resolve_metric(metric, ev_data.targets_kind)
    if sensitivity is not None and sensitivity.metric != met.name:
        raise UsageError(
            f"the ranking was measured with {sensitivity.metric}, not {met.name}; rerun the analysis"
        )

    forced: list[str] = []
    if isinstance(fallback, (int, np.integer)) and not isinstance(fallback, bool):
        if sensitivity is None:
            raise UsageError("--fallback N needs the sensitivity ranking")
        if not 0 <= int(fallback) <= len(sensitivity.layers):
            raise UsageError(
                f"--fallback {fallback}: the model has {len(sensitivity.layers)} quantized layers"
            )
        forced = sensitivity.ranked_nodes[: int(fallback)]
    elif fallback is not None:
        forced = resolve_names([str(p) for p in fallback], layers)
    if max_drop is not None and sensitivity is None:
        raise UsageError("--max-drop needs the sensitivity ranking (run the analysis first)")

    reference = run_model(fp32n, ev_data.feeds())
    macs = layer_macs(fp32n, ev_data.sample())
    judge = Judge(
        fp32n, amax, placement, ev_data, met, reference, max_drop, macs, rank_by, workers, cache_bytes
    )
    fp32_value = judge.fp32_value

    if sensitivity is not None:
        judge.seed(sensitivity)
    if max_drop is None:
        chosen = forced
    else:
        assert sensitivity is not None
        if rank_by == "metric":
            chosen = prefix_search(judge, forced, priority_order(sensitivity), prune_limit)
        else:
            floor = MIN_COST / max(len(layers), 1)
            total = max(sum(macs.values()), 1)
            order = [n for n in sensitivity.ranked_nodes if n in layers]
            chosen = greedy_search(
                judge, forced, order, lambda n: max(macs.get(n, 0) / total, floor),
                top_k=top_k, limit=greedy_limit, prune_limit=prune_limit,
            )  # fmt: skip
        best = best_meeting(judge, forced)
        if best is not None and best.int8_mac_share > judge.evaluate(chosen).int8_mac_share:
            chosen = best.nodes

    model, plan = mixed_model(fp32n, amax, chosen, placement)
    plan, skipped = calibrated(plan, amax)
    final = judge.evaluate(chosen, full=frozenset(chosen) not in judge.exact)  # the answer, run in full
    value = final.metric
    int8 = judge.evaluate([])
    pareto_front(judge)
    return FallbackResult(
        nodes=list(chosen),
        metric=value,
        fp32_metric=fp32_value,
        int8_metric=sensitivity.int8_metric if sensitivity is not None else judge.evaluate([]).metric,
        metric_name=met.name,
        max_drop=max_drop,
        met=judge.ok(value),
        int8_mac_share=_mac_share(plan, macs),
        all_int8_mac_share=_mac_share(full_plan, macs),
        evaluations=[e.to_json() for e in judge.log],
        skipped_qdq=skipped,
        model=model,
        plan=plan,
        seconds=time.perf_counter() - start,
        higher_is_better=met.higher_is_better,
        unit=met.unit,
        rank_by=rank_by,
        measure_name=judge.measure_name,
        fp32_measure=judge.measure(reference, reference, ev_data.targets),
        int8_measure=int8.measure,
        measure=final.measure,
    )
