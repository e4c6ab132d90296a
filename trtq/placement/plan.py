"""The Q/DQ plan: which tensors get Q/DQ, which weights, and why each candidate node was or wasn't chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from trtq.placement import rules as R
from trtq.placement.graph import WEIGHTED_OPS, GraphIndex, normalize

__all__ = ["PlacementConfig", "Decision", "QDQPlan", "plan_qdq"]


@dataclass
class PlacementConfig:
    """What the user controls about Q/DQ placement.

    Attributes:
        exclude_nodes: node names or regexes (matched against the whole name) kept in high precision.
        exclude_op_types: op types kept in high precision.
        keep_first_last: keep the first and the last weighted layer in high precision.
        skip_small_convs: leave convs with < 16 channels unquantized (ModelOpt's rule).
        skip_gemv: leave matrix-vector and small (K or N < 16) MatMul/Gemm unquantized.
        residual_add: Q/DQ on the residual input of an Add that TensorRT fuses into a convolution.
        pooling: Q/DQ on AveragePool/GlobalAveragePool inputs that continue an INT8 chain.
        int8_elementwise: Q/DQ on the inputs of an Add/Mul of two tensors between quantized layers.
        concat_shared_scale: a Concat's quantized output and quantized inputs share one scale.
        batch_hint: the value assumed for symbolic dims when detecting matrix-vector products (1: the
            batch-1 engine profile, as ModelOpt's batch-1 calibration run sees it).
    """

    exclude_nodes: Sequence[str] = ()
    exclude_op_types: Sequence[str] = ()
    keep_first_last: bool = False
    skip_small_convs: bool = True
    skip_gemv: bool = True
    residual_add: bool = True
    pooling: bool = True
    int8_elementwise: bool = True
    concat_shared_scale: bool = True
    batch_hint: int = 1


@dataclass
class Decision:
    """Why one candidate node was or wasn't quantized."""

    node: str
    op_type: str
    quantized: bool
    rule: str
    reason: str


@dataclass
class QDQPlan:
    """Where Q/DQ go.

    Attributes:
        activations: activation tensors that get one Q/DQ pair each (each needs a calibrated amax).
        weights: weight initializer -> per-channel axis.
        scale_groups: activation tensors that must share one scale (inputs of one Concat).
        quantized_nodes: weighted nodes whose inputs are quantized.
        decisions: one entry per candidate node.
        consumers: activation tensor -> the nodes that read its DequantizeLinear output; other readers of
            the tensor keep reading the unquantized value (so an excluded layer sees full precision).
    """

    activations: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)
    scale_groups: list[list[str]] = field(default_factory=list)
    quantized_nodes: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    consumers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `plan` section of trtq's artifacts)."""
        return {
            "activations": list(self.activations),
            "weights": dict(self.weights),
            "scale_groups": [list(g) for g in self.scale_groups],
            "quantized_nodes": list(self.quantized_nodes),
            "consumers": {k: list(v) for k, v in self.consumers.items()},
            "decisions": [asdict(d) for d in self.decisions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QDQPlan:
        """Inverse of `to_json`."""
        return cls(
            activations=list(data["activations"]),
            weights={k: int(v) for k, v in data["weights"].items()},
            scale_groups=[list(g) for g in data.get("scale_groups", [])],
            quantized_nodes=list(data.get("quantized_nodes", [])),
            decisions=[Decision(**d) for d in data.get("decisions", [])],
            consumers={k: list(v) for k, v in data.get("consumers", {}).items()},
        )

    def decision_for(self, node: str) -> Decision | None:
        """The decision about `node`, if it was a candidate."""
        for d in self.decisions:
            if d.node == node:
                return d
        return None


class _Builder:
    """Accumulates a plan in graph order, so the same model always gives the same plan."""

    def __init__(self) -> None:
        self.plan = QDQPlan()

    def quantize_input(self, tensor: str, consumer: str) -> None:
        if tensor not in self.plan.consumers:
            self.plan.activations.append(tensor)
            self.plan.consumers[tensor] = []
        if consumer not in self.plan.consumers[tensor]:
            self.plan.consumers[tensor].append(consumer)

    def decide(self, node: onnx.NodeProto, quantized: bool, rule: str, reason: str) -> None:
        self.plan.decisions.append(Decision(node.name, node.op_type, quantized, rule, reason))


def plan_qdq(model: onnx.ModelProto, config: PlacementConfig | None = None) -> QDQPlan:
    """Decide where Q/DQ go in an FP32 model, following TensorRT's explicit-quantization guidance.

    Args:
        model: the FP32 model (as `trtq export` writes it, or a user's own ONNX).
        config: user controls; defaults to `PlacementConfig()`.

    Returns:
        The plan. Tensor and node names refer to `trtq.placement.normalize(model)`, which keeps every
        activation and node name of `model`.
    """
    config = config or PlacementConfig()
    index = GraphIndex(normalize(model), batch_hint=config.batch_hint)
    weighted = index.topo_weighted(WEIGHTED_OPS)
    first_last: frozenset[str] = frozenset()
    if config.keep_first_last and weighted:
        first_last = frozenset({weighted[0].name, weighted[-1].name})
    ctx = R.PlacementContext(
        index=index,
        exclude_nodes=tuple(config.exclude_nodes),
        exclude_op_types=tuple(config.exclude_op_types),
        first_last=first_last,
        batch_hint=config.batch_hint,
    )
    rules = [
        r
        for r in R.default_weighted_rules()
        if not (isinstance(r, R.SmallConv) and not config.skip_small_convs)
        and not (isinstance(r, R.SmallOrGemv) and not config.skip_gemv)
    ]

    b = _Builder()
    for node in weighted:
        reason, rule_name = None, ""
        for rule in rules:
            reason = rule.check(node, ctx)
            if reason:
                rule_name = rule.name
                break
        if reason:
            b.decide(node, False, rule_name, reason)
            continue
        w = R.weight_input(node, index)
        for pos, name in enumerate(node.input[:2]):
            if not name:
                continue
            if pos == w:
                b.plan.weights.setdefault(name, R.weight_axis(node, index))
            elif not index.is_const(name):
                b.quantize_input(name, node.name)
        b.plan.quantized_nodes.append(node.name)
        b.decide(node, True, "QuantizeWeightedInputs", "activation input(s) per-tensor, weight per-channel")

    switches = {
        R.ResidualAdd: config.residual_add,
        R.Int8Elementwise: config.int8_elementwise,
        R.PoolingChain: config.pooling,
    }
    pattern_rules = [r for r in R.default_pattern_rules() if switches.get(type(r), True)]
    exclusions = [R.ExcludedByName(), R.ExcludedByOpType()]
    view = R.PlanView(quantized=set(b.plan.quantized_nodes), consumers=b.plan.consumers)
    decided = {d.node for d in b.plan.decisions}
    for rule in pattern_rules:
        for node in index.nodes:
            if node.op_type not in rule.op_types or node.name in decided:
                continue
            verdict = rule.apply(node, ctx, view)
            if verdict is None:
                continue
            decided.add(node.name)
            excluded = next(((x.name, r) for x in exclusions if (r := x.check(node, ctx))), None)
            if excluded and verdict.inputs:
                b.decide(node, False, excluded[0], excluded[1])
                continue
            for t in verdict.inputs:
                b.quantize_input(t, node.name)
            if verdict.fused_input:
                view.fused_adds[node.name] = verdict.fused_input
            b.decide(node, bool(verdict.inputs), rule.name, verdict.reason)
    if config.concat_shared_scale:
        b.plan.scale_groups = R.concat_scale_groups(ctx, b.plan.activations)
    return b.plan
