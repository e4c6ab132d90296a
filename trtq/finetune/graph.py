"""An index over an ONNX graph (producers, consumers, initializers) and the small edits the QAT passes share.

`GraphIndex` is rebuilt after each structural edit; `qdq_pairs` finds the QuantizeLinear -> DequantizeLinear
pairs of a graph and `qparams` the (scale, zero point, axis) that decide whether two pairs are the same
quantization. The passes themselves are in `trtq.finetune.fold` (BatchNorm folding), `trtq.finetune.passes`
(clean-up and plan alignment) and `trtq.finetune.layout` (where a graph has Q/DQ, and the placement check).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = [
    "GraphIndex",
    "attr",
    "copy_model",
    "replace_uses",
    "prune_initializers",
    "qdq_pairs",
    "qparams",
    "weight_qdq",
]


class GraphIndex:
    """Producer/consumer/initializer maps of a model, rebuilt after each edit.

    Args:
        model: the model to index; edits made through the index (`add_init`) go into it.
    """

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
        """The value of initializer `name`."""
        return numpy_helper.to_array(self.inits[name])

    def fresh(self, name: str) -> str:
        """`name`, or `name_1`, `name_2`, ... : a name no node, tensor or initializer of the graph uses yet."""
        out, k = name, 1
        while out in self.taken:
            out, k = f"{name}_{k}", k + 1
        self.taken.add(out)
        return out

    def add_init(self, base: str, value: np.ndarray) -> str:
        """Add an initializer named after `base` (made unique); returns its name."""
        name = self.fresh(base)
        t = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.model.graph.initializer.append(t)
        self.inits[name] = t
        return name


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy (the passes never edit their input)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    """The value of attribute `name` of `node`, or `default`."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def replace_uses(model: onnx.ModelProto, old: str, new: str) -> None:
    """Make every node that reads tensor `old` read `new`."""
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def prune_initializers(model: onnx.ModelProto) -> None:
    """Drop initializers no node and no graph output reads."""
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def weight_qdq(graph: GraphIndex, tensor: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """(Q, DQ) when `tensor` is DequantizeLinear(QuantizeLinear(initializer)), else None."""
    dq = graph.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = graph.producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in graph.inits:
        return None
    return q, dq


def qdq_pairs(graph: GraphIndex) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Q, DQ) pairs where the DQ reads only that Q."""
    found = []
    for dq in graph.model.graph.node:
        if dq.op_type != "DequantizeLinear":
            continue
        q = graph.producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear" and len(graph.consumers.get(q.output[0], [])) == 1:
            found.append((q, dq))
    return found


def qparams(graph: GraphIndex, q: onnx.NodeProto) -> tuple[bytes, bytes, int]:
    """(scale bytes, zero-point bytes, axis) of a QuantizeLinear: equal tuples quantize identically."""
    scale = graph.array(q.input[1]) if q.input[1] in graph.inits else None
    zp = graph.array(q.input[2]) if len(q.input) > 2 and q.input[2] in graph.inits else np.zeros(0, np.int8)
    if scale is None:
        return (f"dynamic:{q.input[1]}".encode(), zp.tobytes(), int(attr(q, "axis", 1)))
    return (scale.astype(np.float32).tobytes(), zp.tobytes(), int(attr(q, "axis", 1)) if scale.ndim else 0)
