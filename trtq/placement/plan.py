"""The Q/DQ plan: which tensors get Q/DQ, which weights, and why each candidate node was or wasn't chosen."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trtq.placement.config import PlacementConfig
from trtq.placement.graph import WEIGHTED_OPS, GraphIndex, normalize
from trtq.placement.rules import (
    PatternRule,
    PlacementContext,
    PlanView,
    PostPassRule,
    WeightedRule,
    make_rules,
    weight_axis,
    weight_input,
)

if TYPE_CHECKING:  # onnx is imported where graphs are read, not with the package (fast --help)
    import onnx

__all__ = ["PlacementConfig", "Decision", "QDQPlan", "plan_qdq"]


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
        enabled_rules: the placement rules that made the plan, in the order they ran (None in plans
            written before trtq recorded them).
    """

    activations: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)
    scale_groups: list[list[str]] = field(default_factory=list)
    quantized_nodes: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    enabled_rules: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `plan` section of trtq's artifacts)."""
        return {
            "activations": list(self.activations),
            "weights": dict(self.weights),
            "scale_groups": [list(g) for g in self.scale_groups],
            "quantized_nodes": list(self.quantized_nodes),
            "consumers": {k: list(v) for k, v in self.consumers.items()},
            "decisions": [asdict(d) for d in self.decisions],
            "enabled_rules": None if self.enabled_rules is None else list(self.enabled_rules),
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
            enabled_rules=None if data.get("enabled_rules") is None else list(data["enabled_rules"]),
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

    The enabled rules (`config.enabled_rules()`) run by kind: every weighted node through the weighted
    rules (the first objection keeps it in high precision), then each pattern rule over its candidate
    nodes, then the post-passes over the finished plan.

    Args:
        model: the FP32 model (as `trtq export` writes it, or a user's own ONNX).
        config: user controls; defaults to `PlacementConfig()`.

    Returns:
        The plan. Tensor and node names refer to `trtq.placement.normalize(model)`, which keeps every
        activation and node name of `model`.

    Raises:
        UsageError: the config names an unknown rule or is otherwise invalid (see
            `PlacementConfig.validate`).
    """
    config = config or PlacementConfig()
    enabled = config.enabled_rules()
    index = GraphIndex(normalize(model), batch_hint=config.batch_hint)
    weighted = index.topo_weighted(WEIGHTED_OPS)
    first_last: frozenset[str] = frozenset()
    if config.keep_first_last and weighted:
        first_last = frozenset({weighted[0].name, weighted[-1].name})
    ctx = PlacementContext(
        index=index,
        exclude_nodes=tuple(config.exclude_nodes),
        exclude_op_types=tuple(config.exclude_op_types),
        first_last=first_last,
        batch_hint=config.batch_hint,
    )
    weighted_rules = make_rules(WeightedRule, enabled)

    b = _Builder()
    for node in weighted:
        reason, rule_name = None, ""
        for rule in weighted_rules:
            reason = rule.check(node, ctx)
            if reason:
                rule_name = rule.name
                break
        if reason:
            b.decide(node, False, rule_name, reason)
            continue
        w = weight_input(node, index)
        for pos, name in enumerate(node.input[:2]):
            if not name:
                continue
            if pos == w:
                b.plan.weights.setdefault(name, weight_axis(node, index))
            elif not index.is_const(name):
                b.quantize_input(name, node.name)
        b.plan.quantized_nodes.append(node.name)
        b.decide(node, True, "QuantizeWeightedInputs", "activation input(s) per-tensor, weight per-channel")

    vetoes = [r for r in weighted_rules if r.vetoes_patterns]
    view = PlanView(quantized=set(b.plan.quantized_nodes), consumers=b.plan.consumers)
    decided = {d.node for d in b.plan.decisions}
    for pattern in make_rules(PatternRule, enabled):
        for node in index.nodes:
            if node.op_type not in pattern.op_types or node.name in decided:
                continue
            verdict = pattern.apply(node, ctx, view)
            if verdict is None:
                continue
            decided.add(node.name)
            veto = next(((v.name, r) for v in vetoes if (r := v.check(node, ctx))), None)
            if veto and verdict.inputs:
                b.decide(node, False, veto[0], veto[1])
                continue
            for t in verdict.inputs:
                b.quantize_input(t, node.name)
            if verdict.fused_input:
                view.fused_adds[node.name] = verdict.fused_input
            b.decide(node, bool(verdict.inputs), pattern.name, verdict.reason)
    for post in make_rules(PostPassRule, enabled):
        post.refine(b.plan, ctx)
    _note_unquantized_compute(b, index)
    b.plan.enabled_rules = list(enabled)
    return b.plan


#: Compute ops Q/DQ cannot make INT8 in TensorRT (no fusion of Q/DQ into them): listed as not quantized.
NO_INT8_OPS = {
    "LSTM": "recurrent layer: TensorRT's explicit quantization has no INT8 LSTM; it runs in FP16/FP32",
    "GRU": "recurrent layer: TensorRT's explicit quantization has no INT8 GRU; it runs in FP16/FP32",
    "RNN": "recurrent layer: TensorRT's explicit quantization has no INT8 RNN; it runs in FP16/FP32",
    "Einsum": "TensorRT fuses Q/DQ only into Conv/ConvTranspose/Gemm/MatMul, not Einsum; it runs in FP16/FP32",
    "Attention": "TensorRT fuses Q/DQ only into Conv/ConvTranspose/Gemm/MatMul, not Attention; it runs in FP16/FP32",
}
#: The `Decision.rule` of those entries (not a placement rule: a fact about TensorRT).
NOT_QUANTIZABLE = "NotQuantizable"


def _note_unquantized_compute(b: _Builder, index: GraphIndex) -> None:
    """Record custom ops and compute ops without an INT8 path as not quantized, so reports list them."""
    from trtq.export.onnx_model import STANDARD_DOMAINS

    decided = {d.node for d in b.plan.decisions}
    for node in index.nodes:
        if node.name in decided:
            continue
        if node.domain not in STANDARD_DOMAINS:
            reason = f"custom op {node.domain}:{node.op_type}: not quantizable (TensorRT runs it as a plugin)"
        elif node.op_type in NO_INT8_OPS:
            reason = NO_INT8_OPS[node.op_type]
        else:
            continue
        b.decide(node, False, NOT_QUANTIZABLE, reason)
