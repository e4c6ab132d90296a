"""A read-only view of an ONNX graph for placement rules, and the normalisation every pass starts from.

`normalize` makes graphs from different exporters look alike before any rule runs: `Constant` nodes become
initializers, `Identity` nodes in front of initializers (the legacy torch exporter puts them before some conv
weights and biases) are removed, and unnamed nodes get deterministic names. Placement and Q/DQ insertion
both call it, so the names a plan refers to are the names insertion finds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["normalize", "GraphIndex", "WEIGHTED_OPS"]

#: Ops whose inputs TensorRT fuses into one INT8 kernel with a weight: the anchors of Q/DQ placement.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with constants as initializers, constant Identities removed, nodes named.

    Args:
        model: the FP32 model as exported (not modified).

    Returns:
        A new model computing the same function.
    """
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
    """

    def __init__(self, model: onnx.ModelProto) -> None:
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
        self._shapes = _infer_shapes(model)
        self._arrays: dict[str, np.ndarray] = {}

    def is_const(self, name: str) -> bool:
        """Whether `name` is an initializer (after normalisation, constants are initializers)."""
        return name in self.initializers

    def array(self, name: str) -> np.ndarray:
        """The value of an initializer as a numpy array (cached)."""
        if name not in self._arrays:
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

    def topo_weighted(self, op_types: Iterable[str] = WEIGHTED_OPS) -> list[onnx.NodeProto]:
        """Nodes of the given op types in graph (topological) order."""
        wanted = set(op_types)
        return [n for n in self.nodes if n.op_type in wanted]


def _infer_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shapes only refine rules (GEMV detection); a graph without them still plans
        return {}
    shapes: dict[str, tuple[int | None, ...]] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return shapes
