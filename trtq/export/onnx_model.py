"""ONNX model helpers the stages share: loading with one-line errors, reading inputs, checking data against them.

A graph's *real* inputs are its inputs that are not initializers (old exporters list weights as inputs too).
`onnx_inputs` describes every real input (name, numpy dtype, dims with None for symbolic ones);
`onnx_input_shape` and `check_input_shape` look at the first one unless told a name; `check_feed` checks
a whole `{input_name: array}` feed against the graph.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq.errors import UsageError

__all__ = [
    "input_names",
    "OnnxInput",
    "load_onnx",
    "onnx_opset",
    "onnx_inputs",
    "onnx_input_shape",
    "check_input_shape",
    "check_feed",
    "strip_identities",
    "LIMIT_KEYS",
    "model_limits",
    "set_model_limits",
    "STANDARD_DOMAINS",
    "custom_nodes",
    "check_onnxruntime_ops",
    "channels_last_hint",
]

#: The limits data must respect, as recorded in an ONNX model's metadata (`trtq.<name>`): the length of the
#: position table (longest sequence) and the vocabulary size (token ids must be smaller).
LIMIT_KEYS = ("max_sequence", "vocab_size")

#: ONNX operator domains of the standard (everything else is a custom op: a plugin in TensorRT).
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass(frozen=True)
class OnnxInput:
    """One real input of an ONNX graph.

    Attributes:
        name: the graph input's name (the key to feed it under).
        dtype: its element type as a numpy dtype (int64 for token ids, float32 for images, ...).
        dims: its dimensions, None where the dimension is symbolic (a dynamic batch) or unknown.
        symbols: the name of each symbolic dimension ("batch", "sequence"; None where static or unnamed); two
            inputs with the same symbol in some axis must be fed the same size there.
    """

    name: str
    dtype: np.dtype
    dims: tuple[int | None, ...]
    symbols: tuple[str | None, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The input as JSON: name, dtype name, dims (null for symbolic ones)."""
        return {"name": self.name, "dtype": self.dtype.name, "dims": list(self.dims)}


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX file, turning any failure into a one-line error that names the file.

    Args:
        path: the `.onnx` file.

    Returns:
        The model (passed by `onnx.checker.check_model`).

    Raises:
        UsageError: the file is not readable as ONNX or fails the ONNX checker.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise UsageError(f"{path} is empty (0 bytes); re-export the model")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise UsageError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export it") from None
    try:
        onnx.checker.check_model(str(path))  # from the file: external data of any size is read beside it
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path} fails the ONNX checker: {first}") from None
    return model


