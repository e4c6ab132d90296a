"""Cross-layer equalisation (CLE, Nagel et al. 2019, "Data-Free Quantization"): `--weight-ptq equalize`.

In a depthwise-separable network the output channels of one conv differ in range by orders of magnitude, and
the next conv's per-tensor INT8 input has to cover them all with one scale. For two convs A -> act -> B whose
activation is positively homogeneous per channel, scaling A's output channel c by 1/s_c (its weights and
bias) and B's input channel c by s_c leaves the FP32 function unchanged. With r1_c = max |W_A[c]| and
r2_c = max |W_B[:, c]|, s_c = sqrt(r1_c / r2_c) gives both the range sqrt(r1_c r2_c); chains (expand ->
depthwise -> project) are iterated until the scales settle.

What may sit between A and B (each tensor read only by the next node):

- `Relu`: ReLU(x / s) = ReLU(x) / s, unchanged.
- `Clip(lo, hi)` (ReLU6): Clip(x / s, lo, hi) = Clip(x, lo s, hi s) / s only if the bounds move with the
  scale, so the Clip becomes `Relu` (lo = 0) or `Max(x, lo / s)`, then `Min(x, hi / s)` with a per-channel
  [C, 1, 1] constant (ONNX Clip takes scalar bounds only). TensorRT runs an elementwise Min with a constant;
  whether it still fuses into the conv's epilogue as Clip does is not measured here (no TensorRT).
- `Pad` with constant value 0 (the "same" padding of TF-ported models): 0 / s = 0.

Only weights, biases and these bounds change; the result is a pure function of the FP32 graph (data-free).
It runs on the FP32 graph before placement and calibration (`EqualizeStage`), so calibration measures the
equalised activations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trtq.weights.base import WeightState, register_weight_method

if TYPE_CHECKING:
    import onnx

__all__ = ["EqualizePair", "EqualizeResult", "find_pairs", "channel_ranges", "equalize_graph", "MAX_ITERS"]

#: Largest gain of a channel against the widest channel of its tensor (see `equalize_graph`).
MAX_GAIN = 10.0
#: Sweeps over all pairs at most (a chain of convs converges in a few).
MAX_ITERS = 20
#: A sweep that moves no scale by more than this relative amount ends the iteration.
_TOL = 1e-4
#: Bounds of one pair's scale per sweep: keeps a channel that is (almost) zero in one layer from exploding.
_S_MIN, _S_MAX = 1e-4, 1e4


@dataclass
class EqualizePair:
    """Two convs equalised together: `first`'s output channels feed `second`'s input channels.

    Attributes:
        first, second: node names; via: the op types between them (Relu, Clip, Pad).
        scale: the cumulative per-channel scale s (first's channel c divided by s_c, second's multiplied).
        ratio_before, ratio_after: max / median over channels of first's per-channel weight range.
    """

    first: str
    second: str
    via: list[str]
    tensor: str = ""
    scale: np.ndarray = field(default_factory=lambda: np.ones(0, np.float32))
    ratio_before: float = 1.0
    ratio_after: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "via": list(self.via), "tensor": self.tensor,
                "scale_range": [round(float(self.scale.min()), 6), round(float(self.scale.max()), 6)],
                "range_ratio": [round(self.ratio_before, 3), round(self.ratio_after, 3)]}  # fmt: skip


@dataclass
class EqualizeResult:
    """The equalised FP32 graph and what changed."""

    model: onnx.ModelProto
    pairs: list[EqualizePair]
    iterations: int = 0
    mode: str = "weights"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "pairs": len(self.pairs), "iterations": self.iterations, "bounds_per_channel":
                sum(1 for p in self.pairs if "Clip" in p.via), "detail": [p.to_json() for p in self.pairs]}  # fmt: skip


def _const(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    if name == "":
        return None
    t = inits.get(name)
    return None if t is None else numpy_helper.to_array(t)


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def find_pairs(model: onnx.ModelProto) -> list[EqualizePair]:
    """The conv pairs of a normalized graph (`trtq.placement.normalize`) that can be equalised exactly."""
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}

    def only_reader(tensor: str) -> onnx.NodeProto | None:
        readers = consumers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    def conv_ok(n: onnx.NodeProto) -> bool:
        return n.op_type == "Conv" and len(n.input) >= 2 and n.input[1] in inits and (
            len(n.input) < 3 or n.input[2] == "" or n.input[2] in inits)  # fmt: skip

    pairs: list[EqualizePair] = []
    for a in g.node:
        if not conv_ok(a):
            continue
        tensor, via = a.output[0], []
        nxt = only_reader(tensor)
        while nxt is not None and nxt.op_type in ("Relu", "Clip", "Pad"):
            if nxt.input[0] != tensor:
                break
            if nxt.op_type == "Clip" and not _clip_ok(nxt, inits):
                break
            if nxt.op_type == "Pad" and not _pad_ok(nxt, inits):
                break
            via.append(nxt.op_type)
            tensor = nxt.output[0]
            nxt = only_reader(tensor)
        if nxt is None or not conv_ok(nxt) or nxt.input[0] != tensor or nxt.input[1] == a.input[1]:
            continue
        k = numpy_helper.to_array(inits[a.input[1]]).shape[0]
        wb = numpy_helper.to_array(inits[nxt.input[1]])
        if wb.shape[1] * int(_attr(nxt, "group", 1)) != k:
            continue
        if sum(v == "Clip" for v in via) > 1:
            continue
        pairs.append(EqualizePair(a.name, nxt.name, via, tensor, np.ones(k, np.float32)))
    # a weight shared by two convs, or a conv in two pairs as the same role, cannot be scaled twice
    seen_first = [p.first for p in pairs]
    seen_second = [p.second for p in pairs]
    return [p for p in pairs if seen_first.count(p.first) == 1 and seen_second.count(p.second) == 1]


def _clip_ok(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """A Clip whose bounds are scalar constants (absent = unbounded)."""
    from onnx import numpy_helper

    for i in node.input[1:3]:
        if i != "" and (i not in inits or numpy_helper.to_array(inits[i]).size != 1):
            return False
    return True


def _pad_ok(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """A constant-mode Pad whose value is 0 (absent = 0)."""
    if _attr(node, "mode", b"constant") not in (b"constant", "constant"):
        return False
    if len(node.input) > 2 and node.input[2] != "":
        v = _const(inits, node.input[2])
        return v is not None and v.size == 1 and float(v.reshape(-1)[0]) == 0.0
    return True


def _in_channel_range(wb: np.ndarray, group: int) -> np.ndarray:
    """max |W_B| over everything that reads input channel c, for each c (C = cpg * group)."""
    k, cpg = wb.shape[0], wb.shape[1]
    kpg = k // group
    a = np.abs(wb.reshape(group, kpg, cpg, -1)).max(axis=(1, 3))  # (group, cpg)
    return a.reshape(-1)


def _scale_in(wb: np.ndarray, group: int, s: np.ndarray) -> np.ndarray:
    k, cpg = wb.shape[0], wb.shape[1]
    kpg = k // group
    w = wb.reshape(group, kpg, cpg, -1) * s.reshape(group, 1, cpg, 1)
    return w.reshape(wb.shape).astype(np.float32)


def _ratio(r: np.ndarray) -> float:
    med = float(np.median(r))
    return float(r.max()) / med if med > 0 else float("inf")


def channel_ranges(
    model: onnx.ModelProto, tensors: Iterable[str], feeds: Iterable[Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """max |x| per channel (axis 1) of each tensor over the given input batches (ONNX Runtime, FP32)."""
    from trtq.smoothquant import channel_absmax

    return channel_absmax(model, tensors, feeds, axis=1)


def equalize_graph(
    model: onnx.ModelProto,
    act_ranges: Mapping[str, np.ndarray] | None = None,
    *,
    alpha: float = 0.5,
    max_gain: float = MAX_GAIN,
    iters: int = MAX_ITERS,
) -> EqualizeResult:
    """Equalise every pair `find_pairs` finds; returns a new model (same FP32 function) and the pairs.

    Args:
        model: a normalized graph (`trtq.placement.normalize`: constants as initializers, nodes named).
        act_ranges: per-channel max |x| of the tensors the pairs' second convs read (`channel_ranges` on
            calibration data); only the pairs with an entry are equalised. Without them (every pair) the
            scales come from the weights alone (Nagel's data-free
            s_c = sqrt(r1_c / r2_c)). With them the range that matters with per-channel weights is balanced:
            the per-tensor INT8 activation against the second conv's weight columns, s_c = a_c^alpha /
            r2_c^(1 - alpha); a depthwise second conv quantizes each channel's weight on its own scale, so
            there the activation is equalised fully (s_c = a_c / max a).
        alpha: the activation's share of the balance (0.5: even), with `act_ranges`.
        max_gain: with `act_ranges`, a channel's measured range counts as at least max / max_gain, so no
            channel is blown up more than that against the widest one (a channel quiet on the calibration data
            may not be on other data).
        iters: sweeps over all pairs at most.
    """
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    pairs = find_pairs(out)
    if act_ranges is not None:
        pairs = [p for p in pairs if p.tensor in act_ranges]
    mode = "weights" if act_ranges is None else "activations"
    if not pairs:
        return EqualizeResult(out, [], 0, mode)
    nodes = {n.name: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    w = {n.input[1]: numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for p in pairs
         for n in (nodes[p.first], nodes[p.second])}  # fmt: skip
    b = {n.input[2]: numpy_helper.to_array(inits[n.input[2]]).astype(np.float32) for p in pairs
         for n in (nodes[p.first],) if len(n.input) > 2 and n.input[2] != ""}  # fmt: skip
    # the measured ranges with each channel counted as at least max / max_gain (fixed: the scales divide them)
    floored = None if act_ranges is None else {
        p.tensor: np.maximum(r, r.max() / max_gain) for p in pairs
        for r in (np.asarray(act_ranges[p.tensor], np.float64),)}  # fmt: skip
    for p in pairs:
        p.ratio_before = _ratio(_out_range(w[nodes[p.first].input[1]], p, act_ranges))
    done = 0
    while done < iters:
        done += 1
        moved = 0.0
        for p in pairs:
            na, nb = nodes[p.first], nodes[p.second]
            wa, wb = w[na.input[1]], w[nb.input[1]]
            group = int(_attr(nb, "group", 1))
            r1 = _out_range(wa, p, floored).astype(np.float64)
            r2 = _in_channel_range(wb, group).astype(np.float64)
            s = np.ones_like(r1)
            live = (r1 > 0) & (r2 > 0)
            if act_ranges is None:
                s[live] = np.sqrt(r1[live] / r2[live])
            elif wb.shape[1] == 1 and group == wb.shape[0]:  # depthwise: weights per channel either way
                s[live] = r1[live] / r1[live].max()
            else:
                s[live] = r1[live] ** alpha / r2[live] ** (1.0 - alpha)
            s = np.clip(s, _S_MIN, _S_MAX).astype(np.float32)
            if np.all(s == 1):
                continue
            moved = max(moved, float(np.abs(s - 1).max()))
            shape = (-1,) + (1,) * (wa.ndim - 1)
            w[na.input[1]] = (wa / s.reshape(shape)).astype(np.float32)
            if len(na.input) > 2 and na.input[2] in b:
                b[na.input[2]] = (b[na.input[2]] / s).astype(np.float32)
            w[nb.input[1]] = _scale_in(wb, group, s)
            p.scale = (p.scale * s).astype(np.float32)
        if moved < _TOL:
            break
    for name, arr in {**w, **b}.items():
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))
    for p in pairs:
        p.ratio_after = _ratio(_out_range(w[nodes[p.first].input[1]], p, act_ranges))
        if "Clip" in p.via:
            _rebound_clip(g, nodes, inits, p)
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    if len(kept) != len(g.initializer):  # the scalar bounds of the replaced Clips
        del g.initializer[:]
        g.initializer.extend(kept)
    return EqualizeResult(out, pairs, done, mode)


def _out_range(wa: np.ndarray, p: EqualizePair, act_ranges: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """The range of the first conv's channel c now: its weight's, or the measured activation's over the scale."""
    if act_ranges is not None and p.tensor in act_ranges:
        return np.asarray(act_ranges[p.tensor], np.float64) / p.scale.astype(np.float64)
    return np.abs(wa.reshape(wa.shape[0], -1)).max(axis=1)


