"""NVIDIA ModelOpt's INT8 ONNX quantizer as the reference the placement comparisons share, and what it quantized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

__all__ = ["identity_aliases", "modelopt_int8", "modelopt_quantized"]


def modelopt_int8(
    model: onnx.ModelProto | Path, calibration_data: dict[str, np.ndarray], out: Path
) -> onnx.ModelProto:
    """ModelOpt's INT8 PTQ of `model` (max calibration, FP32 elsewhere, CPU), written to `out` and loaded back."""
    from modelopt.onnx.quantization import quantize

    if isinstance(model, onnx.ModelProto):
        src = out.with_name(out.stem + ".src.onnx")
        onnx.save(model, str(src))
    else:
        src = model
    quantize(str(src), quantize_mode="int8", calibration_data=calibration_data, calibration_method="max",
             high_precision_dtype="fp32", calibration_eps=["cpu"], log_level="ERROR", output_path=str(out))  # fmt: skip
    return onnx.load(str(out))


def identity_aliases(m: onnx.ModelProto) -> dict[str, str]:
    """Identity outputs of initializers -> the initializer (so weights are named alike in both tools' graphs)."""
    inits = {t.name for t in m.graph.initializer}
    return {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Identity" and n.input[0] in inits}


def modelopt_quantized(
    mo: onnx.ModelProto, aliases: dict[str, str] | None = None
) -> dict[str, list[onnx.NodeProto]]:
    """Tensor ModelOpt quantized (renamed by `aliases`) -> the nodes that read its DequantizeLinear output."""
    aliases = aliases or {}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in mo.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = {}
    for n in mo.graph.node:
        if n.op_type == "QuantizeLinear":
            dq = readers[n.output[0]][0]
            out[aliases.get(n.input[0], n.input[0])] = readers.get(dq.output[0], [])
    return out
