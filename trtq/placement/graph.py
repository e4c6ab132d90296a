"""A read-only view of an ONNX graph for placement rules, and the normalisation every pass starts from.

`normalize` makes graphs from different exporters look alike before any rule runs: `Constant` nodes become
initializers, `Identity` nodes in front of initializers (the legacy torch exporter puts them before some conv
weights and biases) are removed, and unnamed nodes get deterministic names. Placement and Q/DQ insertion
both call it, so the names a plan refers to are the names insertion finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

__all__ = [
    "normalize",
    "GraphIndex",
    "WEIGHTED_OPS",
    "COPY_OPS",
    "EPILOGUE_UNARY",
    "activation_mul_source",
    "fused_backbone",
    "ancestor_distances",
]

#: Ops whose inputs TensorRT fuses into one INT8 kernel with a weight: the anchors of Q/DQ placement.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")

if TYPE_CHECKING:  # imported where used: `import trtq.placement` stays light (fast --help)
    import onnx


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with constants as initializers, constant Identities removed, nodes named.

    Args:
        model: the FP32 model as exported (not modified).

    Returns:
        A new model computing the same function.
    """
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    graph_outputs = {o.name for o in g.output}
    inits = {t.name for t in g.initializer}

    kept: list[onnx.NodeProto] = []
    for node in g.node:
        if (
            node.op_type == "Constant"
            and node.output[0] not in graph_outputs
            and len(node.attribute) == 1
            and node.attribute[0].name == "value"
        ):
            import onnx

            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            g.initializer.append(tensor)
            inits.add(tensor.name)
            continue
        kept.append(node)

    # Identity(initializer) -> the initializer itself, following chains.
    alias: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    for node in kept:
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            src = alias.get(node.input[0], node.input[0])
            if src in inits:
                alias[node.output[0]] = src
                continue
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        nodes.append(node)

    used: set[str] = set()
    counters: dict[str, int] = {}
    for node in nodes:  # keep the first of duplicate names, rename later ones as if unnamed
        if node.name and node.name not in used:
            used.add(node.name)
        else:
            node.name = ""
    for node in nodes:
        if node.name:
            continue
        while True:
            counters[node.op_type] = counters.get(node.op_type, -1) + 1
            candidate = f"{node.op_type}_{counters[node.op_type]}"
            if candidate not in used:
                break
        node.name = candidate
        used.add(candidate)

    del g.node[:]
    g.node.extend(nodes)
    # Initializers nothing reads any more (the Identity sources are still read through the alias).
    read = _names_read(g.node) | graph_outputs
    live = [t for t in g.initializer if t.name in read]
    del g.initializer[:]
    g.initializer.extend(live)
    return out


