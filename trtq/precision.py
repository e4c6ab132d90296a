"""The strongly typed graph (`model.trt.onnx`): INT8 where Q/DQ say so, FP16 everywhere else, FP32 at the edges.

TensorRT 11 removed the builder precision flags, and TensorRT 10.12+ strongly typed builds forbid them: the
graph itself must say which tensors are FP16. `to_strongly_typed` retypes a Q/DQ model (or a plain FP32 one):

- every float32 tensor becomes float16, including Q/DQ scales (DequantizeLinear then outputs FP16, so the
  INT8 layer it feeds computes and writes FP16; scales are clipped to FP16's normal range) and weights;
- graph inputs and outputs keep float32: a Cast follows each input and precedes each output;
- nodes chosen by name/regex or op type stay float32, with Casts around them, as do nodes TensorRT would
  overflow in FP16 (`ranges` above `data_max`, weights beyond the FP16 range), nodes that carry a constant
  beyond FP16's range without any data to show it (an attention mask built from `finfo(float32).min` or `-1e9`,
  from the constant to the Softmax that ends it: FP16 would turn the mask into -inf), scalar shape arithmetic
  (exporters compute sizes in float: FP16 would round them) and type-setting ops (Cast, ConstantOfShape);
- the opset is raised to 19 when lower (QuantizeLinear/DequantizeLinear take FP16 scales from opset 19).

The result passes `onnx.checker.check_model(full_check=True)` and strict shape inference, and ONNX Runtime
(>= 1.30: older versions round FP16 QuantizeLinear wrongly) runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtq.errors import TrtqError

__all__ = [
    "to_strongly_typed",
    "fp32_nodes",
    "measure_ranges",
    "float_tensors",
    "FP16_MAX",
    "DEFAULT_DATA_MAX",
    "TypingDecision",
]

FP16_MAX = 65504.0
#: Nodes whose inputs/outputs reach this magnitude on calibration data stay FP32 (a quarter of FP16's max:
#: headroom for inputs larger than any in the calibration set).
DEFAULT_DATA_MAX = FP16_MAX / 4
#: Ops whose output type comes from an attribute, not from their inputs: left as they are.
_TYPE_SETTING_OPS = frozenset(
    {"Cast", "CastLike", "ConstantOfShape", "Constant", "EyeLike", "RandomNormal", "RandomUniform",
     "RandomNormalLike", "RandomUniformLike", "Multinomial"}
)  # fmt: skip
#: Inputs that the ONNX spec types as float32 whatever the data type (op -> input positions).
_FLOAT32_ONLY_INPUTS = {"Resize": (2,), "Upsample": (1,)}
_MIN_OPSET = 19
_FP16_MIN_NORMAL = 2.0**-14


@dataclass
class TypingDecision:
    """Why a node stays FP32."""

    node: str
    op_type: str
    reason: str


@dataclass
class _Graph:
    model: onnx.ModelProto
    types: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    inits: dict[str, onnx.TensorProto] = field(default_factory=dict)

    @classmethod
    def of(cls, model: onnx.ModelProto) -> _Graph:
        g = cls(model)
        from trtq.onnx_io import infer_shapes

        inferred = infer_shapes(model)
        gr = inferred.graph
        for vi in list(gr.input) + list(gr.value_info) + list(gr.output):
            g.types[vi.name] = vi.type.tensor_type.elem_type
            if vi.type.tensor_type.HasField("shape"):
                g.ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
        g.inits = {t.name: t for t in model.graph.initializer}
        for t in model.graph.initializer:
            g.types[t.name] = t.data_type
        g.producer = {o: n for n in model.graph.node for o in n.output if o}
        return g

    def is_float(self, name: str) -> bool:
        return self.types.get(name) == TensorProto.FLOAT


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """The float activations of a model in graph order: its float inputs and every float tensor a node other than
    Constant writes (what an implicit-INT8 TensorRT calibration cache needs a scale for)."""
    g = _Graph.of(model)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits and g.is_float(i.name)]
    names += [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o and g.is_float(o)]
    return list(dict.fromkeys(names))


def measure_ranges(model: onnx.ModelProto, feeds: Iterable[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Largest |x| of every float tensor over the given inputs (to find what would overflow FP16).

    Args:
        model: an FP32 (or FP32-typed Q/DQ) model.
        feeds: input batches, e.g. a few calibration batches.

    Returns:
        Tensor name -> max |x| seen, for graph inputs and every float tensor a node writes.
    """
    from trtq.runners.onnxrt import OnnxRuntimeRunner, PartRunner

    g = _Graph.of(model)
    names = [o for n in model.graph.node for o in n.output if o and g.is_float(o)]
    out: dict[str, float] = {}
    with OnnxRuntimeRunner(model, extra_outputs=names) as runner:
        parts = PartRunner(runner)  # a few samples per call: every activation of a whole batch is large
        for feed in feeds:
            for part, values in parts.parts(dict(feed)):
                values = dict(values)
                values.update({k: np.asarray(v) for k, v in part.items()})
                for name, value in values.items():
                    if np.issubdtype(value.dtype, np.floating) and value.size:
                        peak = float(np.max(np.abs(value)))
                        out[name] = max(out.get(name, 0.0), peak)
                del values
    return out


