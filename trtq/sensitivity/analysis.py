"""Per-layer sensitivity: how the metric moves when one layer alone is kept FP16 (or alone quantized).

For every layer the Q/DQ plan quantizes, a variant of the model is evaluated on the whole evaluation set,
built the way the final model would be (re-planned with `trtq.placement.plan_qdq`, so the residual-Add and
pooling Q/DQ that follow a layer come and go with it):

- *alone FP16*: that layer out of INT8, every other layer INT8 (what falling back on it buys);
- *alone quantized* (only with `alone_int8=True`, `--alone-int8`): that layer INT8, every other layer FP32
  (its damage in isolation). It does not change the ranking on a continuous measure, and it costs as much
  again as the alone-FP16 variants, so it is opt-in.

Layers are ranked by the second: the fallback question is "which layers, taken out of an INT8 model, bring
the metric back", and that measurement answers it in the context that matters, with the error of every
other quantized layer present. Ties on a coarse metric (top-1 over a few hundred images moves in steps of
one image) are broken by the reduction of output noise (see `trtq.sensitivity.metrics.output_noise`), then
by the alone-quantized numbers (when measured).

Speed: see `trtq.sensitivity.evaluate` (each variant runs only from the last checkpoint before its first
change, variants in parallel).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import onnx

from trtq.errors import TrtqError, UsageError
from trtq.metrics import Metric, MetricFn, resolve_metric
from trtq.metrics.fidelity import cosine, output_kl, output_noise
from trtq.placement import PlacementConfig, QDQPlan, normalize, plan_qdq
from trtq.qdq import insert_qdq
from trtq.sensitivity.data import EvalData
from trtq.sensitivity.evaluate import VariantEvaluator
from trtq.sensitivity.macs import layer_macs

__all__ = [
    "LayerSensitivity",
    "SensitivityResult",
    "EvalData",
    "analyze_sensitivity",
    "replan",
    "planning_skeleton",
    "RANKING",
    "RANK_BY",
    "MEASURES",
    "ranking_text",
]

#: How layers are ranked by the budget metric (written into sensitivity.json).
RANKING = (
    "metric recovered when the layer alone stays FP16 (all other layers INT8); ties broken by output noise "
    "removed, then by the metric lost and noise added when the layer alone is INT8"
)

#: `--rank-by` choices: a continuous fidelity measure (cosine, kl) or the budget metric itself.
RANK_BY = ("cosine", "kl", "metric")

#: The registered metric (`trtq.metrics`) behind each continuous `--rank-by` choice.
MEASURES = {"cosine": "cosine", "kl": "output_kl"}


def ranking_text(rank_by: str) -> str:
    """How `analyze_sensitivity(rank_by=...)` orders the layers, in words."""
    if rank_by == "metric":
        return RANKING
    what = "mean output cosine to FP32 gained" if rank_by == "cosine" else "output KL to FP32 removed"
    return (
        f"{what} when the layer alone stays FP16 (all other layers INT8); ties broken by the metric recovered, "
        "then by output noise removed"
    )


@dataclass
class LayerSensitivity:
    """One quantized layer's measurements.

    Attributes:
        node: ONNX node name.
        op_type: its op type.
        macs: multiply-accumulates per sample.
        metric_quantized_alone: metric with only this layer INT8 (None unless measured, `alone_int8=True`).
        metric_fp16_alone: metric with only this layer out of INT8.
        noise_quantized_alone: output noise with only this layer INT8 (None unless measured).
        noise_fp16_alone: output noise with only this layer out of INT8.
        rank: 1 = most sensitive.
        seconds: evaluation time of the layer's variants (worker time).
        cosine_fp16_alone: mean output cosine to FP32 with only this layer out of INT8.
        kl_fp16_alone: output KL to FP32 (`trtq.metrics.fidelity.output_kl`) with only this layer out of INT8.
    """

    node: str
    op_type: str
    macs: int
    metric_quantized_alone: float | None
    metric_fp16_alone: float
    noise_quantized_alone: float | None
    noise_fp16_alone: float
    rank: int = 0
    seconds: float = 0.0
    cosine_fp16_alone: float | None = None
    kl_fp16_alone: float | None = None


@dataclass
class SensitivityResult:
    """The ranking and what it was measured on.

    Attributes:
        metric: metric name (higher is better).
        fp32_metric: the FP32 model's metric.
        int8_metric: the all-INT8 model's metric.
        int8_noise: the all-INT8 model's output noise.
        samples: evaluation samples.
        layers: per layer, most sensitive first.
        total_macs: MACs of every Conv/ConvTranspose/Gemm/MatMul, quantized or not.
        timings: seconds per step.
        ranking: how `layers` is ordered.
        higher_is_better: the metric's direction.
        rank_by: what the order is based on (`RANK_BY`).
        int8_cosine: the all-INT8 model's mean output cosine to FP32.
        int8_kl: the all-INT8 model's output KL to FP32.
    """

    metric: str
    fp32_metric: float
    int8_metric: float
    int8_noise: float
    samples: int
    layers: list[LayerSensitivity]
    total_macs: int
    timings: dict[str, float] = field(default_factory=dict)
    ranking: str = RANKING
    higher_is_better: bool = True
    rank_by: str = "metric"
    int8_cosine: float | None = None
    int8_kl: float | None = None

    def gain(self, layer: LayerSensitivity) -> float:
        """How much better than all-INT8 the metric is with `layer` alone kept FP16 (> 0: it helps)."""
        d = layer.metric_fp16_alone - self.int8_metric
        return d if self.higher_is_better else -d

    @property
    def ranked_nodes(self) -> list[str]:
        """Node names, most sensitive first."""
        return [layer.node for layer in self.layers]

    def layer(self, node: str) -> LayerSensitivity:
        """The measurements of one node."""
        for layer in self.layers:
            if layer.node == node:
                return layer
        raise KeyError(node)

    def to_json(self) -> dict[str, Any]:
        """The `sensitivity.json` layout (without the fallback choice)."""
        total = max(self.total_macs, 1)
        return {
            "metric": self.metric,
            "ranking": self.ranking,
            "higher_is_better": self.higher_is_better,
            "samples": self.samples,
            "fp32_metric": self.fp32_metric,
            "int8_metric": self.int8_metric,
            "int8_noise": self.int8_noise,
            "rank_by": self.rank_by,
            "int8_cosine": self.int8_cosine,
            "int8_kl": self.int8_kl,
            "total_macs": self.total_macs,
            "layers": [{**asdict(layer), "mac_share": layer.macs / total} for layer in self.layers],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SensitivityResult:
        """Inverse of `to_json`."""
        fields = set(LayerSensitivity.__dataclass_fields__)
        return cls(
            metric=str(data["metric"]),
            fp32_metric=float(data["fp32_metric"]),
            int8_metric=float(data["int8_metric"]),
            int8_noise=float(data["int8_noise"]),
            samples=int(data["samples"]),
            layers=[LayerSensitivity(**{k: v for k, v in e.items() if k in fields}) for e in data["layers"]],
            total_macs=int(data["total_macs"]),
            timings=dict(data.get("timings_s", {})),
            ranking=str(data.get("ranking", RANKING)),
            higher_is_better=bool(data.get("higher_is_better", True)),
            rank_by=str(data.get("rank_by", "metric")),
            int8_cosine=data.get("int8_cosine"),
            int8_kl=data.get("int8_kl"),
        )


def replan(fp32: onnx.ModelProto, placement: PlacementConfig | None, exclude: Sequence[str]) -> QDQPlan:
    """The Q/DQ plan with these nodes (exact names) also kept out of INT8 (`fp32` may be a skeleton)."""
    base = placement or PlacementConfig()
    extra = tuple(re.escape(n) for n in exclude)
    return plan_qdq(fp32, replace(base, exclude_nodes=tuple(base.exclude_nodes) + extra))


#: Initializers above this size (bytes) are weights: planning needs their shapes, not their values.
_SKELETON_MIN_BYTES = 1024


def planning_skeleton(model: onnx.ModelProto, placement: PlacementConfig | None = None) -> onnx.ModelProto:
    """`model` with the payload of large initializers dropped (shapes kept), for fast re-planning.

    `plan_qdq` runs ONNX shape inference, which serialises the whole model; without the weights that costs
    a fraction. Placement decides from the graph and shapes; this checks once that the skeleton gives the
    same plan as the model, and returns the model itself if it does not.
    """
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)
    for t in skeleton.graph.initializer:
        if t.ByteSize() > _SKELETON_MIN_BYTES and t.data_type == onnx.TensorProto.FLOAT:
            t.ClearField("raw_data")
            t.ClearField("float_data")
    if plan_qdq(skeleton, placement).to_json() != plan_qdq(model, placement).to_json():
        return model
    return skeleton


def calibrated(plan: QDQPlan, amax: Mapping[str, float]) -> tuple[QDQPlan, list[str]]:
    """`plan` without activations that have no calibrated amax, and those activations.

    A re-plan can ask for Q/DQ on a tensor the full plan did not quantize (a residual Add whose other input
    lost its quantized producer); it keeps its high-precision input instead.
    """
    missing = [t for t in plan.activations if t not in amax]
    if not missing:
        return plan, []
    gone = set(missing)
    kept = replace(
        plan,
        activations=[t for t in plan.activations if t not in gone],
        consumers={t: list(c) for t, c in plan.consumers.items() if t not in gone},
        scale_groups=[[t for t in g if t not in gone] for g in plan.scale_groups],
    )
    return kept, missing


def quantized_model(
    fp32: onnx.ModelProto, plan: QDQPlan, amax: Mapping[str, float]
) -> tuple[onnx.ModelProto, list[str]]:
    """Q/DQ model for a plan, skipping activations without amax (returned)."""
    usable, missing = calibrated(plan, amax)
    return insert_qdq(fp32, usable, amax), missing


def analyze_sensitivity(
    fp32: onnx.ModelProto,
    amax: Mapping[str, float],
    data: Any,
    *,
    plan: QDQPlan | None = None,
    placement: PlacementConfig | None = None,
    metric: str | MetricFn | Metric | None = None,
    targets: Any = None,
    input_name: str | Sequence[str] | None = None,
    batch_size: int = 32,
    layers: Sequence[str] | None = None,
    workers: int | None = None,
    cache_bytes: int = 2 << 30,
    progress: bool = True,
    rank_by: str = "metric",
    alone_int8: bool = False,
) -> SensitivityResult:
    """Measure every quantized layer alone FP16 (and, if asked, alone INT8), and rank them.

    Args:
        fp32: the FP32 model.
        amax: calibrated threshold per activation tensor.
        data: evaluation data (see `EvalData`).
        plan: the Q/DQ plan (default: `plan_qdq(fp32, placement)`).
        placement: placement controls used to re-plan each variant (and the default plan).
        metric: see `trtq.sensitivity.metrics.resolve_metric`.
        targets: targets for array / feed-dict data (`trtq.data.ClassLabels` or a label array).
        input_name: the input the data feeds (default: the model's first input).
        batch_size: evaluation batch size.
        layers: analyse only these quantized nodes (default: all of `plan.quantized_nodes`).
        workers: variants evaluated in parallel (default: the CPUs available).
        cache_bytes: memory for cached activations (see `VariantEvaluator`).
        progress: show progress bars (unless trtq is quiet).
        rank_by: order by the budget metric ("metric") or by a continuous measure ("cosine", "kl"); each
            layer's alone-FP16 cosine and KL are measured either way.
        alone_int8: also measure each layer alone INT8 (the rest FP32): its damage in isolation, for the
            report. Doubles the variants; the ranking only uses it to break exact ties.

    Returns:
        The ranking, most sensitive layer first.

    Raises:
        TrtqError: the plan quantizes no layer.
        UsageError: bad data or metric.
    """
    from trtq.export import input_names
    from trtq.pipeline.memory import release_memory
    from trtq.progress import track

    timings: dict[str, float] = {}
    start = time.perf_counter()
    fp32n = normalize(fp32)
    plan = plan or plan_qdq(fp32n, placement)
    all_layers = list(plan.quantized_nodes)
    chosen = list(layers) if layers is not None else all_layers
    unknown = [n for n in chosen if n not in all_layers]
    if unknown:
        raise UsageError(f"{unknown[0]!r} is not a quantized layer of this model's Q/DQ plan")
    if not chosen:
        raise TrtqError("the Q/DQ plan quantizes no layer; there is nothing to analyse")
    if rank_by not in RANK_BY:
        raise UsageError(f"--rank-by {rank_by!r}: choose one of {', '.join(RANK_BY)}")
    name = input_name or input_names(fp32n)
    ev_data = EvalData(data, name, batch_size, targets)
    met = resolve_metric(metric, ev_data.targets_kind)
    show: Callable[..., Any] | None = track if progress else None

    int8, _ = quantized_model(fp32n, plan, amax)
    skeleton = planning_skeleton(fp32n, placement)
    sample = ev_data.sample()
    evaluator = VariantEvaluator(sample, ev_data.count, workers=workers, cache_bytes=cache_bytes)
    # Checkpoints are kept for the bases that have variants: without alone-INT8 variants the FP32 base only
    # gives the reference outputs, and the whole cache goes to the INT8 base's checkpoints (shorter suffixes).
    evaluator.add_base("fp32", fp32n, share=0.5 if alone_int8 else 0.0)
    evaluator.add_base("int8", int8, share=0.5 if alone_int8 else 1.0)
    items = track(chosen, "sensitivity: building variants") if progress else chosen
    for node in items:
        if alone_int8:
            others = [n for n in all_layers if n != node]
            alone_q, _ = quantized_model(fp32n, replan(skeleton, placement, others), amax)
            evaluator.add_variant(("quantized", node), "fp32", alone_q)
            del alone_q
        alone_f, _ = quantized_model(fp32n, replan(skeleton, placement, [node]), amax)
        evaluator.add_variant(("fp16", node), "int8", alone_f)
        del alone_f
    release_memory()  # the whole variant models built above are gone: only their suffixes are kept
    timings["build_variants"] = time.perf_counter() - start

    t = time.perf_counter()
    evaluator.run(((feed, None) for feed in ev_data.feeds()), progress=show)
    timings["evaluate"] = time.perf_counter() - t
    timings["evaluate_bases"] = sum(b.seconds for b in evaluator.bases.values())

    ref = evaluator.base_outputs("fp32")
    q = evaluator.base_outputs("int8")
    lab = ev_data.targets
    fp32_metric, int8_metric, int8_noise = met(ref, ref, lab), met(ref, q, lab), output_noise(ref, q)
    int8_cosine, int8_kl = cosine(ref, q), output_kl(ref, q)
    macs = layer_macs(fp32n, sample)
    ops = {n.name: n.op_type for n in fp32n.graph.node}
    results = []
    kinds = ("fp16", "quantized") if alone_int8 else ("fp16",)
    for node in chosen:
        of = evaluator.outputs(("fp16", node))
        oq = evaluator.outputs(("quantized", node)) if alone_int8 else None
        results.append(
            LayerSensitivity(
                node=node,
                op_type=ops.get(node, "?"),
                macs=int(macs.get(node, 0)),
                metric_quantized_alone=met(ref, oq, lab) if oq is not None else None,
                metric_fp16_alone=met(ref, of, lab),
                noise_quantized_alone=output_noise(ref, oq) if oq is not None else None,
                noise_fp16_alone=output_noise(ref, of),
                seconds=sum(evaluator.seconds((kind, node)) for kind in kinds),
                cosine_fp16_alone=cosine(ref, of),
                kl_fp16_alone=output_kl(ref, of),
            )
        )
    order = {n: i for i, n in enumerate(all_layers)}
    sign = 1.0 if met.higher_is_better else -1.0  # metric gains are measured in the better direction

    def measured(r: LayerSensitivity) -> float:  # continuous gain of the alone-FP16 variant
        if rank_by == "cosine":
            return -(float(r.cosine_fp16_alone or 0.0) - int8_cosine)
        return -(int8_kl - float(r.kl_fp16_alone or 0.0)) if rank_by == "kl" else 0.0

    results.sort(
        key=lambda r: (
            measured(r),
            -sign * (r.metric_fp16_alone - int8_metric),
            -(int8_noise - r.noise_fp16_alone),
            -sign * (fp32_metric - r.metric_quantized_alone) if r.metric_quantized_alone is not None else 0.0,
            -(r.noise_quantized_alone or 0.0),
            order[r.node],
        )
    )
    for i, r in enumerate(results, 1):
        r.rank = i
    timings["total"] = time.perf_counter() - start
    return SensitivityResult(
        metric=met.name,
        fp32_metric=fp32_metric,
        int8_metric=int8_metric,
        int8_noise=int8_noise,
        samples=ev_data.count,
        layers=results,
        total_macs=int(sum(macs.values())),
        timings=timings,
        ranking=ranking_text(rank_by),
        higher_is_better=met.higher_is_better,
        rank_by=rank_by,
        int8_cosine=int8_cosine,
        int8_kl=int8_kl,
    )
