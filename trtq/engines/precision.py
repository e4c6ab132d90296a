"""The precision proof: what the engine really runs in, read from TensorRT's engine inspector.

A build that exits cleanly proves nothing about precision: on TensorRT 11 an FP32 graph with Q/DQ
builds INT8 convolutions and FP32 everything else, and a graph whose Q/DQ TensorRT could not fuse runs
in float. After every build trtq reads the inspector's JSON (built with detailed profiling verbosity),
counts compute layers per precision and fails loudly when the INT8 share is far below what the graph
asked for.

Two JSON schemas exist (NVIDIA's 10.x -> 11.x IEngineInspector migration page):

* 10.x: top level `{"Layers": [...], "Bindings": ["input", ...]}`; each layer's `Inputs`/`Outputs`
  entries carry one combined `"Format/Datatype"` string, e.g. "Channel major FP16 format where channel
  % 8 == 0" or, for Myelin/kgen layers, just "Float" / "Half" / "Int8".
* 11.x: `"Bindings"` is replaced by `"I/O Tensors"` (objects with Name, IOMode, DataType, ...), and the
  combined field is split into a data type and a `"Format"`.

No inspector JSON of a real TensorRT 11 engine was available to this project (tests/trt_stub/inspector/
holds hand-written 11.x samples and one real 10.x-schema file from NVIDIA's TensorRT Engine Explorer), and
NVIDIA's own tools spell the split per-tensor key both `"DataType"` and `"Datatype"`. So the proof is
tolerant: for each tensor it reads the first key whose name, ignoring case, spaces and underscores, is
"datatype" (DataType, Datatype, Data Type, ...), then the combined "Format/Datatype", then "Format"; and the
summary records which keys it read (`tensor_keys`), so engine.json shows what the proof was based on.

With dynamic shapes, formats read "N/A due to dynamic shapes" unless an execution context with input
shapes is attached to the inspector; trtq attaches one (see `trtq.engines.inspect`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtq.errors import TrtqError

__all__ = [
    "LayerPrecision",
    "parse_inspector",
    "precision_summary",
    "check_precision",
    "graph_expectations",
    "tensor_precision",
    "tensor_keys",
    "TENSOR_KEYS",
]

#: Layer types that move or hold data rather than compute (counted apart).
_BOOKKEEPING = {"reformat", "noop", "constant", "shape", "signal", "wait", "shuffle", "identity"}
#: Substrings of LayerType / ParameterType that mark a weighted (quantizable) layer.
_WEIGHTED = ("convolution", "deconvolution", "matrixmultiply", "fullyconnected", "gemm")
#: Float-like precisions, narrowest first (used when a layer's first input tells nothing).
_RANK = ("int8", "fp8", "int4", "fp4", "fp16", "bf16", "fp32")


def tensor_precision(desc: str) -> str:
    """Classify one tensor's data type / format string.

    Returns one of int8, uint8, fp8, int4, fp4, fp16, bf16, fp32, int (index/shape types), unknown.
    """
    s = str(desc).lower().replace("-", "").replace("_", " ")
    if not s.strip() or "n/a" in s or "unknown" in s or s.strip() == "none":
        return "unknown"
    if "uint8" in s:
        return "uint8"
    if "int8" in s:
        return "int8"
    if "fp8" in s or "e4m3" in s:
        return "fp8"
    if "int4" in s:
        return "int4"
    if "fp4" in s or "e2m1" in s:
        return "fp4"
    if "bfloat16" in s or "bf16" in s:
        return "bf16"
    if "fp16" in s or "half" in s or "float16" in s:
        return "fp16"
    if "fp32" in s or "float" in s:
        return "fp32"
    if "int32" in s or "int64" in s or "bool" in s or "int16" in s:
        return "int"
    return "unknown"


def _norm(key: str) -> str:
    return str(key).lower().replace(" ", "").replace("_", "")


#: Tensor keys the proof reads, in order (normalised: lower case, no spaces or underscores).
TENSOR_KEYS = ("datatype", "format/datatype", "format")


def _tensor_key(t: Mapping[str, Any]) -> str | None:
    """The key of `t` the proof reads its precision from (see TENSOR_KEYS), None when it has none."""
    by_norm = {_norm(k): k for k in t}
    for wanted in TENSOR_KEYS:
        key = by_norm.get(wanted)
        if key is not None and t[key]:
            return str(key)
    return None


def _tensor_desc(t: Any) -> str:
    if isinstance(t, Mapping):
        key = _tensor_key(t)
        return "" if key is None else str(t[key])
    return str(t)


def tensor_keys(info: str | bytes | Mapping[str, Any] | Path) -> dict[str, int]:
    """How many layer input/output tensors of an inspector JSON carried each key the proof read."""
    data = _load(info)
    used: Counter[str] = Counter()
    for layer in data["Layers"]:
        if not isinstance(layer, Mapping):
            continue
        for t in [*(layer.get("Inputs") or []), *(layer.get("Outputs") or [])]:
            used[(_tensor_key(t) if isinstance(t, Mapping) else None) or "(none)"] += 1
    return dict(sorted(used.items()))


@dataclass(frozen=True)
class LayerPrecision:
    """One engine layer as the precision proof sees it."""

    name: str
    layer_type: str
    precision: str
    weighted: bool
    bookkeeping: bool


def _layer_precision(layer: Mapping[str, Any]) -> str:
    """The precision a layer computes in: that of its first input (TensorRT Engine Explorer's rule: a
    convolution's first input is its activation), else the narrowest float-like type among the other
    inputs, then the outputs (shape-only layers)."""
    inputs = list(layer.get("Inputs") or [])
    if inputs:
        first = tensor_precision(_tensor_desc(inputs[0]))
        if first in _RANK:
            return first
    for key in ("Inputs", "Outputs"):
        found = {tensor_precision(_tensor_desc(t)) for t in layer.get(key) or []}
        for p in _RANK:
            if p in found:
                return p
    return "unknown"


def _load(info: str | bytes | Mapping[str, Any] | Path) -> Mapping[str, Any]:
    if isinstance(info, Path):
        info = info.read_text(encoding="utf-8")
    if isinstance(info, (str, bytes)):
        try:
            info = json.loads(info)
        except json.JSONDecodeError as e:
            raise TrtqError(
                f"the engine inspector did not return JSON ({e}); cannot prove the engine's precision"
            ) from None
    if not isinstance(info, Mapping) or "Layers" not in info:
        raise TrtqError("the engine inspector JSON has no 'Layers'; cannot prove the engine's precision")
    return info


def parse_inspector(info: str | bytes | Mapping[str, Any] | Path) -> tuple[str, list[LayerPrecision]]:
    """Schema ("10.x", "11.x" or "unknown") and per-layer precision of an engine inspector JSON."""
    data = _load(info)
    schema = "11.x" if "I/O Tensors" in data else "10.x" if "Bindings" in data else "unknown"
    layers = []
    for raw in data["Layers"]:
        if not isinstance(raw, Mapping):
            raise TrtqError(
                "the engine inspector listed layer names only; the engine was not built with detailed profiling "
                "verbosity, so its precision cannot be proven (rebuild it with trtq)"
            )
        name = str(raw.get("Name", ""))
        ltype = str(raw.get("LayerType", ""))
        ptype = str(raw.get("ParameterType", ""))
        kinds = f"{ltype} {ptype}".lower().replace(" ", "")
        bookkeeping = ltype.lower() in _BOOKKEEPING or name.startswith("Reformatting CopyNode")
        weighted = not bookkeeping and any(w in kinds for w in _WEIGHTED)
        layers.append(LayerPrecision(name, ltype or ptype, _layer_precision(raw), weighted, bookkeeping))
    return schema, layers


def precision_summary(info: str | bytes | Mapping[str, Any] | Path) -> dict[str, Any]:
    """Counts of engine layers per precision (compute layers only; reformats and no-ops apart)."""
    schema, layers = parse_inspector(info)
    compute = [lay for lay in layers if not lay.bookkeeping]
    by = Counter(lay.precision for lay in compute)
    weighted = [lay for lay in compute if lay.weighted]
    known = sum(n for p, n in by.items() if p != "unknown")
    return {
        "schema": schema,
        "layers": len(layers),
        "compute_layers": len(compute),
        "bookkeeping_layers": len(layers) - len(compute),
        "reformats": sum(
            1 for lay in layers if lay.layer_type.lower() == "reformat" or lay.name.startswith("Reformatting")
        ),
        "by_precision": dict(sorted(by.items())),
        "weighted_layers": len(weighted),
        "int8_weighted_layers": sum(1 for lay in weighted if lay.precision == "int8"),
        "int8_share": round(by.get("int8", 0) / known, 4) if known else 0.0,
        "tensor_keys": tensor_keys(info),
    }


def check_precision(
    summary: Mapping[str, Any],
    *,
    expected_int8_layers: int | None = None,
    expect_fp16: bool = False,
    strongly_typed: bool = True,
    min_int8_fraction: float = 0.5,
    max_fp32_fraction: float = 0.5,
) -> list[str]:
    """Fail loudly when the engine is not in the precision the graph asked for.

    Args:
        summary: from `precision_summary`.
        expected_int8_layers: weighted layers the graph quantized (Q/DQ on activation and weight); None
            skips the INT8 check.
        expect_fp16: the graph (or the FP16 builder flag) asked for FP16 outside INT8.
        strongly_typed: FP16 shortfalls fail only for strongly typed builds, where types are obeyed;
            with weak typing FP16 is a permission, so a shortfall is a warning.
        min_int8_fraction: least share of the expected INT8 layers that must run in INT8.
        max_fp32_fraction: largest share of non-INT8 float compute layers allowed in FP32 when FP16 was asked.

    Returns:
        Warnings (empty when all is as asked).

    Raises:
        TrtqError: the INT8 share is far below what the graph asked for, or FP32 dominates a strongly typed
            FP16 graph, or the inspector gave no precision at all.
    """
    by = dict(summary.get("by_precision", {}))
    compute = int(summary.get("compute_layers", 0))
    known = compute - int(by.get("unknown", 0))
    warnings: list[str] = []
    if compute == 0 or known == 0:
        raise TrtqError(
            f"the engine inspector gave no layer precisions ({compute} compute layers, all unknown); cannot prove "
            "the engine's precision"
        )
    if by.get("unknown"):
        warnings.append(f"{by['unknown']} of {compute} compute layers have no readable precision")
    int8 = int(by.get("int8", 0))
    if expected_int8_layers:
        got = int(summary.get("int8_weighted_layers", 0)) if summary.get("weighted_layers") else int8
        need = math.ceil(min_int8_fraction * expected_int8_layers)
        if got < need:
            raise TrtqError(
                f"engine runs {got} weighted layers in INT8 but the graph quantized {expected_int8_layers} "
                f"(at least {need} required); layers by precision: {_fmt(by)}. TensorRT did not fuse the Q/DQ; "
                "check the Q/DQ placement and the TensorRT log (--verbose)"
            )
        if got < expected_int8_layers:
            warnings.append(f"{got} of {expected_int8_layers} quantized layers run in INT8")
    fp32 = int(by.get("fp32", 0))
    half = int(by.get("fp16", 0)) + int(by.get("bf16", 0))
    if expect_fp16 and fp32 + half:
        share = fp32 / (fp32 + half)
        if share > max_fp32_fraction:
            msg = (
                f"engine runs {fp32} of {fp32 + half} non-INT8 float layers in FP32 although FP16 was asked for; "
                f"layers by precision: {_fmt(by)}"
            )
            if strongly_typed:
                raise TrtqError(
                    msg + ". In a strongly typed build (TensorRT 11) precision comes from the graph: build "
                    "model.trt.onnx, whose non-INT8 math is typed FP16"
                )
            warnings.append(msg)
    return warnings


def _fmt(by: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none"


# what the graph asked for ------------------------------------------------------------------------
_WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
_PASS_THROUGH = {"Cast", "Transpose", "Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"}


def graph_expectations(model: Any) -> dict[str, Any]:
    """What a Q/DQ graph asks TensorRT for.

    Args:
        model: ONNX path, bytes or ModelProto.

    Returns:
        ``{"int8_layers": weighted ops with Q/DQ on both activation and weight, "fp16": whether non-INT8
        math is typed FP16 (FP16 casts, initializers or Q/DQ scales), "qdq_nodes": count}``.
    """
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    elif isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    inits = {i.name: i for i in model.graph.initializer}

    def from_dq(tensor: str, hops: int = 3) -> bool:
        node = producer.get(tensor)
        while node is not None and hops > 0:
            if node.op_type == "DequantizeLinear":
                return True
            if node.op_type not in _PASS_THROUGH or not node.input:
                return False
            node = producer.get(node.input[0])
            hops -= 1
        return False

    int8_layers = sum(
        1
        for n in nodes
        if n.op_type in _WEIGHTED_OPS and len(n.input) >= 2 and from_dq(n.input[0]) and from_dq(n.input[1])
    )
    f16 = onnx.TensorProto.FLOAT16
    fp16 = any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute) for n in nodes
    ) or any(t.data_type == f16 for t in inits.values())
    qdq = sum(1 for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    return {"int8_layers": int8_layers, "fp16": bool(fp16), "qdq_nodes": qdq}
