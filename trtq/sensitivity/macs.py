"""Multiply-accumulates per weighted layer, from the graph and the real input shape of one sample.

MACs stand in for a layer's cost until a GPU measures it: keeping a large convolution in FP16 costs more
than keeping a small one. Shapes come from running the FP32 model on one sample (ONNX Runtime), so they are
right whatever shape inference could or could not work out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper

__all__ = ["layer_macs", "WEIGHTED_OPS"]

#: Ops whose compute is counted.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def layer_macs(model: onnx.ModelProto, sample: Mapping[str, np.ndarray]) -> dict[str, int]:
    """MACs of every Conv/ConvTranspose/Gemm/MatMul node for one sample (batch 1).

    Args:
        model: a normalised FP32 model (`trtq.placement.normalize`), nodes named.
        sample: a feed dict; only its first sample is used.

    Returns:
        node name -> MACs (0 where a shape could not be found).
    """
    from trtq.runners.onnxrt import expose_tensors
    from trtq.sensitivity.evaluate import make_session

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    nodes = [n for n in g.node if n.op_type in WEIGHTED_OPS]
    wanted: set[str] = set()
    for n in nodes:
        wanted.add(n.output[0])
        wanted.update(i for i in n.input[:2] if i and i not in inits)
    feed = {k: np.asarray(v)[:1] for k, v in sample.items()}
    session = make_session(expose_tensors(model, sorted(wanted)), shared_arena=False)
    names = [o.name for o in session.get_outputs()]
    shapes = {k: tuple(v.shape) for k, v in zip(names, session.run(names, feed))}
    shapes.update({k: tuple(v.shape) for k, v in feed.items()})

    def shape(name: str) -> tuple[int, ...] | None:
        if name in inits:
            return tuple(int(d) for d in inits[name].dims)
        return shapes.get(name)

    out: dict[str, int] = {}
    for n in nodes:
        y, a = shape(n.output[0]), shape(n.input[0])
        b = shape(n.input[1]) if len(n.input) > 1 else None
        macs = 0
        if y is not None and b is not None:
            if n.op_type == "Conv":
                macs = int(np.prod(y)) * int(np.prod(b[1:]))
            elif n.op_type == "ConvTranspose" and a is not None:
                macs = int(np.prod(a)) * int(np.prod(b[1:]))
            elif n.op_type == "Gemm" and a is not None and len(a) == 2:
                k = a[0] if _attr(n, "transA", 0) else a[1]
                macs = int(np.prod(y)) * int(k)
            elif n.op_type == "MatMul" and a is not None and len(a) >= 1:
                macs = int(np.prod(y)) * int(a[-1])
        out[n.name] = macs
    return out