def custom_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes whose op is not a standard ONNX op (a custom domain such as com.microsoft or com.example)."""
    return [n for n in model.graph.node if n.domain not in STANDARD_DOMAINS]


def check_onnxruntime_ops(model: onnx.ModelProto, what: str = "the model") -> None:
    """Refuse, before any stage runs, a graph with a custom op ONNX Runtime has no CPU kernel for.

    trtq calibrates, validates and ranks layers by running the graph in ONNX Runtime, so such a graph cannot get
    through a build. Custom ops ONNX Runtime does run (its com.microsoft contrib ops, ai.onnx.ml) pass, and the
    placement lists them as not quantizable.

    Raises:
        TrtqError: naming the first such node, its domain and op.
    """
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    from trtq.errors import TrtqError

    nodes = custom_nodes(model)
    if not nodes:
        return
    kernels = {
        (k.domain, k.op_name)
        for k in ort_state.get_all_opkernel_def()
        if k.provider == "CPUExecutionProvider"
    }
    missing = [n for n in nodes if (n.domain, n.op_type) not in kernels]
    if missing:
        n = missing[0]
        more = f" (and {len(missing) - 1} more such nodes)" if len(missing) > 1 else ""
        raise TrtqError(
            f"node {n.name or n.output[0]!r} of {what} is the custom op {n.domain}:{n.op_type}, which ONNX Runtime "
            f"has no kernel for{more}; trtq calibrates and validates in ONNX Runtime, so it cannot run this graph: "
            "export the model without it, or replace it with standard ONNX ops"
        )


def onnx_opset(model: onnx.ModelProto) -> int:
    """The default-domain (ai.onnx) opset the model imports; 0 when it imports none."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise UsageError("the ONNX model has no inputs (every graph input is an initializer); re-export it")
    return inputs


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def onnx_inputs(model: onnx.ModelProto) -> list[OnnxInput]:
    """Every real input of the graph, in graph order.

    Args:
        model: the ONNX model.

    Returns:
        One `OnnxInput` per input that is not an initializer.

    Raises:
        UsageError: the graph has no real input, or an input is not a tensor of a numpy element type.
    """
    out = []
    for value in _real_inputs(model):
        if not value.type.HasField("tensor_type"):
            raise UsageError(f"model input {value.name!r} is not a tensor; trtq feeds tensor inputs only")
        elem = value.type.tensor_type.elem_type
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        except Exception:
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            raise UsageError(
                f"model input {value.name!r} has element type {_type_name(elem)}, which trtq cannot feed"
            )
        symbols = tuple(
            d.dim_param if d.HasField("dim_param") and d.dim_param else None
            for d in value.type.tensor_type.shape.dim
        )
        out.append(OnnxInput(value.name, dtype, tuple(_dims(value)), symbols))
    return out


def onnx_input_shape(model: onnx.ModelProto) -> tuple[str, list[int | None]]:
    """Name and dims (None for symbolic ones) of the first real graph input.

    Raises:
        UsageError: the graph has no real input.
    """
    first = _real_inputs(model)[0]
    return first.name, _dims(first)


def channels_last_hint(sample_shape: Sequence[int], expected: Sequence[int | None]) -> str:
    """ " (it looks channels-last ...; transpose ...)" when a batch (N, H, W, C) would fit an (N, C, H, W) input or,
    without `expected` dims, when its last dim looks like channels and its second does not; else ""."""
    shape = tuple(int(d) for d in sample_shape)
    if len(shape) != 4:
        return ""
    want = tuple(expected)
    fits = (
        len(want) == 4
        and want[1] == shape[3]
        and all(w in (None, 0, g) for w, g in zip(want[2:], shape[1:3]))
    )
    looks = not want and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4)
    if fits or looks:
        return (
            f" (it looks channels-last, (N, H, W, C) = {shape}: transpose the array to (N, C, H, W) first, "
            "x.transpose(0, 3, 1, 2), and save it again)"
        )
    return ""


def check_input_shape(
    model: onnx.ModelProto,
    sample_shape: Sequence[int],
    what: str = "data",
    *,
    name: str | None = None,
    images: bool = True,
) -> None:
    """Raise a UsageError when the data's batch shape cannot feed a model input.

    Dimension 0 (the batch) and symbolic dimensions accept any size.

    Args:
        model: the ONNX model.
        sample_shape: the shape of a batch, (N, ...).
        what: how the error names the data ("--calib-data").
        name: the input to check; None checks the first real input.
        images: the data comes from images (the hint names --size / --channels); False for arrays (the hint says
            which shape to save, and recognises a channels-last array).

    Raises:
        UsageError: the rank differs, or a fixed dimension differs (with the option to fix it).
    """
    if name is None:
        name, dims = onnx_input_shape(model)
    else:
        value = next((i for i in _real_inputs(model) if i.name == name), None)
        if value is None:
            raise UsageError(f"model has no input {name!r} (inputs: {input_names(model)})")
        dims = _dims(value)
    if len(dims) != len(sample_shape):
        raise UsageError(
            f"{what} has shape {tuple(sample_shape)} but model input {name!r} has rank {len(dims)} {tuple(dims)}"
        )
    for axis, (want, got) in enumerate(zip(dims, sample_shape)):
        if axis == 0 or want is None or want <= 0:
            continue
        if want != got:
            if images:
                hint = (
                    " (set --size to match)"
                    if axis >= 2
                    else " (set --channels to match)"
                    if axis == 1
                    else ""
                )
            else:
                hint = channels_last_hint(sample_shape, dims) or (
                    f" (arrays are fed as they are: save them with shape (N, {', '.join(str(d or '?') for d in dims[1:])}))"
                )
            raise UsageError(
                f"{what} gives samples of shape {tuple(sample_shape[1:])} but model input {name!r} expects "
                f"{tuple(d if d else '?' for d in dims[1:])}{hint}"
            )


