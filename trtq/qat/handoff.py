"""`build_from_qat`: continue `trtq build` from a QAT graph instead of calibrating.

The run folder is the one `trtq build` writes: `model.onnx` (the FP32 reference), `model.int8.onnx` (the
QAT graph, as exported), `model.trt.onnx` (FP16-typed), `report.json`/`report.md`, and with TensorRT
`model.plan`/`engine.json`. The QAT graph's Q/DQ placement is checked against the PTQ plan of the FP32
graph (with the placement settings the QAT run recorded in the graph's metadata), validated against FP32
in ONNX Runtime, typed, built; report.md gets a QAT section with FP32 / PTQ / QAT accuracy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import onnx

from trtq.errors import TrtqError, UsageError

__all__ = ["build_from_qat", "QAT_METADATA_KEY", "read_qat_metadata", "qat_section"]

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


def _placement_config(meta: dict[str, Any], placement: Any) -> Any:
    from trtq.placement import PlacementConfig

    if placement is not None:
        return placement
    saved = meta.get("placement")
    if not saved:
        return None
    known = {f.name for f in fields(PlacementConfig)}
    return PlacementConfig(**{k: v for k, v in saved.items() if k in known})


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.2f}%"


def qat_section(qat_metrics: dict[str, Any], check: Any) -> str:
    """The markdown of report.md's QAT section: FP32 / PTQ / QAT accuracy, training, export checks."""
    lines = []
    acc = qat_metrics.get("accuracy", {})
    if acc:
        lines += [
            f"Validation data: {acc.get('samples', '?')} samples, ONNX Runtime executing Q/DQ as written.",
            "",
            "| model | top-1 | top-1 agreement with FP32 |",
            "|---|---|---|",
        ]
        for key, label in (
            ("fp32", "FP32 (model.onnx)"),
            ("ptq", "PTQ (same scales, untrained)"),
            ("qat", "QAT"),
        ):
            row = acc.get(key, {})
            agree = 1.0 if key == "fp32" else row.get("agreement_with_fp32")
            lines.append(f"| {label} | {_pct(row.get('top1'))} | {_pct(agree)} |")
        lines.append("")
    train = qat_metrics.get("training", {})
    cfg = qat_metrics.get("config", {})
    if train.get("epochs"):
        lines.append(
            f"Training: {cfg.get('epochs')} epoch(s), {cfg.get('optimizer')} at lr {cfg.get('resolved_lr'):.3g}, "
            f"BatchNorm statistics frozen from epoch {cfg.get('resolved_freeze_bn_epoch')}, quantization delay "
            f"{cfg.get('quant_delay_epochs')} epoch(s); best epoch {train.get('best_epoch')} "
            "(epoch 0 = calibrated, untrained)."
        )
        lines.append("")
    elif train.get("train_fn"):
        lines += [f"Training: user function `{train['train_fn']}`.", ""]
    cal = qat_metrics.get("calibration", {})
    if cal:
        lines += [
            f"Initial scales: trtq calibrator **{cal.get('method')}** over {cal.get('samples')} samples.",
            "",
        ]
    ex = qat_metrics.get("export_check", {})
    if ex:
        lines.append(
            f"Export check (fake-quant PyTorch vs model.qat.onnx in ONNX Runtime, {ex.get('samples')} samples): "
            f"top-1 agreement {_pct(ex.get('top1_agreement'))}, max |logit error| {ex.get('max_abs_logit_error', 0):.4g} "
            f"(mean {ex.get('mean_abs_logit_error', 0):.3g}, max |logit| {ex.get('max_abs_logit', 0):.3g})."
        )
        lines.append("")
    lines += [check.summary() + ".", ""]
    if qat_metrics.get("curves"):
        lines += ["![QAT training curves](qat_curves.png)", ""]
    return "\n".join(lines)


