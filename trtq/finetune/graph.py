"""ONNX passes that turn ModelOpt's fake-quant export into the Q/DQ graph PTQ would produce, and the check.

The FP32 export folds BatchNorm into the convolutions; a fake-quant export cannot (the convolution reads
`DequantizeLinear(QuantizeLinear(W))`, not a constant), so it keeps `Conv -> BatchNormalization`.
`fold_batchnorm` folds it afterwards, exactly: with c = gamma / sqrt(var + eps) per output channel,

    W' = c * W,   s' = |c| * s   (weight scale, per channel),   b' = c * (b - mean) + beta

and round(c W / (|c| s)) = sign(c) round(W / s), so DQ(Q(W'; s')) = c * DQ(Q(W; s)): the folded graph
computes what the trained network computed, and its weight scales are max |W'| / 127, the scales PTQ
puts on the FP32 export's folded weights.

`qdq_layout` reads where a graph has Q/DQ (activation tensor -> the nodes that read its dequantized value;
weighted node -> per-channel axis of its weight). `check_placement` compares the QAT graph's layout with
the layout of `trtq.qdq.insert_qdq(fp32, plan)`, the PTQ graph, so the check does not trust this package's
own reading of the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtq.placement import QDQPlan
from trtq.qdq import MIN_SCALE

__all__ = [
    "fold_batchnorm",
    "drop_noop_casts",
    "merge_duplicate_qdq",
    "collapse_requantization",
    "align_to_plan",
    "QDQLayout",
    "qdq_layout",
    "PlacementCheck",
    "check_placement",
    "WEIGHTED",
]

#: Ops whose constant second input is a weight.
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class _Graph:
    """Producer/consumer/initializer maps of a model, rebuilt after each edit."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in g.output}
        self.taken = (
            {n.name for n in g.node} | set(self.inits) | set(self.producer) | {i.name for i in g.input}
        )

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def fresh(self, name: str) -> str:
        out, k = name, 1
        while out in self.taken:
            out, k = f"{name}_{k}", k + 1
        self.taken.add(out)
        return out

    def add_init(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        t = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.model.graph.initializer.append(t)
        self.inits[name] = t
        return name


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _replace_uses(model: onnx.ModelProto, old: str, new: str) -> None:
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def _prune_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def _weight_qdq(graph: _Graph, tensor: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """(Q, DQ) when `tensor` is DequantizeLinear(QuantizeLinear(initializer)), else None."""
    dq = graph.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = graph.producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in graph.inits:
        return None
    return q, dq


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold each inference BatchNormalization into the Conv/ConvTranspose that feeds it (only it).

    Works on plain FP32 weights and on per-channel `Q -> DQ` weights (the scale is rescaled by |c|, see the
    module doc). BatchNorms that follow anything else, or a weight quantized per tensor, are left in place.

    Returns:
        (a new model, number of BatchNorms folded). The folded convolution takes over the BatchNorm's
        consumers, so tensor names downstream are those of the FP32 export.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    folded = 0
    while True:
        graph = _Graph(out)
        for bn in out.graph.node:
            if bn.op_type == "BatchNormalization" and _fold_one(graph, bn):
                folded += 1
                break
        else:
            break
    _prune_initializers(out)
    return out, folded


def _fold_one(graph: _Graph, bn: onnx.NodeProto) -> bool:
    conv = graph.producer.get(bn.input[0])
    if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or len(bn.output) != 1:
        return False
    if len(graph.consumers.get(bn.input[0], [])) != 1 or bn.input[0] in graph.outputs:
        return False
    if any(name not in graph.inits for name in bn.input[1:5]):
        return False
    axis = 0 if conv.op_type == "Conv" else 1
    if conv.op_type == "ConvTranspose" and int(_attr(conv, "group", 1)) != 1:
        return False
    gamma, beta, mean, var = (graph.array(n).astype(np.float64) for n in bn.input[1:5])
    c = gamma / np.sqrt(var + float(_attr(bn, "epsilon", 1e-5)))

    w_name = conv.input[1]
    qdq = _weight_qdq(graph, w_name)
    if qdq is None and w_name not in graph.inits:
        return False
    src = qdq[0].input[0] if qdq else w_name
    w = graph.array(src).astype(np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    new_w = graph.add_init(f"{src}_bnfolded", (w * c.reshape(shape)).astype(np.float32))
    if qdq:
        q, dq = qdq
        scale = graph.array(q.input[1]).astype(np.float64)
        if scale.ndim != 1 or int(_attr(q, "axis", 1)) % w.ndim != axis or len(scale) != len(c):
            return False
        new_s = graph.add_init(
            f"{q.input[1]}_bnfolded", np.maximum(scale * np.abs(c), MIN_SCALE).astype(np.float32)
        )
        q.input[0], q.input[1] = new_w, new_s
        dq.input[1] = new_s
    else:
        conv.input[1] = new_w
    bias = graph.array(conv.input[2]).astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
    new_b = graph.add_init(f"{conv.name}_bias_bnfolded", ((bias - mean) * c + beta).astype(np.float32))
    if len(conv.input) > 2:
        conv.input[2] = new_b
    else:
        conv.input.append(new_b)

    # The convolution now computes the BatchNorm's output.
    conv_out, bn_out = conv.output[0], bn.output[0]
    if bn_out in graph.outputs:
        conv.output[0] = bn_out
    else:
        _replace_uses(graph.model, bn_out, conv_out)
    graph.model.graph.node.remove(bn)
    return True


def drop_noop_casts(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Remove Cast nodes whose target type is their input's type (ModelOpt's export leaves float->float casts)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    types: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(out)
        for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
            types[vi.name] = vi.type.tensor_type.elem_type
    except Exception:  # without types nothing is provably a no-op
        return out, 0
    for t in out.graph.initializer:
        types[t.name] = t.data_type
    outputs = {o.name for o in out.graph.output}
    removed = 0
    for node in list(out.graph.node):
        if node.op_type != "Cast" or node.output[0] in outputs:
            continue
        if types.get(node.input[0]) and types.get(node.input[0]) == int(_attr(node, "to", 0)):
            _replace_uses(out, node.output[0], node.input[0])
            out.graph.node.remove(node)
            removed += 1
    return out, removed


def _pairs(graph: _Graph) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Q, DQ) pairs where the DQ reads only that Q."""
    found = []
    for dq in graph.model.graph.node:
        if dq.op_type != "DequantizeLinear":
            continue
        q = graph.producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear" and len(graph.consumers.get(q.output[0], [])) == 1:
            found.append((q, dq))
    return found


def _qparams(graph: _Graph, q: onnx.NodeProto) -> tuple[bytes, bytes, int]:
    scale = graph.array(q.input[1]) if q.input[1] in graph.inits else None
    zp = graph.array(q.input[2]) if len(q.input) > 2 and q.input[2] in graph.inits else np.zeros(0, np.int8)
    if scale is None:
        return (f"dynamic:{q.input[1]}".encode(), zp.tobytes(), int(_attr(q, "axis", 1)))
    return (scale.astype(np.float32).tobytes(), zp.tobytes(), int(_attr(q, "axis", 1)) if scale.ndim else 0)


def merge_duplicate_qdq(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """One Q/DQ pair per tensor: pairs on the same tensor with the same scale, zero point and axis become one.

    ModelOpt quantizes each module's input separately, so a tensor read by two quantized layers gets two
    identical pairs; PTQ (and TensorRT) use one.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = _Graph(out)
    first: dict[tuple[str, bytes, bytes, int], str] = {}
    merged = 0
    for q, dq in _pairs(graph):
        key = (q.input[0], *_qparams(graph, q))
        if key not in first:
            first[key] = dq.output[0]
            continue
        if dq.output[0] in graph.outputs:
            continue
        _replace_uses(out, dq.output[0], first[key])
        out.graph.node.remove(q)
        out.graph.node.remove(dq)
        merged += 1
    _prune_initializers(out)
    return out, merged


def collapse_requantization(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Drop a Q/DQ pair that re-quantizes a dequantized value with the same scale, zero point and axis.

    An output quantizer and the input quantizer of a conv reading the same tensor export as
    `Q -> DQ -> Q -> DQ -> Conv` with one scale; the second pair is the identity on the int8 grid.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = _Graph(out)
    removed = 0
    for q2, dq2 in _pairs(graph):
        dq1 = graph.producer.get(q2.input[0])
        if dq1 is None or dq1.op_type != "DequantizeLinear" or dq2.output[0] in graph.outputs:
            continue
        q1 = graph.producer.get(dq1.input[0])
        if q1 is None or q1.op_type != "QuantizeLinear" or _qparams(graph, q1) != _qparams(graph, q2):
            continue
        _replace_uses(out, dq2.output[0], dq1.output[0])
        out.graph.node.remove(q2)
        out.graph.node.remove(dq2)
        removed += 1
    _prune_initializers(out)
    return out, removed


def align_to_plan(
    model: onnx.ModelProto,
    plan: QDQPlan,
    amax_for: Callable[[list[str]], Mapping[str, float]],
) -> tuple[onnx.ModelProto, list[str]]:
    """Route every consumer the plan lists to its tensor's dequantized value, adding pairs where none exist.

    Module quantizers only cover the inputs of quantized layers. The plan also quantizes tensors for
    non-weighted consumers (the residual input of an Add TensorRT fuses into a convolution, pooling that
    continues an INT8 chain): a consumer that reads a tensor which already has a pair is rewired to it (same
    scale as training used); a tensor with no pair gets a new one with the amax `amax_for` returns.

    Args:
        model: the QAT graph after `fold_batchnorm`, `drop_noop_casts` and `merge_duplicate_qdq`.
        plan: the PTQ plan of the FP32 export.
        amax_for: calibrates the given tensors of `model` (called once, only if some tensor has no pair).

    Returns:
        (a new model, the tensors that got a new pair).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = _Graph(out)
    existing: dict[str, str] = {}
    for q, dq in _pairs(graph):
        if q.input[0] not in graph.inits:
            existing.setdefault(q.input[0], dq.output[0])
    missing = [t for t in plan.activations if t not in existing and plan.consumers.get(t)]
    added: list[str] = []
    if missing:
        amax = amax_for(missing)
        for t in missing:
            existing[t] = _add_pair(graph, t, max(abs(float(amax[t])) / 127.0, MIN_SCALE))
            added.append(t)
    nodes = {n.name: n for n in out.graph.node}
    for t in plan.activations:
        for consumer in plan.consumers.get(t, []):
            node = nodes.get(consumer)
            if node is None:
                continue
            for i, name in enumerate(node.input):
                if name == t:
                    node.input[i] = existing[t]
    return out, added


def _add_pair(graph: _Graph, tensor: str, scale: float) -> str:
    s = graph.add_init(f"{tensor}_scale", np.array(scale, dtype=np.float32))
    zp = graph.add_init(f"{tensor}_zero_point", np.array(0, dtype=np.int8))
    q_out, dq_out = (
        graph.fresh(f"{tensor}_QuantizeLinear_Output"),
        graph.fresh(f"{tensor}_DequantizeLinear_Output"),
    )
    q = helper.make_node("QuantizeLinear", [tensor, s, zp], [q_out], graph.fresh(f"{tensor}_QuantizeLinear"))
    dq = helper.make_node(
        "DequantizeLinear", [q_out, s, zp], [dq_out], graph.fresh(f"{tensor}_DequantizeLinear")
    )
    nodes = graph.model.graph.node
    producer = graph.producer.get(tensor)
    at = 0 if producer is None else next(i for i, n in enumerate(nodes) if n is producer) + 1
    nodes.insert(at, dq)
    nodes.insert(at, q)
    graph.producer[q_out], graph.producer[dq_out] = q, dq
    return dq_out


@dataclass
class QDQLayout:
    """Where a graph has Q/DQ.

    Attributes:
        activations: activation tensor -> sorted names of the nodes that read its dequantized value.
        weights: weighted node -> per-channel axis of its weight Q/DQ (-1 = per tensor).
    """

    activations: dict[str, list[str]] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)


def qdq_layout(model: onnx.ModelProto) -> QDQLayout:
    """Read the Q/DQ layout of a (normalised) graph."""
    graph = _Graph(model)
    acts: dict[str, set[str]] = {}
    weights: dict[str, int] = {}
    for q, dq in _pairs(graph):
        readers = graph.consumers.get(dq.output[0], [])
        src = q.input[0]
        if src in graph.inits:
            scale = graph.array(q.input[1]) if q.input[1] in graph.inits else np.zeros(())
            w_rank = len(graph.inits[src].dims)
            axis = int(_attr(q, "axis", 1)) % max(w_rank, 1) if scale.ndim else -1
            for r in readers:
                if r.op_type in WEIGHTED and len(r.input) > 1 and r.input[1] == dq.output[0]:
                    weights[r.name] = axis
        else:
            acts.setdefault(src, set()).update(r.name for r in readers)
    return QDQLayout({t: sorted(c) for t, c in acts.items()}, weights)


@dataclass
class PlacementCheck:
    """How a QAT graph's Q/DQ compare with the PTQ graph of the same FP32 model.

    Attributes:
        matches: True when both have Q/DQ on the same tensors, read by the same nodes, and the same
            weighted nodes have per-channel weights on the same axis.
        missing: activation tensors PTQ quantizes and the QAT graph does not.
        extra: activation tensors the QAT graph quantizes and PTQ does not.
        consumers: tensor -> {"ptq": [...], "qat": [...]} where both quantize it but for other readers.
        missing_weights, extra_weights: weighted nodes with a quantized weight in only one of the graphs.
        axis_mismatch: weighted node -> {"ptq": axis, "qat": axis}.
        activations, weights: counts in the QAT graph.
    """

    matches: bool
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    consumers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    missing_weights: list[str] = field(default_factory=list)
    extra_weights: list[str] = field(default_factory=list)
    axis_mismatch: dict[str, dict[str, int]] = field(default_factory=dict)
    activations: int = 0
    weights: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: either the counts that match, or the first differences."""
        if self.matches:
            return f"Q/DQ placement matches PTQ ({self.activations} activation, {self.weights} weight Q/DQ)"
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("other readers", list(self.consumers)),
            ("weights missing", self.missing_weights),
            ("extra weights", self.extra_weights),
            ("weight axis", list(self.axis_mismatch)),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}")
        return "Q/DQ placement differs from PTQ: " + "; ".join(parts)


def ptq_layout(fp32: onnx.ModelProto, plan: QDQPlan) -> QDQLayout:
    """The layout of the PTQ graph `trtq.qdq.insert_qdq` makes from `fp32` and `plan` (any amax)."""
    from trtq.qdq import insert_qdq

    return qdq_layout(insert_qdq(fp32, plan, dict.fromkeys(plan.activations, 1.0)))


def check_placement(qat: onnx.ModelProto, fp32: onnx.ModelProto, plan: QDQPlan) -> PlacementCheck:
    """Compare the Q/DQ of a QAT graph with the PTQ graph of `fp32` under `plan`.

    Args:
        qat: the QAT graph (names as the legacy exporter gives them; BatchNorm folded).
        fp32: the FP32 export of the same model.
        plan: `trtq.placement.plan_qdq(fp32, config)` with the config the QAT model was made with.
    """
    from trtq.placement import normalize

    got = qdq_layout(normalize(qat))
    want = ptq_layout(fp32, plan)
    missing = sorted(set(want.activations) - set(got.activations))
    extra = sorted(set(got.activations) - set(want.activations))
    consumers = {
        t: {"ptq": want.activations[t], "qat": got.activations[t]}
        for t in sorted(set(want.activations) & set(got.activations))
        if want.activations[t] != got.activations[t]
    }
    missing_w = sorted(set(want.weights) - set(got.weights))
    extra_w = sorted(set(got.weights) - set(want.weights))
    axis = {
        n: {"ptq": want.weights[n], "qat": got.weights[n]}
        for n in sorted(set(want.weights) & set(got.weights))
        if want.weights[n] != got.weights[n]
    }
    ok = not (missing or extra or consumers or missing_w or extra_w or axis)
    return PlacementCheck(
        ok, missing, extra, consumers, missing_w, extra_w, axis, len(got.activations), len(got.weights)
    )
