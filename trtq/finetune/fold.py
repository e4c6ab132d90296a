"""Fold BatchNorm into the convolution before it, exactly, also when the weight is a per-channel Q/DQ pair.

The FP32 export folds BatchNorm into the convolutions; a fake-quant export cannot (the convolution reads
`DequantizeLinear(QuantizeLinear(W))`, not a constant), so it keeps `Conv -> BatchNormalization`.
`fold_batchnorm` folds it afterwards: with c = gamma / sqrt(var + eps) per output channel,

    W' = c * W,   s' = |c| * s   (weight scale, per channel),   b' = c * (b - mean) + beta

and round(c W / (|c| s)) = sign(c) round(W / s), so DQ(Q(W'; s')) = c * DQ(Q(W; s)): the folded graph
computes what the trained network computed, and its weight scales are max |W'| / 127, the scales PTQ
puts on the FP32 export's folded weights.
"""

from __future__ import annotations

import numpy as np
import onnx

from trtq.finetune.graph import GraphIndex, attr, copy_model, prune_initializers, replace_uses, weight_qdq
from trtq.formats import MIN_SCALE

__all__ = ["fold_batchnorm"]


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold each inference BatchNormalization into the Conv/ConvTranspose that feeds it (only it).

    Works on plain FP32 weights and on per-channel `Q -> DQ` weights (the scale is rescaled by |c|, see the
    module doc). BatchNorms that follow anything else, or a weight quantized per tensor, are left in place.

    Args:
        model: the graph (not modified).

    Returns:
        (a new model, number of BatchNorms folded). The folded convolution takes over the BatchNorm's
        consumers, so tensor names downstream are those of the FP32 export.
    """
    out = copy_model(model)
    folded = 0
    while True:
        graph = GraphIndex(out)
        for bn in out.graph.node:
            if bn.op_type == "BatchNormalization" and _fold_one(graph, bn):
                folded += 1
                break
        else:
            break
    prune_initializers(out)
    return out, folded


def _foldable_conv(graph: GraphIndex, bn: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Conv/ConvTranspose `bn` can be folded into (its only reader, constant statistics), or None."""
    conv = graph.producer.get(bn.input[0])
    if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or len(bn.output) != 1:
        return None
    if len(graph.consumers.get(bn.input[0], [])) != 1 or bn.input[0] in graph.outputs:
        return None
    if any(name not in graph.inits for name in bn.input[1:5]):
        return None
    if conv.op_type == "ConvTranspose" and int(attr(conv, "group", 1)) != 1:
        return None
    w_name = conv.input[1]
    if weight_qdq(graph, w_name) is None and w_name not in graph.inits:
        return None
    return conv


def _fold_one(graph: GraphIndex, bn: onnx.NodeProto) -> bool:
    conv = _foldable_conv(graph, bn)
    if conv is None:
        return False
    axis = 0 if conv.op_type == "Conv" else 1
    gamma, beta, mean, var = (graph.array(n).astype(np.float64) for n in bn.input[1:5])
    c = gamma / np.sqrt(var + float(attr(bn, "epsilon", 1e-5)))
    if not _scale_weight(graph, conv, c, axis):
        return False
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
        replace_uses(graph.model, bn_out, conv_out)
    graph.model.graph.node.remove(bn)
    return True


def _scale_weight(graph: GraphIndex, conv: onnx.NodeProto, c: np.ndarray, axis: int) -> bool:
    """W' = c W on the output-channel axis, and s' = |c| s for a per-channel Q/DQ weight; False if it cannot."""
    qdq = weight_qdq(graph, conv.input[1])
    src = qdq[0].input[0] if qdq else conv.input[1]
    w = graph.array(src).astype(np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    if qdq:
        q, dq = qdq
        scale = graph.array(q.input[1]).astype(np.float64)
        if scale.ndim != 1 or int(attr(q, "axis", 1)) % w.ndim != axis or len(scale) != len(c):
            return False
    new_w = graph.add_init(f"{src}_bnfolded", (w * c.reshape(shape)).astype(np.float32))
    if qdq:
        new_s = graph.add_init(
            f"{q.input[1]}_bnfolded", np.maximum(scale * np.abs(c), MIN_SCALE).astype(np.float32)
        )
        q.input[0], q.input[1] = new_w, new_s
        dq.input[1] = new_s
    else:
        conv.input[1] = new_w
    return True