def build_from_qat(
    qat_onnx: str | os.PathLike | onnx.ModelProto,
    fp32_onnx: str | os.PathLike | onnx.ModelProto | None,
    eval_data: Any,
    out: str | os.PathLike,
    *,
    preprocess: Any = None,
    eval_samples: int | None = None,
    batch_size: int = 32,
    placement: Any = None,
    strict: bool = False,
    qat_metrics: dict[str, Any] | str | os.PathLike | None = None,
    typed_graph: bool = True,
    engine: Any = None,
    build_engine: bool = True,
    seed: int = 0,
    force: bool = False,
) -> Any:
    """Produce `trtq build`'s run folder from a QAT Q/DQ graph (`trtq build --from-qat model.qat.onnx`).

    Args:
        qat_onnx: the QAT graph (`model.qat.onnx` from `trtq qat`, or a Q/DQ graph made elsewhere).
        fp32_onnx: the FP32 export of the same model; None = `model.onnx` beside `qat_onnx`.
        eval_data: evaluation data (path, array or `trtq.data.DataSource`); labels give top-1.
        out: run folder to create (refused if it exists and is not empty, unless `force`).
        preprocess: `trtq.data.Preprocess`, preset name or dict; None = what the QAT run recorded.
        eval_samples: reproducible subset of the evaluation data.
        batch_size: evaluation batch size.
        placement: `trtq.placement.PlacementConfig` for the placement check; None = what the QAT run recorded.
        strict: raise TrtqError when the Q/DQ placement differs from PTQ's (otherwise it is reported).
        qat_metrics: the QAT run's metrics (dict or metrics.json path); None = `metrics.json` beside `qat_onnx`.
        typed_graph: also write the FP16-typed `model.trt.onnx`.
        engine: `trtq.engines.EngineOptions` for the engine step.
        build_engine: try the engine step (needs TensorRT and a GPU).
        seed: seed of the evaluation subset.
        force: replace an existing run folder.

    Returns:
        A `trtq.pipeline.BuildResult` (`metrics["qat"]` holds the QAT metrics and the placement check).
    """
    from trtq.files import save_onnx
    from trtq.data import DataSource, load_data
    from trtq.export import check_input_shape, onnx_input_shape
    from trtq.pipeline import (
        BuildResult,
        _Clock,
        _finish_stages,
        _placement_summary,
        staged_dir,
    )
    from trtq.placement import plan_qdq
    from trtq.qat.graph import check_placement
    from trtq.report import write_report

    start = time.perf_counter()
    qat, qat_path = _load(qat_onnx, "QAT model")
    if fp32_onnx is None:
        if qat_path is None or not (qat_path.parent / "model.onnx").is_file():
            raise UsageError("the FP32 model is needed: pass it (model.onnx from the QAT run) as fp32_onnx")
        fp32_onnx = qat_path.parent / "model.onnx"
    fp32, _ = _load(fp32_onnx, "FP32 model")
    if not any(n.op_type == "QuantizeLinear" for n in qat.graph.node):
        raise UsageError(f"{qat_path or 'the QAT model'} has no QuantizeLinear nodes; it is not a Q/DQ graph")
    meta = read_qat_metadata(qat)
    if isinstance(qat_metrics, (str, os.PathLike)):
        qat_metrics = json.loads(Path(qat_metrics).read_text())
    elif qat_metrics is None and qat_path is not None and (qat_path.parent / "metrics.json").is_file():
        qat_metrics = json.loads((qat_path.parent / "metrics.json").read_text())
    qat_metrics = dict(qat_metrics or {})
    curves = qat_path.parent / "training_curves.png" if qat_path is not None else None

    if isinstance(eval_data, DataSource):
        eval_ds = eval_data.subset(eval_samples, seed)
    else:
        from trtq.pipeline import _resolve_preprocess

        pre = _resolve_preprocess(preprocess if preprocess is not None else meta.get("preprocess"), None)
        eval_ds = load_data(eval_data, pre, limit=eval_samples, seed=seed, what="--eval-data")
    sample, _ = next(eval_ds.iter_batches(min(2, len(eval_ds))))
    check_input_shape(fp32, sample.shape, what="--eval-data")
    check_input_shape(qat, sample.shape, what="--eval-data")
    input_name, _ = onnx_input_shape(fp32)
    if onnx_input_shape(qat)[0] != input_name:
        raise UsageError(
            f"QAT model input {onnx_input_shape(qat)[0]!r} and FP32 model input {input_name!r} differ; "
            "export both from the same model"
        )

    out = Path(out)
    result = BuildResult(out_dir=out)
    clock = _Clock(result.timings)
    with staged_dir(out, force) as stage:
        save_onnx(fp32, stage / "model.onnx")
        save_onnx(qat, stage / "model.int8.onnx")
        result.artifacts["model.onnx"] = out / "model.onnx"
        result.artifacts["model.int8.onnx"] = out / "model.int8.onnx"
        result.calib_method = f"qat ({meta.get('calib', 'unknown')} initial scales)"
        result.metrics["export"] = {
            "source": str(qat_path or "<onnx.ModelProto>"),
            "kind": "qat",
            "opset": max((o.version for o in qat.opset_import if o.domain in ("", "ai.onnx")), default=0),
            "nodes": len(qat.graph.node),
        }

        with clock("placement"):
            plan = plan_qdq(fp32, _placement_config(meta, placement))
            check = check_placement(qat, fp32, plan)
        result.metrics["placement"] = {**_placement_summary(plan), "qat_check": check.to_json()}
        if strict and not check.matches:
            raise TrtqError(check.summary())

        _finish_stages(
            result, clock, stage, out, fp32, qat, eval_ds, input_name, batch_size, data_label="eval",
            typed_graph=typed_graph, build_engine=build_engine, engine=engine,
        )  # fmt: skip

        if curves is not None and curves.is_file():
            shutil.copyfile(curves, stage / "qat_curves.png")
            result.artifacts["qat_curves.png"] = out / "qat_curves.png"
            qat_metrics["curves"] = True
        result.metrics["qat"] = {**qat_metrics, "placement_check": check.to_json()}
        result.sections.append(("QAT", qat_section(qat_metrics, check)))
        result.timings["total"] = time.perf_counter() - start
        write_report(result, stage)
        result.artifacts["report.json"] = out / "report.json"
        result.artifacts["report.md"] = out / "report.md"
    return result
