"""The QAT hand-off's first stage: take `trtq qat`'s graph as the Q/DQ model instead of calibrating.

Writes model.onnx (the FP32 reference) and model.int8.onnx (the QAT graph as exported), checks that the QAT
graph's Q/DQ sit where PTQ's plan puts them (with the placement settings the QAT run recorded in the graph),
and adds the QAT section (FP32 / PTQ / QAT accuracy from the QAT run) to the report.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import onnx

from trtq import artifacts as A
from trtq.errors import TrtqError, UsageError
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import CalibrationSummary, PlacementSummary, ReportSection

__all__ = ["QATGraphStage", "QAT_METADATA_KEY", "read_qat_metadata", "load_qat_graphs"]

#: metadata_props key of model.qat.onnx: JSON with the placement settings, preprocessing, calibration method.
QAT_METADATA_KEY = "trtq.qat"


def read_qat_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The settings `trtq.qat` recorded in a QAT graph ({} for a graph from elsewhere)."""
    for prop in model.metadata_props:
        if prop.key == QAT_METADATA_KEY:
            try:
                return json.loads(prop.value)
            except ValueError:
                return {}
    return {}


def _load(model: Any, what: str) -> tuple[onnx.ModelProto, Path | None]:
    if isinstance(model, onnx.ModelProto):
        return model, None
    path = Path(model)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    try:
        return onnx.load(str(path)), path
    except Exception as e:
        raise UsageError(f"{what} {path} is not a readable ONNX file ({type(e).__name__})") from None


def load_qat_graphs(qat_onnx: Any, fp32_onnx: Any) -> tuple[onnx.ModelProto, Path | None, onnx.ModelProto]:
    """(QAT graph, its path, FP32 graph); the FP32 graph defaults to model.onnx beside the QAT graph."""
    qat, qat_path = _load(qat_onnx, "QAT model")
    if fp32_onnx is None:
        if qat_path is None or not (qat_path.parent / A.MODEL_ONNX).is_file():
            raise UsageError("the FP32 model is needed: pass it (model.onnx from the QAT run) as --fp32-onnx")
        fp32_onnx = qat_path.parent / A.MODEL_ONNX
    fp32, _ = _load(fp32_onnx, "FP32 model")
    if not any(n.op_type == "QuantizeLinear" for n in qat.graph.node):
        raise UsageError(f"{qat_path or 'the QAT model'} has no QuantizeLinear nodes; it is not a Q/DQ graph")
    return qat, qat_path, fp32


def placement_from_metadata(meta: dict[str, Any], placement: Any) -> Any:
    """The placement settings to check the QAT graph with: given ones, else those the QAT run recorded."""
    from trtq.placement import PlacementConfig

    if placement is not None:
        return placement
    saved = meta.get("placement")
    if not saved:
        return PlacementConfig()
    known = {f.name for f in fields(PlacementConfig)}
    return PlacementConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}
    )


@dataclass
class QATGraphStage:
    """Sets `ctx.fp32`, `ctx.int8`, `ctx.plan`; records placement (with the QAT check) and the QAT section.

    Attributes:
        qat: the QAT graph (path or ModelProto).
        fp32: the FP32 graph (path, ModelProto, or None: model.onnx beside the QAT graph).
        strict: fail when the Q/DQ placement differs from PTQ's (else it is reported).
        placement: placement settings for the check (None: those the QAT run recorded).
        qat_metrics: the QAT run's metrics (None: metrics.json beside the QAT graph).
    """

    qat: Any = None
    fp32: Any = None
    strict: bool = False
    placement: Any = None
    qat_metrics: dict[str, Any] | None = None
    name: str = "qat_graph"
    _loaded: tuple[Any, ...] = field(default=(), repr=False)

    def check(self, ctx: RunContext) -> None:
        qat, qat_path, fp32 = load_qat_graphs(self.qat, self.fp32)
        from trtq.export import check_input_shape, onnx_input_shape

        sample = ctx.inputs.sample
        check_input_shape(fp32, sample.shape, what="--eval-data")
        check_input_shape(qat, sample.shape, what="--eval-data")
        if onnx_input_shape(qat)[0] != onnx_input_shape(fp32)[0]:
            raise UsageError(
                f"QAT model input {onnx_input_shape(qat)[0]!r} and FP32 model input {onnx_input_shape(fp32)[0]!r} "
                "differ; export both from the same model"
            )
        self._loaded = (qat, qat_path, fp32)

    def run(self, ctx: RunContext) -> None:
        from trtq.finetune.layout import check_placement
        from trtq.placement import plan_qdq

        qat, qat_path, fp32 = self._loaded
        meta = read_qat_metadata(qat)
        ctx.write_onnx(A.MODEL_ONNX, fp32)
        ctx.write_onnx(A.INT8_ONNX, qat)
        ctx.fp32, ctx.int8 = fp32, qat
        ctx.calibration = None
        ctx.result.calibration = CalibrationSummary(
            method=f"qat ({meta.get('calib', 'unknown')} initial scales)", methods=[], tensors=0, source="qat"
        )
        with ctx.clock("placement"):
            ctx.plan = plan_qdq(fp32, placement_from_metadata(meta, self.placement))
            check = check_placement(qat, fp32, ctx.plan)
        ctx.result.placement = PlacementSummary.from_plan(ctx.plan)
        ctx.result.placement.qat_check = check.to_json()
        if self.strict and not check.matches:
            raise TrtqError(check.summary())
        metrics = self._metrics(qat_path)
        curves = qat_path.parent / A.TRAINING_CURVES_PNG if qat_path is not None else None
        if curves is not None and curves.is_file():
            dest = ctx.artifact_path(A.QAT_CURVES_PNG)
            if dest is not None:
                shutil.copyfile(curves, dest)
                metrics["curves"] = True
        from trtq.finetune.report import qat_section

        ctx.result.sections.append(
            ReportSection(
                "QAT",
                qat_section(metrics, check),
                key="qat",
                data={**metrics, "placement_check": check.to_json()},
            )
        )

    def _metrics(self, qat_path: Path | None) -> dict[str, Any]:
        if self.qat_metrics is not None:
            return dict(self.qat_metrics)
        if isinstance(self.qat, (str, os.PathLike)) is False and qat_path is None:
            return {}
        beside = qat_path.parent / A.QAT_METRICS_JSON if qat_path is not None else None
        if beside is not None and beside.is_file():
            return json.loads(beside.read_text())
        return {}
