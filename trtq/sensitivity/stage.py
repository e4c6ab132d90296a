"""Sensitivity as a pipeline step: `sensitivity_stage` (inside `trtq build`) and `run_sensitivity` (the command).

Both analyse (when a ranking is needed), choose the fallback set, and write sensitivity.json, the bar chart
sensitivity.png and a report section. `run_sensitivity` starts from files (an FP32 .onnx, a
calibration.json or TensorRT cache, evaluation data) and also writes the mixed model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq._io import save_onnx, write_json, write_text
from trtq.errors import UsageError
from trtq.placement import PlacementConfig, QDQPlan
from trtq.progress import status
from trtq.sensitivity.analysis import SensitivityResult, analyze_sensitivity
from trtq.sensitivity.fallback import FallbackResult, choose_fallback
from trtq.sensitivity.metrics import Metric, MetricFn, resolve_metric
from trtq.sensitivity.report import plot_sensitivity, sensitivity_document, sensitivity_markdown

__all__ = ["sensitivity_stage", "run_sensitivity", "SensitivityRun", "SECTION_TITLE"]

#: Title of the report.md section.
SECTION_TITLE = "Sensitivity and FP16 fallback"


def _needs_ranking(max_drop: float | None, fallback: int | Sequence[str] | None) -> bool:
    return max_drop is not None or isinstance(fallback, (int, np.integer))


def _analyse_and_choose(
    fp32: onnx.ModelProto,
    plan: QDQPlan | None,
    amax: dict[str, float],
    data: Any,
    input_name: str | None,
    batch_size: int,
    *,
    max_drop: float | None,
    fallback: int | Sequence[str] | None,
    metric: str | MetricFn | Metric | None,
    placement: PlacementConfig | None,
    labels: np.ndarray | None,
    rank: bool,
    workers: int | None,
) -> tuple[SensitivityResult | None, FallbackResult | None]:
    has_labels = labels is not None or getattr(data, "labels", None) is not None
    met = resolve_metric(metric, has_labels)  # fail on a bad metric before any work
    sens = None
    if rank:
        sens = analyze_sensitivity(
            fp32, amax, data, plan=plan, placement=placement, metric=met, labels=labels,
            input_name=input_name, batch_size=batch_size, workers=workers,
        )  # fmt: skip
    choice = None
    if max_drop is not None or fallback is not None:
        with status("choosing the FP16 fallback set (evaluating mixed models)"):
            choice = choose_fallback(
                fp32, amax, data, sensitivity=sens, max_drop=max_drop, fallback=fallback,
                placement=placement, metric=met, labels=labels, input_name=input_name, batch_size=batch_size,
            )  # fmt: skip
    return sens, choice


def _write_outputs(
    folder: Path, sens: SensitivityResult | None, choice: FallbackResult | None
) -> tuple[list[str], str | None]:
    """sensitivity.json and sensitivity.png into `folder`; returns the file names and the plot's."""
    write_json(folder / "sensitivity.json", sensitivity_document(sens, choice))
    names = ["sensitivity.json"]
    plot = None
    if sens is not None:
        plot_sensitivity(sens, folder / "sensitivity.png", choice.nodes if choice else None)
        names.append("sensitivity.png")
        plot = "sensitivity.png"
    return names, plot


def _summary(sens: SensitivityResult | None, choice: FallbackResult | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if sens is not None:
        out.update(
            metric=sens.metric,
            samples=sens.samples,
            fp32_metric=sens.fp32_metric,
            int8_metric=sens.int8_metric,
            layers=len(sens.layers),
            ranked=sens.ranked_nodes[:10],
            analysis_s=round(sens.timings.get("total", 0.0), 3),
        )
    if choice is not None:
        out["fallback"] = {k: v for k, v in choice.to_json().items() if k != "evaluations"}
        out["fallback"]["evaluations"] = len(choice.evaluations)
    return out


def sensitivity_stage(
    result: Any,
    stage: Path,
    fp32: onnx.ModelProto,
    plan: QDQPlan,
    amax: dict[str, float],
    val_ds: Any,
    input_name: str,
    batch_size: int,
    *,
    max_drop: float | None = None,
    fallback: int | Sequence[str] | None = None,
    metric: str | MetricFn | Metric | None = None,
    placement: PlacementConfig | None = None,
    workers: int | None = None,
) -> tuple[list[str], onnx.ModelProto]:
    """The `trtq build` step: analyse, choose the fallback set, write sensitivity.json/.png, report.

    Args:
        result: the `trtq.pipeline.BuildResult` (gains `metrics["sensitivity"]`, a report section, artifacts).
        stage: the staging folder the run's files go to.
        fp32: the FP32 model.
        plan: its all-INT8 Q/DQ plan.
        amax: calibrated thresholds.
        val_ds: evaluation data (`trtq.data.DataSource`).
        input_name: the model input the data feeds.
        batch_size: evaluation batch size.
        max_drop: budget in percentage points of the metric.
        fallback: N or node names / regexes.
        metric: None (top-1 agreement, or top-1 accuracy with labels), a name, an entry point or a callable.
        placement: the placement controls of the build.
        workers: parallel evaluations (default: the CPUs available).

    Returns:
        The nodes kept out of INT8 and the mixed Q/DQ model (FP32 typed; the build types it FP16).
    """
    stage = Path(stage)
    sens, choice = _analyse_and_choose(
        fp32, plan, amax, val_ds, input_name, batch_size, max_drop=max_drop, fallback=fallback,
        metric=metric, placement=placement, labels=None, rank=_needs_ranking(max_drop, fallback),
        workers=workers,
    )  # fmt: skip
    assert choice is not None and choice.model is not None
    names, plot = _write_outputs(stage, sens, choice)
    for name in names:
        result.artifacts[name] = Path(result.out_dir) / name
    result.metrics["sensitivity"] = _summary(sens, choice)
    result.sections.append((SECTION_TITLE, sensitivity_markdown(sens, choice, plot)))
    return list(choice.nodes), choice.model


@dataclass
class SensitivityRun:
    """What `run_sensitivity` did.

    Attributes:
        out_dir: the folder written.
        files: file name -> path.
        sensitivity: the ranking (None when only a named fallback set was measured).
        fallback: the fallback choice (None without `max_drop`/`fallback`).
    """

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    sensitivity: SensitivityResult | None = None
    fallback: FallbackResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "files": {k: str(v) for k, v in self.files.items()},
            **_summary(self.sensitivity, self.fallback),
        }


