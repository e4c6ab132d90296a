"""`quantize`: an FP32 ONNX model + calibrated thresholds -> the Q/DQ model (and, on request, the typed one).

One call for users who start from their own ONNX file and a calibration file: plan the Q/DQ placement, insert
Q/DQ with the calibrated scales, optionally type the rest FP16 for strongly typed TensorRT builds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from trtq.files import check_writable, save_onnx, write_json
from trtq.errors import UsageError
from trtq.placement import PlacementConfig, QDQPlan, normalize, plan_qdq
from trtq.precision import to_strongly_typed
from trtq.qdq import QDQ_OPS, insert_qdq

if TYPE_CHECKING:
    from trtq.calibration import Calibration

__all__ = ["quantize", "quantize_files", "QuantizeResult", "load_model"]


@dataclass
class QuantizeResult:
    """What `quantize` produced.

    Attributes:
        model: the Q/DQ model, FP32 typed (`model.int8.onnx`: TensorRT 10 with builder flags, CPU checks).
        plan: where the Q/DQ went and why.
        amax: the thresholds used, per quantized activation.
        method: the calibration method the thresholds came from (None for a plain mapping).
        typed: the strongly typed FP16 + INT8 model (`model.trt.onnx`), if requested.
    """

    model: onnx.ModelProto
    plan: QDQPlan
    amax: dict[str, float]
    method: str | None = None
    typed: onnx.ModelProto | None = None

    def summary(self) -> dict[str, Any]:
        """Counts and the nodes left in high precision, for `--json` and reports."""
        return {
            "method": self.method,
            "quantized_nodes": len(self.plan.quantized_nodes),
            "activation_qdq": len(self.plan.activations),
            "weight_qdq": len(self.plan.weights),
            "scale_groups": len(self.plan.scale_groups),
            "high_precision": [
                {"node": d.node, "op_type": d.op_type, "rule": d.rule, "reason": d.reason}
                for d in self.plan.decisions
                if not d.quantized
            ],
            "typed": self.typed is not None,
        }


def load_model(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Load an ONNX model, refusing missing or unreadable files with a one-line message."""
    if isinstance(model, onnx.ModelProto):
        return model
    p = Path(model)
    if not p.is_file():
        raise UsageError(f"model {p} does not exist; pass the FP32 .onnx file (trtq export writes one)")
    try:
        return onnx.load(str(p))
    except Exception as e:  # protobuf raises several types for a file that is not a model
        raise UsageError(
            f"{p} is not a readable ONNX model ({type(e).__name__}); pass an .onnx file"
        ) from None


def _amax_from(
    calibration: Calibration | Mapping[str, float] | str | os.PathLike, method: str | None
) -> tuple[dict[str, float], str | None, str]:
    """(amax, method, where) from a Calibration, a calibration.json path or a plain mapping."""
    if isinstance(calibration, (str, os.PathLike)):
        from trtq.calibration import Calibration

        cal = Calibration.load(calibration)
        return cal.amax_for(method), method or cal.method, f"calibration file {calibration}"
    if isinstance(calibration, Mapping):
        if method is not None:
            raise UsageError(
                "a method applies to a calibration file or Calibration, not to a plain amax mapping"
            )
        return {str(k): float(v) for k, v in calibration.items()}, None, "the amax mapping"
    return calibration.amax_for(method), method or calibration.method, "the calibration"


def quantize(
    model: str | os.PathLike | onnx.ModelProto,
    calibration: Calibration | Mapping[str, float] | str | os.PathLike,
    *,
    config: PlacementConfig | None = None,
    method: str | None = None,
    typed: bool = False,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_op_types: Sequence[str] = (),
) -> QuantizeResult:
    """Plan Q/DQ placement, insert Q/DQ with calibrated scales, and optionally type the graph FP16.

    Args:
        model: the FP32 ONNX model (path or ModelProto).
        calibration: a `trtq.calibration.Calibration`, a calibration.json path, or tensor -> amax.
        config: placement controls (exclusions, keep-first-last, rule switches).
        method: which calibration method's thresholds to use (default: the file's chosen method).
        typed: also build the strongly typed FP16 + INT8 model.
        keep_fp32_nodes: node names/regexes the typed model keeps FP32.
        keep_fp32_op_types: op types the typed model keeps FP32.

    Returns:
        The Q/DQ model, its plan and, if `typed`, the typed model.

    Raises:
        UsageError: unreadable model, a model that already has Q/DQ, or thresholds missing for tensors the
            plan quantizes (the calibration was made for another model or placement).
    """
    fp32 = load_model(model)
    if any(n.op_type in QDQ_OPS for n in fp32.graph.node):
        raise UsageError("the model already has QuantizeLinear/DequantizeLinear nodes; pass the FP32 model")
    amax, used_method, where = _amax_from(calibration, method)
    plan = plan_qdq(fp32, config)
    missing = [t for t in plan.activations if t not in amax]
    if missing:
        raise UsageError(
            f"{where} has no amax for {len(missing)} tensor(s) the placement quantizes (first: {missing[0]!r}); "
            "recalibrate this model with the same placement options"
        )
    int8 = insert_qdq(normalize(fp32), plan, amax)
    result = QuantizeResult(
        model=int8, plan=plan, amax={t: amax[t] for t in plan.activations}, method=used_method
    )
    if typed:
        result.typed = to_strongly_typed(
            int8, keep_fp32_nodes=keep_fp32_nodes, keep_fp32_op_types=keep_fp32_op_types
        )
    return result


def quantize_files(
    model: str | os.PathLike,
    calibration: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trt_out: str | os.PathLike | None = None,
    plan_out: str | os.PathLike | None = None,
    force: bool = False,
    config: PlacementConfig | None = None,
    method: str | None = None,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_op_types: Sequence[str] = (),
) -> QuantizeResult:
    """`quantize` from files to files (what `trtq quantize` runs); every output is written atomically.

    Args:
        model: the FP32 .onnx file.
        calibration: calibration.json from `trtq calibrate`.
        out: where to write the FP32-typed Q/DQ model (model.int8.onnx).
        trt_out: where to write the strongly typed model (model.trt.onnx), if wanted.
        plan_out: where to write the placement plan and its decisions as JSON, if wanted.
        force: overwrite existing outputs.
        config: placement controls.
        method: calibration method to use (default: the file's chosen one).
        keep_fp32_nodes: node names/regexes the typed model keeps FP32.
        keep_fp32_op_types: op types the typed model keeps FP32.

    Raises:
        UsageError: an output exists without `force`, an output equals the input, or `quantize` refuses.
    """
    outputs = [Path(p) for p in (out, trt_out, plan_out) if p is not None]
    for p in outputs:
        if p.resolve() == Path(model).resolve():
            raise UsageError(f"output {p} is the input model; choose another path")
        check_writable(p, force)
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise UsageError("--out, --trt-out and --plan-out must be different files")
    result = quantize(
        model,
        calibration,
        config=config,
        method=method,
        typed=trt_out is not None,
        keep_fp32_nodes=keep_fp32_nodes,
        keep_fp32_op_types=keep_fp32_op_types,
    )
    save_onnx(result.model, out)
    if trt_out is not None and result.typed is not None:
        save_onnx(result.typed, trt_out)
    if plan_out is not None:
        write_json(plan_out, result.plan.to_json())
    return result
