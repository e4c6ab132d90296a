"""Multiply-accumulates per compute layer, from the graph and the real input shape of one sample.

MACs stand in for a layer's cost until a GPU measures it: keeping a large convolution in FP16 costs more
than keeping a small one. Shapes come from running the FP32 model on one sample (ONNX Runtime), so they are
right whatever shape inference could or could not work out.

Besides the layers Q/DQ can make INT8 (`WEIGHTED_OPS`), the compute of Einsum and recurrent layers (LSTM, GRU,
RNN), which TensorRT's explicit quantization leaves in FP16/FP32, is counted too (`OTHER_COMPUTE_OPS`): so the
"INT8 share of MACs" of a model with an LSTM is its real share, not 100%.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper

__all__ = ["layer_macs", "WEIGHTED_OPS", "OTHER_COMPUTE_OPS"]

#: Ops whose compute is counted and that Q/DQ can make INT8.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: Ops whose compute is counted but that stay out of INT8 (no Q/DQ fusion in TensorRT).
OTHER_COMPUTE_OPS = ("Einsum", "LSTM", "GRU", "RNN")
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def layer_macs(model: onnx.ModelProto, sample: Mapping[str, np.ndarray]) -> dict[str, int]:
    """MACs of every Conv/ConvTranspose/Gemm/MatMul, Einsum and LSTM/GRU/RNN node for one sample (batch 1).

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
    nodes = [n for n in g.node if n.op_type in WEIGHTED_OPS + OTHER_COMPUTE_OPS]
    wanted: set[str] = set()
    for n in nodes:
        wanted.add(n.output[0])
        reads = n.input if n.op_type == "Einsum" else n.input[:3]
        wanted.update(i for i in reads if i and i not in inits)
    feed = {k: np.asarray(v)[:1] for k, v in sample.items()}
    session = make_session(expose_tensors(model, sorted(wanted)))
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
            elif n.op_type in _GATES and a is not None and len(a) == 3:
                macs = _recurrent_macs(n, a, b)
        if n.op_type == "Einsum" and y is not None:
            macs = _einsum_macs(n, y, [shape(i) for i in n.input])
        out[n.name] = macs
    return out


def _recurrent_macs(node: onnx.NodeProto, x: tuple[int, ...], w: tuple[int, ...]) -> int:
    """LSTM/GRU/RNN: steps x directions x gates x hidden x (input + hidden) multiply-adds."""
    seq = x[1] if _attr(node, "layout", 0) else x[0]
    directions, gates_hidden, inputs = (int(d) for d in w)
    hidden = gates_hidden // _GATES[node.op_type]
    return int(seq) * directions * gates_hidden * (inputs + hidden)


def _einsum_macs(node: onnx.NodeProto, y: tuple[int, ...], inputs: list[tuple[int, ...] | None]) -> int:
    """Einsum: every output element times the sizes of the indices summed over."""
    raw = _attr(node, "equation", b"")
    equation = (raw.decode() if isinstance(raw, bytes) else str(raw)).replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    sizes: dict[str, int] = {}
    for term, dims in zip(lhs.split(","), inputs):
        if dims is None:
            return 0
        letters = term.replace("...", "")
        offset = len(dims) - len(letters) if "..." in term else 0
        start = term.index("...") if "..." in term else len(letters)
        for i, letter in enumerate(letters):
            sizes[letter] = int(dims[i if i < start else i + offset])
    summed = [sizes[c] for c in sizes if c not in rhs]
    return int(np.prod(y)) * int(np.prod(summed)) if summed else int(np.prod(y))