def _names_read(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every tensor name the nodes read, including from inside subgraphs (If/Loop/Scan bodies)."""
    read: set[str] = set()
    for node in nodes:
        read.update(node.input)
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                read |= _names_read(sub.node)
    return read


class GraphIndex:
    """Producers, consumers, constants and inferred shapes of a normalised graph.

    Args:
        model: a model returned by `normalize`.
        batch_hint: value given to a symbolic first dim of each graph input before shape inference (the
            batch of the engine's smallest profile); other symbolic dims stay unknown.
    """

    def __init__(self, model: onnx.ModelProto, batch_hint: int = 1) -> None:
        self.model = model
        g = model.graph
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.node_by_name: dict[str, onnx.NodeProto] = {n.name: n for n in self.nodes}
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        self.graph_inputs: list[str] = [i.name for i in g.input if i.name not in self.initializers]
        self.graph_outputs: list[str] = [o.name for o in g.output]
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.output:
                if name:
                    self.producer[name] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self._shapes = _infer_shapes(model, batch_hint)
        self._arrays: dict[str, np.ndarray] = {}
        self._const_like: dict[str, bool] = {}

    def is_const(self, name: str) -> bool:
        """Whether `name` is an initializer (after normalisation, constants are initializers)."""
        return name in self.initializers

    def is_const_like(self, name: str) -> bool:
        """Whether `name` is a constant, a rank-0 scalar, or computed only from constants and shapes.

        Such inputs (e.g. the `1/sqrt(sqrt(d))` attention scale an exporter computes from `Shape`) are
        parameters of an element-wise op, not a second activation to quantize.
        """
        if name in self._const_like:
            return self._const_like[name]
        self._const_like[name] = False  # guards cycles
        shape = self.shape(name)
        result = self.is_const(name) or (shape is not None and len(shape) == 0)
        if not result:
            p = self.producer_of(name)
            result = p is not None and (
                p.op_type in ("Shape", "Size", "Constant", "ConstantOfShape")
                or all(self.is_const_like(i) for i in p.input if i)
            )
        self._const_like[name] = result
        return result

    def array(self, name: str) -> np.ndarray:
        """The value of an initializer as a numpy array (cached)."""
        if name not in self._arrays:
            from onnx import numpy_helper

            self._arrays[name] = numpy_helper.to_array(self.initializers[name])
        return self._arrays[name]

    def const_shape(self, name: str) -> tuple[int, ...]:
        """Shape of an initializer without decoding its data."""
        return tuple(int(d) for d in self.initializers[name].dims)

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        """Inferred shape of a tensor (None where a dim is symbolic, None overall if unknown)."""
        if name in self.initializers:
            return self.const_shape(name)
        return self._shapes.get(name)

    def consumers_of(self, name: str) -> list[onnx.NodeProto]:
        """Nodes that read `name`, in graph order."""
        return self.consumers.get(name, [])

    def producer_of(self, name: str) -> onnx.NodeProto | None:
        """The node that writes `name` (None for graph inputs and initializers)."""
        return self.producer.get(name)

    def activation_inputs(self, node: onnx.NodeProto) -> list[str]:
        """Non-empty, non-constant inputs of `node`."""
        return [name for name in node.input if name and not self.is_const(name)]

    def tensor_inputs(self, node: onnx.NodeProto) -> list[str]:
        """Inputs of `node` that are real activations (not constant-like, see `is_const_like`)."""
        return [name for name in node.input if name and not self.is_const_like(name)]

    def topo_weighted(self, op_types: Iterable[str] = WEIGHTED_OPS) -> list[onnx.NodeProto]:
        """Nodes of the given op types in graph (topological) order."""
        wanted = set(op_types)
        return [n for n in self.nodes if n.op_type in wanted]


def _infer_shapes(model: onnx.ModelProto, batch_hint: int) -> dict[str, tuple[int | None, ...]]:
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for vi in fixed.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch_hint
    try:
        from trtq.onnx_io import infer_shapes

        inferred = infer_shapes(fixed, data_prop=True)
    except Exception:  # shapes only refine rules (GEMV detection); a graph without them still plans
        return {}
    shapes: dict[str, tuple[int | None, ...]] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    weighted = [n.output[0] for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.output]
    if any(None in (shapes.get(t) or (None,)) for t in weighted):
        _fill_symbolic(model, batch_hint, shapes)
    return shapes


def _fill_symbolic(
    model: onnx.ModelProto, batch_hint: int, shapes: dict[str, tuple[int | None, ...]]
) -> None:
    """Fill dims ONNX's inference lost (transformers lose the batch at the embedding's Where/Expand) from ONNX
    Runtime's symbolic shape inference, which follows the named dims: the batch symbol becomes `batch_hint`."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # shapes only refine rules; a graph the tool cannot follow keeps ONNX's shapes
        return
    batch = {
        vi.type.tensor_type.shape.dim[0].dim_param
        for vi in model.graph.input
        if len(vi.type.tensor_type.shape.dim) and vi.type.tensor_type.shape.dim[0].dim_param
    }
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        sym = tuple(
            d.dim_value if d.HasField("dim_value") else batch_hint if d.dim_param in batch else None
            for d in dims
        )
        old = shapes.get(vi.name)
        if old is None or len(old) != len(sym):
            shapes[vi.name] = sym
        else:
            shapes[vi.name] = tuple(a if a is not None else b for a, b in zip(old, sym))


#: Ops that only move or reshape data: Q/DQ commute with them, TensorRT propagates Q/DQ across them.
COPY_OPS = frozenset(
    {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Expand", "Slice", "Gather", "Tile",
     "Split", "DepthToSpace", "SpaceToDepth"}
)  # fmt: skip
#: Unary activations TensorRT fuses into a convolution/GEMM epilogue.
EPILOGUE_UNARY = frozenset(
    {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus",
     "Gelu", "Mish", "PRelu", "BatchNormalization"}
)  # fmt: skip


def _variable_inputs(index: GraphIndex, node: onnx.NodeProto) -> list[str]:
    return [i for i in node.input if i and not index.is_const(i)]


def _unary_elementwise(index: GraphIndex, node: onnx.NodeProto) -> bool:
    var = _variable_inputs(index, node)
    return len(var) == 1 and (node.op_type in EPILOGUE_UNARY or node.op_type in ("Add", "Mul", "Sub", "Div"))


def activation_mul_source(index: GraphIndex, node: onnx.NodeProto) -> str | None:
    """For `Mul(x, f(x))` with f a chain of unary element-wise ops (SiLU, HardSwish written out), return x.

    Such a Mul is an activation TensorRT fuses into the preceding layer, not a product of two tensors.
    """
    if node.op_type != "Mul":
        return None
    inputs = _variable_inputs(index, node)
    if len(inputs) != 2:
        return None
    a, b = inputs
    for x, y in ((a, b), (b, a)):
        p = index.producer_of(y)
        while p is not None and _unary_elementwise(index, p):
            src = _variable_inputs(index, p)[0]
            if src == x:
                return x
            p = index.producer_of(src)
    return None


def fused_backbone(
    index: GraphIndex,
    tensor: str,
    backbone_ops: Iterable[str],
    *,
    through_copy: bool = True,
    fused_adds: Mapping[str, str] | None = None,
) -> onnx.NodeProto | None:
    """The weighted node whose fused epilogue produces `tensor`, if any.

    Walks back from the producer through what TensorRT fuses after a convolution/GEMM: bias Add and scale
    Mul with a constant, BatchNormalization, unary activations, `x * sigmoid(x)`-style activations and
    (optionally) copy ops, and returns the first node of `backbone_ops` reached. `fused_adds` maps residual
    Add nodes already fused into a convolution to their fused input, so the walk continues through them.
    """
    ops = set(backbone_ops)
    p = index.producer_of(tensor)
    seen = 0
    while p is not None and seen < 64:
        seen += 1
        if p.op_type in ops:
            return p
        var = _variable_inputs(index, p)
        act_src = activation_mul_source(index, p)
        if fused_adds and p.name in fused_adds:
            nxt = fused_adds[p.name]
        elif _unary_elementwise(index, p):
            nxt = var[0]
        elif act_src is not None:
            nxt = act_src
        elif through_copy and p.op_type in COPY_OPS and var:
            nxt = var[0]
        else:
            return None
        p = index.producer_of(nxt)
    return None


def ancestor_distances(index: GraphIndex, tensor: str) -> dict[str, int]:
    """Node name -> fewest producer hops from `tensor` back to that node (its producer is at 0)."""
    dist: dict[str, int] = {}
    start = index.producer_of(tensor)
    if start is None:
        return dist
    frontier = [start]
    dist[start.name] = 0
    while frontier:
        nxt = []
        for node in frontier:
            for name in _variable_inputs(index, node):
                p = index.producer_of(name)
                if p is not None and p.name not in dist:
                    dist[p.name] = dist[node.name] + 1
                    nxt.append(p)
        frontier = nxt
    return dist