def check_feed(model: onnx.ModelProto, feed: Mapping[str, np.ndarray], what: str = "data") -> None:
    """Raise a UsageError unless `feed` gives every real input of the graph, by name, with a fitting shape and type.

    Args:
        model: the ONNX model.
        feed: one batch, `{input_name: array}`.
        what: how the error names the data.

    Raises:
        UsageError: a name is missing or unknown, a shape does not fit, or an integer input gets floats
            (or the other way round).
    """
    inputs = onnx_inputs(model)
    names = [i.name for i in inputs]
    unknown = [k for k in feed if k not in names]
    if unknown:
        raise UsageError(f"{what} has input {unknown[0]!r}, but the model's inputs are {names}")
    for inp in inputs:
        if inp.name not in feed:
            raise UsageError(f"model input {inp.name!r} is not in {what} (it gives {list(feed)})")
        array = np.asarray(feed[inp.name])
        check_input_shape(model, array.shape, f"{what} input {inp.name!r}", name=inp.name)
        if _kind(array.dtype) != _kind(inp.dtype):
            raise UsageError(
                f"model input {inp.name!r} is {inp.dtype.name} but {what} gives {array.dtype.name}; "
                f"give {_kind(inp.dtype)} data for it"
            )


def _type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return str(elem)


def _kind(dtype: np.dtype) -> str:
    return {"f": "floating-point", "i": "integer", "u": "integer", "b": "boolean"}.get(dtype.kind, dtype.name)


def input_names(model: onnx.ModelProto) -> list[str]:
    """The names of the graph's real inputs (initializers excluded), in graph order: the keys of a feed."""
    return [i.name for i in _real_inputs(model)]


def strip_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the Identity nodes the legacy exporter puts in front of shared weights and biases.

    Consumers read the Identity's input directly; Identities that produce a graph output are kept.
    Initializers no node reads any more are dropped.

    Args:
        model: the model, changed in place.

    Returns:
        The same model.
    """
    graph_outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.output[0] not in graph_outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        keep.append(node)
    if not rename:
        return model
    for node in keep:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {n for node in keep for n in node.input}
    vis = [vi for vi in model.graph.value_info if vi.name not in rename]
    del model.graph.value_info[:]
    model.graph.value_info.extend(vis)
    inits = [t for t in model.graph.initializer if t.name in used or t.name in graph_outputs]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


def model_limits(model: onnx.ModelProto) -> dict[str, int]:
    """The limits recorded in the model's metadata (`trtq.max_sequence`, `trtq.vocab_size`), by short name."""
    out: dict[str, int] = {}
    for prop in model.metadata_props:
        key = prop.key.removeprefix("trtq.")
        if prop.key.startswith("trtq.") and key in LIMIT_KEYS and prop.value.isdigit():
            out[key] = int(prop.value)
    return out


def set_model_limits(model: onnx.ModelProto, limits: Mapping[str, int]) -> None:
    """Record `limits` in the model's metadata (replacing earlier values of the same keys)."""
    keys = {f"trtq.{k}" for k in limits}
    kept = [p for p in model.metadata_props if p.key not in keys]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for name in LIMIT_KEYS:
        if name in limits:
            model.metadata_props.add(key=f"trtq.{name}", value=str(int(limits[name])))