def fp32_nodes(
    model: onnx.ModelProto,
    *,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_op_types: Sequence[str] = (),
    ranges: Mapping[str, float] | None = None,
    data_max: float = DEFAULT_DATA_MAX,
) -> list[TypingDecision]:
    """The nodes `to_strongly_typed` keeps in FP32, each with its reason (same arguments)."""
    return _decide(_Graph.of(model), keep_fp32_nodes, keep_fp32_op_types, ranges or {}, data_max)


def _decide(
    g: _Graph,
    keep_nodes: Sequence[str],
    keep_ops: Sequence[str],
    ranges: Mapping[str, float],
    data_max: float,
) -> list[TypingDecision]:
    decisions: list[TypingDecision] = []
    shape_like: dict[str, bool] = {}
    captured = _outer_names_read_by_subgraphs(g.model.graph)

    def is_shape_like(name: str) -> bool:
        """Computed only from constants and shapes (sizes an exporter works out in float)."""
        if name in shape_like:
            return shape_like[name]
        shape_like[name] = False
        if name in g.inits:
            result = True
        else:
            p = g.producer.get(name)
            result = p is not None and (
                p.op_type in ("Shape", "Size")
                or (bool([i for i in p.input if i]) and all(is_shape_like(i) for i in p.input if i))
            )
        shape_like[name] = result
        return result

    huge = _huge_tensors(g)
    for node in g.model.graph.node:
        floats = [t for t in list(node.input) + list(node.output) if t and g.is_float(t)]
        float_outs = [o for o in node.output if o and g.is_float(o)]
        if not float_outs or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue  # no float result (Shape, ArgMax, float->int Cast): reads FP16 as well as FP32
        reason = None
        for pattern in keep_nodes:
            if node.name == pattern or re.fullmatch(pattern, node.name):
                reason = f"kept FP32 by name pattern {pattern!r}"
                break
        if reason is None and node.op_type in keep_ops:
            reason = f"op type {node.op_type} kept FP32"
        if reason is None and node.op_type in _TYPE_SETTING_OPS:
            reason = "sets its output type itself"
        if reason is None and any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
        ):
            reason = "control flow: subgraphs keep their types"
        if reason is None and any(o in captured for o in node.output):
            reason = "its output is read inside a subgraph"
        if reason is None:
            data_ins = [i for i in node.input if i and i not in g.inits]
            small = all(g.ranks.get(o, 99) <= 1 for o in float_outs)
            if small and data_ins and all(is_shape_like(i) for i in data_ins):
                reason = "shape arithmetic (FP16 would round sizes)"
        if reason is None:
            carried = next((t for t in floats if t in huge), None)
            if carried is not None:
                reason = (
                    f"carries {huge[carried]:.3g} (an attention mask's huge negative), which FP16 would turn "
                    "into inf"
                )
        if reason is None:
            peak = max((ranges.get(t, 0.0) for t in floats), default=0.0)
            if peak > data_max:
                reason = f"|x| reaches {peak:.4g} > {data_max:.4g} (FP16 overflow risk)"
        if reason is None:
            for i in node.input:
                if i in g.inits and g.is_float(i):
                    w = numpy_helper.to_array(g.inits[i])
                    if w.size and float(np.max(np.abs(w))) > FP16_MAX:
                        reason = f"initializer {i} exceeds the FP16 range"
                        break
        if reason:
            decisions.append(TypingDecision(node.name, node.op_type, reason))
    return decisions