def _rebound_clip(
    g: onnx.GraphProto, nodes: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto], p: EqualizePair
) -> None:
    """Replace the Clip between the pair by Relu / Max and a Min with per-channel bounds (bounds / scale)."""
    from onnx import helper, numpy_helper

    # walk from the first conv to the Clip
    consumers = {i: n for n in g.node for i in n.input}
    node = consumers[nodes[p.first].output[0]]
    while node.op_type != "Clip":
        node = consumers[node.output[0]]
    lo = _const(inits, node.input[1]) if len(node.input) > 1 else None
    hi = _const(inits, node.input[2]) if len(node.input) > 2 else None
    inv = (1.0 / p.scale.astype(np.float64)).reshape(-1, 1, 1)
    new: list[onnx.NodeProto] = []
    x = node.input[0]
    base = node.name or node.output[0]
    last = hi is None
    if lo is not None and float(lo.reshape(-1)[0]) == 0.0:
        new.append(helper.make_node("Relu", [x], [node.output[0] if last else f"{base}/cle_relu"],
                                    name=f"{base}/cle_relu"))  # fmt: skip
        x = new[-1].output[0]
    elif lo is not None:
        bound = numpy_helper.from_array((float(lo.reshape(-1)[0]) * inv).astype(np.float32), f"{base}/cle_lo")
        g.initializer.append(bound)
        new.append(helper.make_node("Max", [x, bound.name], [node.output[0] if last else f"{base}/cle_max"],
                                    name=f"{base}/cle_max"))  # fmt: skip
        x = new[-1].output[0]
    if hi is not None:
        bound = numpy_helper.from_array((float(hi.reshape(-1)[0]) * inv).astype(np.float32), f"{base}/cle_hi")
        g.initializer.append(bound)
        new.append(helper.make_node("Min", [x, bound.name], [node.output[0]], name=f"{base}/cle_min"))
    if not new:  # Clip without bounds: an identity
        new.append(helper.make_node("Identity", [x], [node.output[0]], name=f"{base}/cle_identity"))
    idx = list(g.node).index(node)
    del g.node[idx]
    for j, n in enumerate(new):
        g.node.insert(idx + j, n)


@register_weight_method(
    "equalize",
    order=0,
    needs_patches=False,
    graph=True,
    help="cross-layer equalisation of conv -> (ReLU/ReLU6/zero Pad) -> conv pairs on the FP32 graph before "
    "calibration (scales from the activation ranges on calibration data, else from the weights; ReLU6 bounds "
    "become per-channel)",
)
def equalize(state: WeightState) -> dict[str, Any]:
    """A graph method: `EqualizeStage` applies it to the FP32 graph before calibration, not `weight_ptq()`."""
    raise RuntimeError(
        "equalize runs on the FP32 graph (trtq.weights.equalize.equalize_graph), not in weight_ptq"
    )