def _load_amax(calibration: str | os.PathLike | dict[str, float], method: str | None) -> dict[str, float]:
    if isinstance(calibration, dict):
        return {str(k): float(v) for k, v in calibration.items()}
    path = Path(calibration)
    if not path.is_file():
        raise UsageError(
            f"calibration file {path} does not exist; pass the calibration.json trtq calibrate wrote"
        )
    if path.suffix.lower() != ".json":
        from trtq.calibration import read_trt_cache

        if method is not None:
            raise UsageError("--method applies to a calibration.json, not to a TensorRT calibration cache")
        return dict(read_trt_cache(path))
    from trtq.calibration import Calibration

    return Calibration.load(path).amax_for(method)


def run_sensitivity(
    model: str | os.PathLike | onnx.ModelProto,
    calibration: str | os.PathLike | dict[str, float],
    eval_data: Any,
    out: str | os.PathLike,
    *,
    preprocess: Any = None,
    eval_samples: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    method: str | None = None,
    placement: PlacementConfig | None = None,
    max_drop: float | None = None,
    fallback: int | Sequence[str] | None = None,
    metric: str | MetricFn | Metric | None = None,
    workers: int | None = None,
    typed: bool = True,
    force: bool = False,
) -> SensitivityRun:
    """`trtq sensitivity`: rank the layers of an FP32 ONNX model and, on request, choose the FP16 fallback.

    Args:
        model: the FP32 .onnx (path or ModelProto).
        calibration: calibration.json (`trtq calibrate`), a TensorRT calibration cache, or tensor -> amax.
        eval_data: evaluation data (folder, .npy/.npz, array; see `trtq.data.load_data`).
        out: folder to create (refused if it exists and is not empty, unless `force`).
        preprocess: `trtq.data.Preprocess`, a preset name or None (imagenet) for image folders.
        eval_samples: reproducible subset of the evaluation data (None = all).
        batch_size: evaluation batch size.
        seed: seed of that subset.
        method: calibration method to take thresholds from (default: the file's chosen method).
        placement: placement controls (must match the calibration's).
        max_drop: budget in percentage points; writes the mixed model that meets it.
        fallback: N or node names / regexes kept out of INT8.
        metric: see `trtq.sensitivity.metrics.resolve_metric`.
        workers: parallel evaluations (default: the CPUs available).
        typed: also write the strongly typed FP16 model.trt.onnx of the mixed model.
        force: replace an existing folder.

    Returns:
        What was written, the ranking and the choice.
    """
    from trtq.data import load_data
    from trtq.export import check_input_shape, onnx_input_shape
    from trtq.pipeline import staged_dir
    from trtq.placement import normalize, plan_qdq
    from trtq.quantization import load_model

    fp32 = normalize(load_model(model))
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in fp32.graph.node):
        raise UsageError("the model already has QuantizeLinear/DequantizeLinear nodes; pass the FP32 model")
    amax = _load_amax(calibration, method)
    plan = plan_qdq(fp32, placement)
    missing = [t for t in plan.activations if t not in amax]
    if missing:
        raise UsageError(
            f"the calibration has no amax for {len(missing)} tensor(s) the placement quantizes (first: "
            f"{missing[0]!r}); recalibrate this model with the same placement options"
        )
    input_name, _ = onnx_input_shape(fp32)
    data = load_data(eval_data, preprocess, limit=eval_samples, seed=seed, what="--eval-data")
    sample, _ = next(data.iter_batches(1))
    check_input_shape(fp32, sample.shape, what="--eval-data")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
    run = SensitivityRun(out_dir=Path(out))
    with staged_dir(Path(out), force) as stage:
        sens, choice = _analyse_and_choose(
            fp32, plan, amax, data, input_name, batch_size, max_drop=max_drop, fallback=fallback,
            metric=metric, placement=placement, labels=None, rank=fallback is None or _needs_ranking(max_drop, fallback),
            workers=workers,
        )  # fmt: skip
        names, plot = _write_outputs(stage, sens, choice)
        mixed_name = "model.mixed.onnx"
        if choice is not None and choice.model is not None:
            save_onnx(choice.model, stage / mixed_name)
            names.append(mixed_name)
            if typed:
                from trtq.precision import to_strongly_typed

                save_onnx(to_strongly_typed(choice.model), stage / "model.trt.onnx")
                names.append("model.trt.onnx")
                mixed_name = "model.trt.onnx"
        text = "# trtq sensitivity\n\n" + sensitivity_markdown(sens, choice, plot, mixed_name=mixed_name)
        write_text(stage / "sensitivity.md", text)
        names.append("sensitivity.md")
    run.files = {n: Path(out) / n for n in names}
    run.sensitivity, run.fallback = sens, choice
    return run
