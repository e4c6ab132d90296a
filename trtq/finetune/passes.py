"""ONNX passes that turn ModelOpt's fake-quant export into the Q/DQ graph PTQ would produce.

Run after `trtq.finetune.fold.fold_batchnorm`, in this order (`trtq.finetune.export.export_qat_onnx`):

1. `drop_noop_casts`: ModelOpt's export leaves float -> float Casts;
2. `collapse_requantization`: an output quantizer followed by the next layer's input quantizer with the same
   scale exports as `Q -> DQ -> Q -> DQ`; the second pair is the identity on the int8 grid;
3. `merge_duplicate_qdq`: ModelOpt quantizes each module's input separately, so a tensor read by two
   quantized layers gets two identical pairs; PTQ (and TensorRT) use one;
4. `align_to_plan`: readers the plan quantizes that no module quantizer covers (residual Add inputs,
   pooling) are routed to the tensor's pair, and tensors without a pair get one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import helper

from trtq.finetune.graph import (
    GraphIndex,
    attr,
    copy_model,
    prune_initializers,
    qdq_pairs,
    qparams,
    replace_uses,
)
from trtq.formats import MIN_SCALE
from trtq.placement import QDQPlan

__all__ = ["drop_noop_casts", "merge_duplicate_qdq", "collapse_requantization", "align_to_plan"]


def drop_noop_casts(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Remove Cast nodes whose target type is their input's type (ModelOpt's export leaves float->float casts).

    Returns:
        (a new model, number of Casts removed); nothing is removed when shape inference fails.
    """
    out = copy_model(model)
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
        if types.get(node.input[0]) and types.get(node.input[0]) == int(attr(node, "to", 0)):
            replace_uses(out, node.output[0], node.input[0])
            out.graph.node.remove(node)
            removed += 1
    return out, removed


def merge_duplicate_qdq(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """One Q/DQ pair per tensor: pairs on the same tensor with the same scale, zero point and axis become one.

    Returns:
        (a new model, number of pairs removed).
    """
    out = copy_model(model)
    graph = GraphIndex(out)
    first: dict[tuple[str, bytes, bytes, int], str] = {}
    merged = 0
    for q, dq in qdq_pairs(graph):
        key = (q.input[0], *qparams(graph, q))
        if key not in first:
            first[key] = dq.output[0]
            continue
        if dq.output[0] in graph.outputs:
            continue
        replace_uses(out, dq.output[0], first[key])
        out.graph.node.remove(q)
        out.graph.node.remove(dq)
        merged += 1
    prune_initializers(out)
    return out, merged


def collapse_requantization(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Drop a Q/DQ pair that re-quantizes a dequantized value with the same scale, zero point and axis.

    Returns:
        (a new model, number of pairs removed).
    """
    out = copy_model(model)
    graph = GraphIndex(out)
    removed = 0
    for q2, dq2 in qdq_pairs(graph):
        dq1 = graph.producer.get(q2.input[0])
        if dq1 is None or dq1.op_type != "DequantizeLinear" or dq2.output[0] in graph.outputs:
            continue
        q1 = graph.producer.get(dq1.input[0])
        if q1 is None or q1.op_type != "QuantizeLinear" or qparams(graph, q1) != qparams(graph, q2):
            continue
        replace_uses(out, dq2.output[0], dq1.output[0])
        out.graph.node.remove(q2)
        out.graph.node.remove(dq2)
        removed += 1
    prune_initializers(out)
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
    out = copy_model(model)
    graph = GraphIndex(out)
    existing: dict[str, str] = {}
    for q, dq in qdq_pairs(graph):
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


def _add_pair(graph: GraphIndex, tensor: str, scale: float) -> str:
    """Insert `Q -> DQ` on `tensor` right after its producer; returns the dequantized tensor's name."""
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