#: Ops whose float output stays bounded whatever their input: a mask's huge values end there.
_BOUNDING_OPS = frozenset(
    {"Softmax", "Sigmoid", "Tanh", "Erf", "Sin", "Cos", "HardSigmoid", "QuantizeLinear"}
)


def _finite_beyond_fp16(values: np.ndarray) -> float | None:
    """The finite value of largest magnitude beyond FP16's range, or None (inf itself stays inf in FP16)."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return None
    peak = finite.flat[int(np.argmax(np.abs(finite)))]
    return float(peak) if abs(float(peak)) > FP16_MAX else None


def _huge_tensors(g: _Graph) -> dict[str, float]:
    """Float tensors that may hold finite values beyond FP16's range, found without data: constants such as
    an attention mask's `finfo(float32).min` or `-1e9`, and every tensor computed from them (the additive mask,
    the masked scores) up to an op whose output is bounded (Softmax). Tensor -> the constant it carries."""
    huge: dict[str, float] = {}
    for name, init in g.inits.items():
        if g.is_float(name):
            peak = _finite_beyond_fp16(numpy_helper.to_array(init))
            if peak is not None:
                huge[name] = peak
    for node in g.model.graph.node:
        seeds = [huge[i] for i in node.input if i in huge]
        if node.op_type == "Clip":  # a huge bound (clamp(min=...) with finfo.max) does not make values huge
            seeds = [huge[node.input[0]]] if node.input[0] in huge else []
        elif node.op_type in ("Max", "Min") and len(seeds) < len([i for i in node.input if i]):
            seeds = []  # max(x, -huge), min(x, +huge): x's values, unless every input is huge
        if node.op_type in ("Constant", "ConstantOfShape"):
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    peak = _finite_beyond_fp16(numpy_helper.to_array(a.t))
                    seeds += [] if peak is None else [peak]
        if not seeds or node.op_type in _BOUNDING_OPS:
            continue
        for out in node.output:
            if out and g.is_float(out):
                huge[out] = seeds[0]
    return huge


def _outer_names_read_by_subgraphs(graph: onnx.GraphProto) -> set[str]:
    names: set[str] = set()
    for node in graph.node:
        for a in node.attribute:
            for sub in list(a.graphs) + ([a.g] if a.HasField("g") else []):
                inner = {o for n in sub.node for o in n.output} | {i.name for i in sub.input}
                inner |= {t.name for t in sub.initializer}
                for n in sub.node:
                    names.update(i for i in n.input if i and i not in inner)
                names |= _outer_names_read_by_subgraphs(sub)
    return names


def to_strongly_typed(
    model: onnx.ModelProto,
    *,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_op_types: Sequence[str] = (),
    ranges: Mapping[str, float] | None = None,
    data_max: float = DEFAULT_DATA_MAX,
) -> onnx.ModelProto:
    """Return the strongly typed FP16 (+ INT8 Q/DQ) version of `model`, graph I/O kept FP32.

    Args:
        model: an FP32-typed model, usually `model.int8.onnx` from `trtq.qdq.insert_qdq`.
        keep_fp32_nodes: node names or full-match regexes kept in FP32.
        keep_fp32_op_types: op types kept in FP32.
        ranges: max |x| per tensor on calibration data (`measure_ranges`); nodes touching a tensor above
            `data_max` stay FP32.
        data_max: the magnitude above which a node is kept FP32.

    Returns:
        A new model at opset >= 19.

    Raises:
        TrtqError: the model has float64 tensors or is not a valid ONNX model after retyping (a bug).
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < _MIN_OPSET:
        m = onnx.version_converter.convert_version(m, _MIN_OPSET)
    del m.graph.value_info[:]
    g = _Graph.of(m)
    keep = {d.node for d in _decide(g, keep_fp32_nodes, keep_fp32_op_types, ranges or {}, data_max)}
    graph = m.graph
    graph_inputs = {i.name for i in graph.input}
    graph_outputs = {o.name for o in graph.output}
    taken = (
        {o for n in graph.node for o in n.output} | set(g.inits) | graph_inputs | {n.name for n in graph.node}
    )

    def fresh(name: str) -> str:
        out, k = name, 1
        while out in taken:
            out, k = f"{name}_{k}", k + 1
        taken.add(out)
        return out

    def low(node: onnx.NodeProto) -> bool:
        return node.name not in keep and node.op_type not in _TYPE_SETTING_OPS

    # 1. Tensors produced in FP16: float outputs of FP16 nodes. Graph outputs get an FP16 twin + Cast back.
    fp16_tensors: set[str] = set()
    renamed_outputs: dict[str, str] = {}
    for node in graph.node:
        if not low(node):
            continue
        for k, out in enumerate(node.output):
            if out and g.is_float(out):
                if out in graph_outputs:
                    twin = fresh(f"{out}_fp16")
                    renamed_outputs[out] = twin
                    node.output[k] = twin
                    out = twin
                fp16_tensors.add(out)

    # 2. Rewire inputs: FP16 nodes read FP16 (cast activations, convert initializers), FP32 nodes read FP32.
    init_readers: dict[str, set[bool]] = {}
    for node in graph.node:
        for pos, name in enumerate(node.input):
            if name in g.inits and g.is_float(name):
                as_low = low(node) and pos not in _FLOAT32_ONLY_INPUTS.get(node.op_type, ())
                init_readers.setdefault(name, set()).add(as_low)
    fp16_inits: dict[str, str] = {}
    new_inits: list[TensorProto] = []
    scales = {n.input[1] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    for name, kinds in init_readers.items():
        if True not in kinds:
            continue
        arr = numpy_helper.to_array(g.inits[name])
        if name in scales:  # keep Q/DQ scales positive and normal in FP16
            arr = np.clip(arr, _FP16_MIN_NORMAL, FP16_MAX)
        arr = arr.astype(np.float16)
        if kinds == {True}:
            g.inits[name].CopyFrom(numpy_helper.from_array(arr, name))
            fp16_inits[name] = name
        else:
            twin = fresh(f"{name}_fp16")
            new_inits.append(numpy_helper.from_array(arr, twin))
            fp16_inits[name] = twin

    casts: dict[tuple[str, int], str] = {}
    cast_nodes_after: dict[str, list[onnx.NodeProto]] = {}
    front: list[onnx.NodeProto] = []

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            suffix = "fp16" if to == TensorProto.FLOAT16 else "fp32"
            out = fresh(f"{name}_{suffix}")
            node = helper.make_node("Cast", [name], [out], fresh(f"{name}_cast_{suffix}"), to=to)
            producer = g.producer.get(name)
            if producer is None:
                front.append(node)
            else:
                cast_nodes_after.setdefault(producer.name, []).append(node)
            casts[key] = out
        return casts[key]

    for node in graph.node:
        for pos, name in enumerate(node.input):
            if not name:
                continue
            name = renamed_outputs.get(name, name)
            node.input[pos] = name
            wants_low = low(node) and pos not in _FLOAT32_ONLY_INPUTS.get(node.op_type, ())
            if name in g.inits:
                if g.is_float(name) and wants_low:
                    node.input[pos] = fp16_inits[name]
                continue
            is_fp16 = name in fp16_tensors
            is_fp32 = not is_fp16 and g.is_float(name)
            if wants_low and is_fp32:
                node.input[pos] = cast(name, TensorProto.FLOAT16)
            elif not wants_low and is_fp16:
                node.input[pos] = cast(name, TensorProto.FLOAT)

    out_casts = [
        helper.make_node("Cast", [twin], [out], fresh(f"{out}_cast_fp32"), to=TensorProto.FLOAT)
        for out, twin in renamed_outputs.items()
    ]
    nodes: list[onnx.NodeProto] = list(front)
    for node in graph.node:
        nodes.append(node)
        nodes.extend(cast_nodes_after.get(node.name, []))
    nodes.extend(out_casts)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_inits)
    if any(g.types.get(t) == TensorProto.DOUBLE for t in g.types):
        raise TrtqError("the model has float64 tensors; export it in float32 before typing it FP16")
    from trtq.onnx_io import check_onnx

    try:
        check_onnx(m, full_check=True)
    except onnx.checker.ValidationError as e:  # pragma: no cover - a bug in this pass, not user input
        raise TrtqError(f"typed graph failed the ONNX checker: {str(e).splitlines()[0]}") from e
    return m
