"""Graph surgery that makes sensitivity analysis fast: what changed between two models, and suffix sub-models.

A variant of a model (one layer more or less quantized) computes the same tensors as its base model up to
the first node that differs. `changed_tensors` finds the tensors that can differ; `suffix_model` keeps the
nodes that must run to get the variant's outputs from base tensors cached at a cut (`live_tensors` says
which tensors carry everything across a position of the graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = [
    "Suffix",
    "changed_tensors",
    "live_tensors",
    "suffix_model",
    "set_input_types",
    "node_key",
    "same_initializer",
]


def node_key(node: onnx.NodeProto) -> bytes:
    """What a node computes from its inputs (op, domain, inputs, outputs, attributes), without its name."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = ""
    copy.doc_string = ""
    return copy.SerializeToString(deterministic=True)


def same_initializer(a: onnx.TensorProto, b: onnx.TensorProto) -> bool:
    """Whether two initializers hold the same value (type, shape and bytes)."""
    if a is b:
        return True
    if a.data_type != b.data_type or list(a.dims) != list(b.dims):
        return False
    if a.raw_data or b.raw_data:
        return a.raw_data == b.raw_data
    return numpy_helper.to_array(a).tobytes() == numpy_helper.to_array(b).tobytes()


@dataclass
class Suffix:
    """The part of a variant model that has to run, given tensors the base model provides.

    Attributes:
        model: the sub-model (None when the variant computes exactly what the base computes); its inputs
            are `cut` and its outputs are the variant's graph outputs in `computed`.
        cut: base-model tensors (or graph inputs) the sub-model reads, in a fixed order.
        computed: graph outputs the sub-model computes; the other outputs equal the base model's.
        nodes: how many nodes the sub-model has (of `total_nodes` in the variant).
        total_nodes: nodes in the whole variant.
        shared: initializers the sub-model reads that equal the base's and were left out of `model` (with
            `share=True`); add the base's before running it.
    """

    model: onnx.ModelProto | None
    cut: list[str]
    computed: list[str]
    nodes: int
    total_nodes: int
    shared: list[str] = field(default_factory=list)


def changed_tensors(base: onnx.ModelProto, variant: onnx.ModelProto) -> set[str]:
    """Tensors of `variant` whose values can differ from `base`'s tensor of the same name.

    A node is unchanged when the base has a node with the same outputs computing the same op with the same
    attributes from the same inputs, and each of those inputs is unchanged (initializers compared by
    value). Both models must have the same graph inputs.
    """
    bg, vg = base.graph, variant.graph
    base_nodes = {n.output[0]: node_key(n) for n in bg.node if n.output}
    base_inits = {t.name: t for t in bg.initializer}
    v_inits = {t.name: t for t in vg.initializer}
    base_tensors = {o for n in bg.node for o in n.output} | {i.name for i in bg.input}
    init_changed: dict[str, bool] = {}

    def changed_init(name: str) -> bool:
        if name not in init_changed:
            b = base_inits.get(name)
            init_changed[name] = b is None or not same_initializer(b, v_inits[name])
        return init_changed[name]

    changed: set[str] = set()
    for node in vg.node:
        same = bool(node.output) and base_nodes.get(node.output[0]) == node_key(node)
        if same:
            for i in node.input:
                if not i:
                    continue
                if i in v_inits:
                    if changed_init(i):
                        same = False
                        break
                elif i in changed or i not in base_tensors:
                    same = False
                    break
        if not same:
            changed.update(o for o in node.output if o)
    return changed


def live_tensors(model: onnx.ModelProto) -> list[frozenset[str]]:
    """For each position p (before node p, and p = len(nodes) at the end): the activations live across it.

    A tensor is live at p when it is a graph input or produced before p, and read at or after p (or is a
    graph output). Together they determine everything computed from p on. Constants (initializers and
    what nodes compute from initializers alone) are never live.
    """
    g = model.graph
    inits = {t.name for t in g.initializer}
    # Tensors computed from initializers alone (weight Q/DQ) are constants, not activations: a suffix
    # recomputes them, so they never need to be carried across a position.
    for node in g.node:
        if node.input and all(not i or i in inits for i in node.input):
            inits.update(o for o in node.output if o)
    last_use: dict[str, int] = {}
    n = len(g.node)
    for k, node in enumerate(g.node):
        for i in node.input:
            if i and i not in inits:
                last_use[i] = k
    for o in g.output:
        last_use[o.name] = n
    live = {i.name for i in g.input if i.name not in inits and last_use.get(i.name, -1) >= 0}
    out: list[frozenset[str]] = [frozenset(live)]
    for k, node in enumerate(g.node):
        for i in node.input:
            if i in live and last_use.get(i, -1) <= k:
                live.discard(i)
        live.update(o for o in node.output if o and last_use.get(o, -1) > k)
        out.append(frozenset(live))
    return out


