"""SmoothQuant: move per-channel activation outliers into the following weights before INT8 calibration.

Transformer activations have a few channels 10-100x larger than the rest (LayerNorm outputs, the inputs of the
QKV and FFN projections). One per-tensor INT8 scale then spends almost all its levels on those channels. For an
activation `X` read by weighted ops `Y = X·W`, SmoothQuant (Xiao et al., 2023) divides channel j of X by

    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)

and multiplies row j of every W that reads X by s_j: `(X / s)·(s W) = X·W`, so FP32 outputs are unchanged while
the activation's range becomes even across channels (alpha = 0.5 splits the difficulty evenly; larger alpha
moves more of it into the weights, which are quantized per channel).

Where the division goes:

- **folded**: X is the output of a LayerNormalization read only by the weighted ops: its scale and bias are
  divided by s. Only weights change; the graph keeps its nodes.
- **scaled**: X is also read by something else (the residual Add of a post-LN encoder such as BERT reads the
  LayerNorm output too), so one `Mul` by the constant 1/s goes in front of the weighted ops only (ModelOpt's
  `pre_quant_scale`); the residual keeps the unscaled tensor. TensorRT runs the Mul as a pointwise op in front
  of the Quantize (expected to fuse with it; not measured here: no TensorRT on this machine).

Every change is to constants (weights, LayerNorm parameters, a constant scale), so TensorRT runs the result;
`smooth_graph` is a pure function of the FP32 graph and the per-channel activation maxima (`channel_absmax`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtq.errors import UsageError

__all__ = [
    "SmoothGroup",
    "SmoothResult",
    "smooth_candidates",
    "channel_absmax",
    "smooth_graph",
    "check_alpha",
]

_WEIGHTED = ("MatMul", "Gemm")
#: Smallest migration factor: keeps a channel that never fires from blowing its weights up.
_MIN_SCALE = 1e-5


@dataclass
class SmoothGroup:
    """One activation and the weighted ops that read it, smoothed together.

    Attributes:
        tensor: the activation (a LayerNorm output, ...).
        consumers: the MatMul/Gemm nodes that read it as their first input with a constant weight.
        mode: "folded" (into the producing LayerNorm's parameters) or "scaled" (a Mul in front of consumers).
        act_ratio: max over channels / median over channels of max|X_j| before smoothing (the outlier ratio).
        act_ratio_after: the same after smoothing.
        max_scale, min_scale: the extremes of s.
    """

    tensor: str
    consumers: list[str]
    mode: str = ""
    act_ratio: float = 0.0
    act_ratio_after: float = 0.0
    max_scale: float = 1.0
    min_scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "consumers": list(self.consumers),
            "mode": self.mode,
            "outlier_ratio": round(self.act_ratio, 4),
            "outlier_ratio_after": round(self.act_ratio_after, 4),
            "scale_range": [round(self.min_scale, 6), round(self.max_scale, 6)],
        }


@dataclass
class SmoothResult:
    """The smoothed graph and what was done."""

    model: onnx.ModelProto
    alpha: float
    groups: list[SmoothGroup] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "groups": [g.to_json() for g in self.groups]}


def check_alpha(alpha: Any, option: str = "--smoothquant") -> float:
    """`alpha` as a float in [0, 1], or a UsageError naming the option."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise UsageError(
            f"{option} {alpha!r}: give the migration strength alpha in [0, 1], e.g. 0.5"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{option} {alpha}: alpha must be in [0, 1] (0.5 is SmoothQuant's default)")
    return value


def _weight(node: onnx.NodeProto, inits: Mapping[str, onnx.TensorProto]) -> str | None:
    if node.op_type not in _WEIGHTED or len(node.input) < 2 or node.input[1] not in inits:
        return None
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0):
            return None
    if len(inits[node.input[1]].dims) != 2:
        return None
    return node.input[1]


def smooth_candidates(model: onnx.ModelProto) -> list[SmoothGroup]:
    """The activations SmoothQuant smooths: LayerNormalization outputs read as the first input of MatMul/Gemm
    nodes with a constant 2-D weight (the QKV and FFN projections, where the outlier channels are), in graph
    order."""
    inits = {t.name: t for t in model.graph.initializer}
    groups: dict[str, SmoothGroup] = {}
    norms = {o for n in model.graph.node if n.op_type == "LayerNormalization" for o in n.output[:1]}
    for node in model.graph.node:
        x = node.input[0] if node.input else ""
        if _weight(node, inits) is None or x not in norms:
            continue
        groups.setdefault(x, SmoothGroup(x, [])).consumers.append(node.name)
    return list(groups.values())


def channel_absmax(
    model: onnx.ModelProto, tensors: Iterable[str], feeds: Iterable[Mapping[str, np.ndarray]], axis: int = -1
) -> dict[str, np.ndarray]:
    """max |x| per channel (`axis`: the last one for transformer activations, 1 for NCHW) of each tensor over the
    given input batches (ONNX Runtime, FP32)."""
    from trtq.runners.onnxrt import OnnxRuntimeRunner

    names = list(tensors)
    out: dict[str, np.ndarray] = {}
    with OnnxRuntimeRunner(model, extra_outputs=names) as runner:
        for feed in feeds:
            values = runner.infer(dict(feed))
            for name in names:
                v = np.abs(np.asarray(values[name], dtype=np.float64))
                peak = np.moveaxis(v, axis, -1).reshape(-1, v.shape[axis]).max(axis=0)
                out[name] = peak if name not in out else np.maximum(out[name], peak)
    return out


def _ratio(v: np.ndarray) -> float:
    med = float(np.median(v))
    return float(v.max()) / med if med > 0 else float("inf") if v.max() > 0 else 1.0


def smooth_graph(
    model: onnx.ModelProto, absmax: Mapping[str, np.ndarray], alpha: float = 0.5
) -> SmoothResult:
    """Migrate activation outliers into the following weights (see the module doc).

    Args:
        model: the FP32 graph (not modified; node names as `trtq.placement.normalize` gives them).
        absmax: per-channel max |x| of the activations to smooth (`channel_absmax` on calibration data);
            activations without an entry are left alone.
        alpha: migration strength in [0, 1].

    Returns:
        The smoothed graph (same function in exact arithmetic) and one `SmoothGroup` per smoothed activation.
    """
    alpha = check_alpha(alpha, "alpha")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    nodes = {n.name: n for n in g.node}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    weight_readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            weight_readers[i] = weight_readers.get(i, 0) + 1
    done: list[SmoothGroup] = []
    new_nodes: dict[str, onnx.NodeProto] = {}  # consumer name -> the Mul inserted in front of it
    for group in smooth_candidates(model):
        act = absmax.get(group.tensor)
        if act is None:
            continue
        weights = [_weight(nodes[c], inits) for c in group.consumers]
        if any(weight_readers.get(w, 0) != 1 for w in weights if w):
            continue  # a weight shared with another node cannot be rescaled for this activation alone
        rows = []
        for c, w in zip(group.consumers, weights):
            arr = numpy_helper.to_array(inits[w]).astype(np.float64)
            trans = nodes[c].op_type == "Gemm" and any(a.name == "transB" and a.i for a in nodes[c].attribute)
            rows.append(np.abs(arr).max(axis=0 if trans else 1))
        w_max = np.max(np.stack(rows), axis=0)
        if w_max.shape != act.shape:
            continue
        s = np.where(
            (act > 0) & (w_max > 0), np.power(act, alpha) / np.power(np.maximum(w_max, 1e-12), 1 - alpha), 1.0
        )
        s = np.maximum(s, _MIN_SCALE)
        for c, w in zip(group.consumers, weights):
            arr = numpy_helper.to_array(inits[w]).astype(np.float64)
            trans = nodes[c].op_type == "Gemm" and any(a.name == "transB" and a.i for a in nodes[c].attribute)
            scaled = arr * (s[None, :] if trans else s[:, None])
            inits[w].CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), w))
        prod = producer.get(group.tensor)
        others = [r for r in readers.get(group.tensor, []) if r.name not in group.consumers]
        foldable = (
            prod is not None
            and prod.op_type == "LayerNormalization"
            and not others
            and group.tensor not in graph_outputs
            and all(i in inits for i in prod.input[1:3] if i)
        )
        if foldable:
            for pos in (1, 2):
                i = prod.input[pos] if len(prod.input) > pos else ""
                if not i:
                    continue
                p = (numpy_helper.to_array(inits[i]).astype(np.float64) / s).astype(np.float32)
                if weight_readers.get(i, 0) == 1:
                    inits[i].CopyFrom(numpy_helper.from_array(p, i))
                else:  # the exporter shares equal parameters between LayerNorms: this one gets its own
                    own = f"{prod.name or group.tensor}_smooth_{'scale' if pos == 1 else 'bias'}"
                    g.initializer.append(numpy_helper.from_array(p, own))
                    prod.input[pos] = own
            group.mode = "folded"
        else:
            base = f"{group.tensor}_smooth"
            inv = numpy_helper.from_array((1.0 / s).astype(np.float32), f"{base}_scale")
            g.initializer.append(inv)
            mul = helper.make_node("Mul", [group.tensor, inv.name], [base], f"{base}_Mul")
            for c in group.consumers:
                nodes[c].input[0] = base
            new_nodes[group.consumers[0]] = mul
            group.mode = "scaled"
        group.act_ratio, group.act_ratio_after = _ratio(act), _ratio(act / s)
        group.max_scale, group.min_scale = float(s.max()), float(s.min())
        done.append(group)
    if new_nodes:
        ordered: list[onnx.NodeProto] = []
        for n in g.node:
            if n.name in new_nodes:
                ordered.append(new_nodes[n.name])
            ordered.append(n)
        del g.node[:]
        g.node.extend(ordered)
    onnx.checker.check_model(m)
    return SmoothResult(model=m, alpha=alpha, groups=done)
