"""The fallback search: evaluate mixed models, choose layers greedily on a continuous measure, the Pareto front.

`Judge` evaluates candidate fallback sets for real (the mixed model built and run on the whole evaluation set)
and remembers every one as an `Evaluation`: the set, its budget metric, its continuous measure (mean output
cosine or output KL to FP32) and its INT8 share of MACs. The alone-FP16 variants of the sensitivity analysis
are evaluations too (the same mixed models), so they join the record without running again.

`greedy_search` (`--rank-by cosine|kl`): first the shortest prefix of the static order on the measure that meets
the budget (an upper bound, cheap); then, when that bound is small enough to afford it, a greedy search from the
forced layers: each step re-evaluates the `top_k` remaining candidates with the highest estimated gain per unit
of compute, given what is already FP16 (the estimate of the others stays from the last time they were measured:
layers that only help together show their gain once their partner is in), and adds the best one; a step whose
candidates include sets that meet the budget ends it. The answer is the recorded set meeting the budget with the
most MACs INT8. `prefix_search` (`--rank-by
metric`) is the static order of `trtq.sensitivity.fallback.priority_order`, shortest prefix by doubling and
bisection. Both finish by trying to drop each chosen layer again, most expensive first.

`pareto_front` marks the evaluations no other one beats on both the INT8 share of MACs and the metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from trtq.metrics import Metric, resolve_metric
from trtq.placement import PlacementConfig
from trtq.sensitivity.analysis import (
    MEASURES,
    EvalData,
    SensitivityResult,
    planning_skeleton,
    quantized_model,
    replan,
)
from trtq.sensitivity.evaluate import VariantEvaluator, run_model

__all__ = ["Evaluation", "Judge", "greedy_search", "prefix_search", "prune", "pareto_front", "best_meeting"]


@dataclass
class Evaluation:
    """One evaluated fallback set.

    Attributes:
        nodes: the layers out of INT8, in the order they were chosen.
        metric: the budget metric of the mixed model.
        measure: its continuous measure (the judge's `measure_name`).
        int8_mac_share: share of weighted-layer MACs still INT8.
        met: whether it meets the budget (None without one).
        source: "analysis" (an alone-FP16 or all-INT8 model of the sensitivity analysis) or "search".
        front: on the Pareto front of all evaluations (set by `pareto_front`).
    """

    nodes: list[str]
    metric: float
    measure: float
    int8_mac_share: float
    met: bool | None
    source: str = "search"
    front: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            "metric": self.metric,
            "measure": self.measure,
            "int8_mac_share": self.int8_mac_share,
            "met": self.met,
            "source": self.source,
            "front": self.front,
        }


class Judge:
    """Evaluates mixed models for real and remembers every result.

    Args:
        fp32: the FP32 model, normalised.
        amax, placement: thresholds and placement controls of the mixed models.
        data: the evaluation data.
        met: the budget metric.
        reference: FP32 outputs on `data`.
        max_drop: the budget (None: no budget).
        macs: MACs per weighted layer.
        rank_by: `--rank-by`; the measure is its metric (cosine for "metric").
        workers: parallel evaluations of one step.
        cache_bytes: memory for the activations a step caches (`VariantEvaluator`).
    """

    def __init__(
        self,
        fp32: onnx.ModelProto,
        amax: Mapping[str, float],
        placement: PlacementConfig | None,
        data: EvalData,
        met: Metric,
        reference: dict[str, np.ndarray],
        max_drop: float | None,
        macs: Mapping[str, int],
        rank_by: str = "cosine",
        workers: int | None = None,
        cache_bytes: int = 2 << 30,
    ) -> None:
        self.fp32, self.amax, self.placement = fp32, amax, placement
        self.cache_bytes = cache_bytes
        self.data, self.met, self.reference = data, met, reference
        self.fp32_value = met(reference, reference, data.targets)
        self.max_drop, self.macs, self.workers = max_drop, dict(macs), workers
        self.measure_name = MEASURES.get(rank_by, "cosine")
        self.measure: Metric = resolve_metric(self.measure_name)
        self.skeleton = planning_skeleton(fp32, placement)
        self.seen: dict[frozenset[str], Evaluation] = {}
        self.log: list[Evaluation] = []
        self.exact: set[frozenset[str]] = set()  # sets run in full (not from a checkpoint)

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def ok(self, value: float) -> bool | None:
        return None if self.max_drop is None else self.met.meets(self.fp32_value, value, self.max_drop)

    def share(self, nodes: Sequence[str], quantized: Sequence[str] | None = None) -> float:
        """INT8 share of MACs with `nodes` out of INT8 (`quantized`: the plan's quantized layers, if known)."""
        if quantized is None:
            quantized = replan(self.skeleton, self.placement, list(nodes)).quantized_nodes
        total = sum(self.macs.values())
        return sum(self.macs.get(n, 0) for n in quantized) / total if total else 0.0

    def record(
        self, nodes: Sequence[str], metric: float, measure: float, share: float, source: str = "search"
    ) -> Evaluation:
        e = Evaluation(list(nodes), float(metric), float(measure), float(share), self.ok(metric), source)
        key = frozenset(nodes)
        if key in self.seen:  # a full run replaces a suffix run of the same set (float rounding)
            self.log[self.log.index(self.seen[key])] = e
        else:
            self.log.append(e)
        self.seen[key] = e
        return e

    def score(self, nodes: Sequence[str], outputs: dict[str, np.ndarray], share: float) -> Evaluation:
        metric = self.met(self.reference, outputs, self.data.targets)
        return self.record(nodes, metric, self.measure(self.reference, outputs, self.data.targets), share)

    def seed(self, sensitivity: SensitivityResult) -> None:
        """Record the analysis's all-INT8 and alone-FP16 models (when it measured this judge's measure)."""
        kl = self.measure_name == MEASURES["kl"]
        int8 = sensitivity.int8_kl if kl else sensitivity.int8_cosine
        if int8 is None or sensitivity.metric != self.met.name:
            return
        self.record([], sensitivity.int8_metric, int8, self.share([]), "analysis")
        for layer in sensitivity.layers:
            value = layer.kl_fp16_alone if kl else layer.cosine_fp16_alone
            if value is not None:
                share = self.share([layer.node])
                self.record([layer.node], layer.metric_fp16_alone, value, share, "analysis")

    def gain(self, base: Evaluation, other: Evaluation) -> float:
        """How much better `other`'s measure is than `base`'s (> 0: better)."""
        d = other.measure - base.measure
        return d if self.measure.higher_is_better else -d

    # -- evaluation ----------------------------------------------------------------------------------------
    def evaluate(self, nodes: Sequence[str], full: bool = False) -> Evaluation:
        """The evaluation of a set (run in full unless already evaluated; `full` runs it in full again)."""
        key = frozenset(nodes)
        if key in self.seen and not full:
            return self.seen[key]
        model, plan = quantized_model_for(self, nodes)
        self.exact.add(key)
        return self.score(list(nodes), run_model(model, self.data.feeds()), self.share(nodes, plan))

    def evaluate_many(self, base: Sequence[str], extra: Sequence[str]) -> dict[str, Evaluation]:
        """`base + [n]` for each `n` in `extra`, in parallel, each run only from its first changed node."""
        todo = [n for n in extra if frozenset([*base, n]) not in self.seen]
        if todo:
            base_model, _ = quantized_model_for(self, base)
            evaluator = VariantEvaluator(
                self.data.sample(), self.data.count, workers=self.workers, cache_bytes=self.cache_bytes
            )
            evaluator.add_base("base", base_model)
            shares = {}
            for n in todo:
                model, quantized = quantized_model_for(self, [*base, n])
                evaluator.add_variant(n, "base", model)
                shares[n] = self.share([*base, n], quantized)
            evaluator.run((feed, None) for feed in self.data.feeds())
            for n in todo:
                self.score([*base, n], evaluator.outputs(n), shares[n])
        return {n: self.seen[frozenset([*base, n])] for n in extra}

    def meets(self, nodes: Sequence[str]) -> bool:
        return bool(self.evaluate(nodes).met)


def quantized_model_for(judge: Judge, nodes: Sequence[str]) -> tuple[onnx.ModelProto, list[str]]:
    """The mixed model with `nodes` out of INT8, and the layers its plan quantizes."""
    plan = replan(judge.skeleton, judge.placement, sorted(set(nodes)))
    model, _ = quantized_model(judge.fp32, plan, judge.amax)
    return model, list(plan.quantized_nodes)


def prune(judge: Judge, forced: list[str], chosen: list[str], limit: int) -> list[str]:
    """Drop chosen layers (most expensive first) while the budget still holds, when at most `limit` chose."""
    if 1 < len(chosen) <= limit:
        for node in sorted(chosen, key=lambda n: (-judge.macs.get(n, 0), chosen.index(n))):
            trial = [n for n in chosen if n != node]
            if judge.meets(forced + trial):
                chosen = trial
    return forced + chosen


def prefix_search(judge: Judge, forced: list[str], order: list[str], prune_limit: int) -> list[str]:
    """Shortest prefix of `order` (after `forced`) that meets the budget, then `prune`.

    Prefix lengths 1, 2, 4, ... are evaluated until one meets the budget (the whole order last), then the
    length is bisected between the last failure and that success.
    """
    order = [n for n in order if n not in forced]
    if judge.meets(forced):
        return list(forced)
    lo, hi = 0, min(1, len(order))
    while hi and not judge.meets(forced + order[:hi]):
        if hi == len(order):
            return forced + order  # not reachable: everything analysed is out of INT8
        lo, hi = hi, min(2 * hi, len(order))
    if not hi:
        return list(forced)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if judge.meets(forced + order[:mid]):
            hi = mid
        else:
            lo = mid
    return prune(judge, forced, order[:hi], prune_limit)


def greedy_search(
    judge: Judge,
    forced: list[str],
    candidates: list[str],
    cost: Callable[[str], float],
    *,
    top_k: int = 6,
    limit: int = 12,
    prune_limit: int = 12,
) -> list[str]:
    """Greedy forward selection on the judge's measure, bounded by a prefix search (see the module doc).

    First the shortest prefix of the static order on the measure (alone-FP16 gain per unit of compute) that
    meets the budget: an upper bound found in about 2 log2(L) evaluations. When it holds at most `limit`
    layers beyond `forced`, the greedy search runs for at most that many additions; the recorded set meeting
    the budget with the most MACs INT8 (either search's) is then pruned.

    Args:
        judge: evaluates sets (already seeded with the analysis's alone-FP16 models, when it has them).
        forced: layers out of INT8 from the start.
        candidates: the layers that may be added, in a stable order (ties).
        cost: a layer's compute cost (MACs share with a floor).
        top_k: candidates re-evaluated per step.
        limit: the largest upper bound (layers) for which the greedy search runs.
        prune_limit: see `prune`.
    """
    chosen = list(forced)
    current = judge.evaluate(chosen)
    if current.met:
        return chosen
    position = {n: i for i, n in enumerate(candidates)}
    remaining = [n for n in candidates if n not in chosen]
    estimate: dict[str, float] = {}
    for n in remaining:  # alone-FP16 gains from the analysis stand in until measured in context
        alone = judge.seen.get(frozenset([n]))
        base = judge.seen.get(frozenset())
        estimate[n] = judge.gain(base, alone) if alone is not None and base is not None else 0.0

    def rank(n: str) -> tuple[float, int]:
        return (-estimate[n] / cost(n), position[n])

    upper = prefix_search(judge, forced, sorted(remaining, key=rank), prune_limit=0)
    if not judge.evaluate(upper).met:
        return upper  # not reachable: every candidate is out of INT8
    steps = len(upper) - len(forced)
    while remaining and steps <= limit and len(chosen) - len(forced) < steps:
        top = sorted(remaining, key=rank)[: max(1, top_k)]
        step = judge.evaluate_many(chosen, top)
        for n in top:
            estimate[n] = judge.gain(current, step[n])
        if any(step[n].met for n in top):
            break  # the best of these is among the recorded sets meeting the budget
        pick = min(top, key=rank)
        chosen.append(pick)
        current = step[pick]
        remaining.remove(pick)
    best = best_meeting(judge, forced)
    assert best is not None  # `upper` meets the budget
    ordered = [n for n in best.nodes if n not in forced]
    return prune(judge, forced, ordered, prune_limit)


def _better(judge: Judge, e: Evaluation) -> tuple[float, float]:
    """Sort key: larger is better on the metric, then on the measure."""
    m = e.metric if judge.met.higher_is_better else -e.metric
    return (m, e.measure if judge.measure.higher_is_better else -e.measure)


def pareto_front(judge: Judge) -> list[Evaluation]:
    """Mark and return the evaluations that no other beats on both INT8 share of MACs and metric.

    Among sets of equal share and metric, the better measure stands for them. Sorted by share, highest first.
    """
    points = sorted(judge.log, key=lambda e: (-e.int8_mac_share, tuple(-v for v in _better(judge, e))))
    front: list[Evaluation] = []
    for e in points:
        e.front = not front or _better(judge, e)[0] > _better(judge, front[-1])[0]
        if e.front:
            front.append(e)
    return front


def best_meeting(judge: Judge, forced: Sequence[str]) -> Evaluation | None:
    """The evaluated set holding every forced layer that meets the budget with the most MACs in INT8."""
    need = set(forced)
    meeting = [e for e in judge.log if e.met and need <= set(e.nodes)]
    if not meeting:
        return None
    return max(meeting, key=lambda e: (e.int8_mac_share, _better(judge, e), -len(e.nodes)))