def suffix_model(
    base: onnx.ModelProto,
    variant: onnx.ModelProto,
    available: set[str] | frozenset[str] | None = None,
    changed: set[str] | None = None,
    share: bool = False,
) -> Suffix:
    """The nodes of `variant` that must run to get its graph outputs, given some of the base's tensors.

    Args:
        base: the base model whose tensors are cached.
        variant: the model to evaluate.
        available: base tensors that will be provided (None: every unchanged tensor, the smallest suffix).
            Graph inputs are always available.
        changed: `changed_tensors(base, variant)` if already computed.
        share: leave out initializers equal to the base's (listed in `Suffix.shared`).
    """
    if changed is None:
        changed = changed_tensors(base, variant)
    vg = variant.graph
    v_inits = {t.name: t for t in vg.initializer}
    graph_inputs = {i.name for i in vg.input if i.name not in v_inits}
    base_tensors = {o for n in base.graph.node for o in n.output}
    producer = {o: n for n in vg.node for o in n.output if o}
    outputs = [o.name for o in vg.output]
    computed = [o for o in outputs if o in changed]
    if not computed:
        return Suffix(None, [], [], 0, len(vg.node))

    def provided(t: str) -> bool:
        if t in graph_inputs:
            return True
        return t not in changed and t in base_tensors and (available is None or t in available)

    needed: set[int] = set()
    cut: set[str] = set()
    stack = list(computed)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen or t in v_inits:
            continue
        seen.add(t)
        if provided(t) and t not in computed:
            cut.add(t)
            continue
        node = producer[t]
        if id(node) not in needed:
            needed.add(id(node))
            stack.extend(i for i in node.input if i)
    live = [n for n in vg.node if id(n) in needed]
    inits_used = sorted({i for n in live for i in n.input if i in v_inits})
    shared: list[str] = []
    if share:
        base_inits = {t.name: t for t in base.graph.initializer}
        shared = [i for i in inits_used if i in base_inits and same_initializer(base_inits[i], v_inits[i])]
        inits_used = [i for i in inits_used if i not in set(shared)]
    cut_list = sorted(cut)
    out_info = {o.name: o for o in vg.output}
    graph = helper.make_graph(
        live,
        f"{vg.name}_suffix",
        [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None) for name in cut_list],
        [out_info[name] for name in computed],
        initializer=[v_inits[i] for i in inits_used],
    )
    model = helper.make_model(graph, opset_imports=list(variant.opset_import), ir_version=variant.ir_version)
    return Suffix(model, cut_list, computed, len(live), len(vg.node), shared)


def set_input_types(
    model: onnx.ModelProto,
    info: dict[str, tuple[np.dtype, tuple[int, ...]]],
    batch_dim: str | int = "batch",
) -> onnx.ModelProto:
    """Give a suffix model's cut inputs their element types and shapes (known once the base has run).

    Args:
        model: a suffix model (inputs without types).
        info: tensor -> (dtype, shape of one sample).
        batch_dim: the batch dimension: a symbol (the full model's, so ONNX Runtime sees equal batch
            sizes as equal) or a number.

    ONNX Runtime needs the shapes: several of its graph optimisations (the Q/DQ weight and bias handling
    among them) only apply where shapes are known, and a suffix must be optimised like the full model.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        if vi.name not in info:
            continue
        dtype, shape = info[vi.name]
        tt = vi.type.tensor_type
        tt.elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        tt.ClearField("shape")
        dims = tt.shape.dim
        first = dims.add()
        if isinstance(batch_dim, str):
            first.dim_param = batch_dim
        else:
            first.dim_value = int(batch_dim)
        for d in shape:
            dims.add().dim_value = int(d)
    return out
