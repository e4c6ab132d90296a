"""`trtq.quantize`: an FP32 ONNX model + calibrated thresholds -> the Q/DQ model (and, on request, the typed one).

For users who start from their own ONNX file and a calibration: the placement, quantize and typing stages of
`trtq build` (`trtq.pipeline.stages`) run in memory on them, so the result is what `trtq build` would write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import onnx

from trtq.calibration import Calibration, load_model
from trtq.errors import UsageError
from trtq.placement import PlacementConfig, QDQPlan
from trtq.qdq import QDQ_OPS

__all__ = ["quantize", "QuantizeResult", "load_calibration"]


@dataclass
class QuantizeResult:
    """What `quantize` produced.

    Attributes:
        model: the Q/DQ model, FP32 typed (`model.int8.onnx`: TensorRT 10 with builder flags, CPU checks).
        plan: where the Q/DQ went and why.
        amax: the thresholds used, per quantized activation.
        method: the calibration method the thresholds came from.
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


def load_calibration(
    calibration: Calibration | Mapping[str, float] | str | os.PathLike, method: str | None = None
) -> Calibration:
    """A Calibration from a Calibration, a calibration.json path, a TensorRT cache path or a tensor -> amax mapping.

    `method` picks which computed method's thresholds are the chosen ones (default: the file's choice).
    """
    from pathlib import Path

    if isinstance(calibration, (str, os.PathLike)):
        path = Path(calibration)
        if not path.is_file():
            raise UsageError(
                f"calibration file {path} does not exist; pass the calibration.json trtq calibrate wrote"
            )
        if path.suffix.lower() != ".json":
            from trtq.calibration import read_trt_cache

            if method is not None:
                raise UsageError(
                    "--method applies to a calibration.json, not to a TensorRT calibration cache"
                )
            return Calibration.from_amax(read_trt_cache(path), method="cache", source=str(path))
        cal = Calibration.load(path)
    elif isinstance(calibration, Mapping):
        if method is not None:
            raise UsageError(
                "a method applies to a calibration file or Calibration, not to a plain amax mapping"
            )
        return Calibration.from_amax(calibration, method="external")
    else:
        cal = calibration
    if method is not None:
        cal.amax_for(method)  # refuses a method that was not computed
        from trtq.calibrators import canonical_method

        cal = replace(cal, method=canonical_method(method))
    return cal


def quantize(
    model: str | os.PathLike | onnx.ModelProto,
    calibration: Calibration | Mapping[str, float] | str | os.PathLike,
    *,
    config: PlacementConfig | None = None,
    method: str | None = None,
    typed: bool = False,
    keep_fp32_nodes: Sequence[str] = (),
    keep_fp32_op_types: Sequence[str] = (),
    format: str = "int8",
) -> QuantizeResult:
    """Plan Q/DQ placement, insert Q/DQ with calibrated scales, and optionally type the graph FP16.

    Args:
        model: the FP32 ONNX model (path or ModelProto).
        calibration: a `trtq.calibration.Calibration`, a calibration.json path, or tensor -> amax.
        config: placement controls (exclusions, keep-first-last, rules).
        method: which calibration method's thresholds to use (default: the file's chosen method).
        typed: also build the strongly typed FP16 + INT8 model (FP16-overflow ranges from the calibration).
        keep_fp32_nodes: node names/regexes the typed model keeps FP32.
        keep_fp32_op_types: op types the typed model keeps FP32.
        format: the quantization format.

    Raises:
        UsageError: unreadable model, a model that already has Q/DQ, or thresholds missing for tensors the plan
            quantizes (the calibration was made for another model or placement).
    """
    from trtq.artifacts import TYPED_ONNX
    from trtq.config import BuildConfig, TypingConfig
    from trtq.pipeline import InMemory, RunContext, run_stages
    from trtq.pipeline.inputs import Inputs
    from trtq.pipeline.results import BuildResult
    from trtq.pipeline.stages import PlacementStage, QuantizeStage, TypingStage

    fp32 = load_model(model)
    if any(n.op_type in QDQ_OPS for n in fp32.graph.node):
        raise UsageError("the model already has QuantizeLinear/DequantizeLinear nodes; pass the FP32 model")
    cal = load_calibration(calibration, method)
    typing = TypingConfig(enabled=typed, keep_fp32_nodes=tuple(keep_fp32_nodes),
                          keep_fp32_op_types=tuple(keep_fp32_op_types))  # fmt: skip
    cfg = BuildConfig(format=format, placement=config or PlacementConfig(), typing=typing)
    ctx = RunContext(
        config=cfg, sink=InMemory(frozenset({TYPED_ONNX}) if typed else frozenset()), result=BuildResult(out_dir=None),
        inputs=Inputs(None, None, None, None, None), fp32=fp32, calibration=cal,
    )  # fmt: skip
    run_stages([PlacementStage(), QuantizeStage(), TypingStage()], ctx)
    amax = cal.amax_for()
    return QuantizeResult(
        model=ctx.int8, plan=ctx.plan, amax={t: amax[t] for t in ctx.plan.activations}, method=cal.method,
        typed=ctx.typed,
    )  # fmt: skip
