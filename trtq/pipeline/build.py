"""`trtq build` as stage lists: `build()` (PTQ) and `build_from_qat()` (continue from a QAT graph).

Both resolve and check everything they read before the run folder exists, stage every artifact in a hidden
folder (`trtq.files.staged_dir`) that becomes `--out` only when every stage succeeded, and return the typed
`BuildResult`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trtq.config import BuildConfig
from trtq.errors import TrtqError
from trtq.pipeline.context import RunContext, RunFolder
from trtq.pipeline.inputs import load_inputs
from trtq.pipeline.results import BuildResult
from trtq.pipeline.stage import Stage, run_stages
from trtq.pipeline.stages import (
    CalibrateStage,
    EngineStage,
    EqualizeStage,
    ExportStage,
    FallbackStage,
    PlacementStage,
    QATGraphStage,
    QuantizeStage,
    ReportStage,
    SmoothQuantStage,
    TaskStage,
    TypingStage,
    ValidateStage,
    WeightsStage,
)
from trtq.rundir import check_out_folder, staged_dir

__all__ = ["build", "build_from_qat", "run_build", "ptq_stages", "qat_stages", "EngineFailed"]


def ptq_stages() -> list[Stage]:
    """The stages of `trtq build`, in order."""
    return [
        ExportStage(), TaskStage(), SmoothQuantStage(), EqualizeStage(), PlacementStage(), CalibrateStage(), WeightsStage(),
        FallbackStage(), QuantizeStage(), TypingStage(), ValidateStage(), EngineStage(), ReportStage(),
    ]  # fmt: skip


def qat_stages(qat_stage: QATGraphStage) -> list[Stage]:
    """The stages of `trtq build --from-qat`, in order."""
    return [qat_stage, TaskStage(), TypingStage(), ValidateStage(), EngineStage(), ReportStage()]


def run_build(
    config: BuildConfig, stages: Sequence[Stage] | None = None, *, source: Any = None
) -> BuildResult:
    """Run `stages` for a configuration into its run folder.

    The default stages are `ptq_stages()`, or `qat_stages()` when `config.from_qat` names a QAT graph (whose
    recorded preprocessing applies unless the configuration sets one).
    """
    from trtq.plugins import load_plugins

    load_plugins(config.plugins)
    config.validate()
    check_out_folder(config.out, config.force, inputs=config.input_paths())
    if stages is None and config.from_qat is not None:
        config = _with_recorded_preprocess(config, config.from_qat, config.fp32_onnx)
        stages = qat_stages(QATGraphStage(qat=config.from_qat, fp32=config.fp32_onnx))
    out = Path(config.out)
    result = BuildResult(out_dir=out, config=config)
    with _timed(result, "load"):
        inputs = load_inputs(config, source=source)
    result.warnings.extend(inputs.warnings)
    stages = list(stages or ptq_stages())
    with staged_dir(out, config.force, command="build", inputs=config.input_paths()) as staging:
        ctx = RunContext(config=config, sink=RunFolder(staging, out), result=result, inputs=inputs)
        run_stages(stages, ctx)
    if result.engine_info.failed:
        raise EngineFailed(result)
    return result


class EngineFailed(TrtqError):
    """The engine step failed after every CPU stage succeeded; the run folder holds their artifacts, engine.json,
    engine.log and report.md, and `result` is the run's `BuildResult`."""

    def __init__(self, result: BuildResult) -> None:
        self.result = result
        super().__init__(
            f"the engine step failed: {result.engine_info.error}; the ONNX artifacts, engine.json, engine.log and "
            f"report.md are in {result.out_dir}"
        )


class _timed:
    def __init__(self, result: BuildResult, step: str) -> None:
        import time

        self.result, self.step, self.time = result, step, time

    def __enter__(self) -> None:
        self.start = self.time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.result.timings[self.step] = self.time.perf_counter() - self.start


def build(
    model: Any = None,
    calib_data: Any = None,
    out: str | os.PathLike | None = None,
    *,
    config: BuildConfig | None = None,
    **overrides: Any,
) -> BuildResult:
    """Build a TensorRT-ready INT8 ONNX (and an engine where TensorRT is present) from a model.

    Args:
        model: torchvision name, `package.module:factory`, saved model file, `.onnx` file, nn.Module or ModelProto.
        calib_data: image folder, .npy/.npz, array, or iterable of samples (see `trtq.data.load_data`).
        out: the run folder to create (refused if it exists and is not empty, unless `force=True`).
        config: a whole `trtq.config.BuildConfig` (the arguments above and `overrides` are applied on top).
        **overrides: settings by name (see `trtq.config.OVERRIDES`): `calib` ("entropy", "minmax",
            "percentile", "mse", any registered method, or "all"), `eval_data`, `preprocess`, `calib_samples`,
            `eval_samples`, `batch_size`, `opset`, `weights`, `checkpoint`, `trust_pickle`, `percentile`,
            `calib_cache`, `trt_cache` (write calibration.cache), `trt_cache_version`, `typed_graph`, `max_drop`,
            `fallback`, `metric`,
            `build_engine`, `seed`, `force`, or whole sections (`placement=PlacementConfig(...)`,
            `engine=EngineOptions(...)`, `calibration=CalibrationConfig(...)`, ...).

    Returns:
        The typed result (`result.validation`, `result.int8_onnx`, `result.engine` where built, ...).
    """
    cfg = config or BuildConfig()
    given = {"model": model, "out": None if out is None else str(out)}
    cfg = cfg.with_overrides(**{k: v for k, v in given.items() if v is not None})
    if calib_data is not None:
        cfg = cfg.with_overrides(data=_replace(cfg.data, calib_data=calib_data))
    return run_build(cfg.with_overrides(**overrides))


def _replace(section: Any, **kw: Any) -> Any:
    from dataclasses import replace

    return replace(section, **kw)


def _with_recorded_preprocess(cfg: BuildConfig, qat_onnx: Any, fp32_onnx: Any) -> BuildConfig:
    """The preprocessing the QAT run recorded in its graph, where the configuration sets none."""
    from trtq.pipeline.stages.qat import load_qat_graphs, read_qat_metadata

    if cfg.data.preprocess is not None:
        return cfg
    qat, _, _ = load_qat_graphs(qat_onnx, fp32_onnx)
    recorded = read_qat_metadata(qat).get("preprocess")
    return cfg.with_overrides(data=_replace(cfg.data, preprocess=recorded)) if recorded else cfg


def build_from_qat(
    qat_onnx: Any,
    fp32_onnx: Any,
    eval_data: Any,
    out: str | os.PathLike,
    *,
    config: BuildConfig | None = None,
    placement: Any = None,
    strict: bool = False,
    qat_metrics: dict[str, Any] | None = None,
    **overrides: Any,
) -> BuildResult:
    """`trtq build`'s run folder from a QAT Q/DQ graph (`trtq build --from-qat model.qat.onnx`).

    Args:
        qat_onnx: the QAT graph (`model.qat.onnx` from `trtq qat`, or a Q/DQ graph made elsewhere).
        fp32_onnx: the FP32 export of the same model; None = `model.onnx` beside `qat_onnx`.
        eval_data: evaluation data (path, array or `trtq.data.DataSource`); labels give top-1.
        out: run folder to create.
        config: a base configuration.
        placement: `trtq.placement.PlacementConfig` for the placement check; None = what the QAT run recorded.
        strict: raise TrtqError when the Q/DQ placement differs from PTQ's (otherwise it is reported).
        qat_metrics: the QAT run's metrics; None = metrics.json beside `qat_onnx`.
        **overrides: settings by name as for `build` (`eval_samples`, `batch_size`, `preprocess`, `typed_graph`,
            `engine`, `build_engine`, `seed`, `force`).
    """
    cfg = (config or BuildConfig()).with_overrides(out=str(out), **overrides)
    qat_path = None if not isinstance(qat_onnx, (str, os.PathLike)) else str(qat_onnx)
    fp32_path = None if not isinstance(fp32_onnx, (str, os.PathLike)) else str(fp32_onnx)
    cfg = cfg.with_overrides(from_qat=qat_path or "<onnx.ModelProto>", fp32_onnx=fp32_path,
                             data=_replace(cfg.data, eval_data=eval_data))  # fmt: skip
    if placement is not None:
        cfg = cfg.with_overrides(placement=placement)
    cfg = _with_recorded_preprocess(cfg, qat_onnx, fp32_onnx)
    stage = QATGraphStage(
        qat=qat_onnx, fp32=fp32_onnx, strict=strict, placement=placement, qat_metrics=qat_metrics
    )
    return run_build(cfg, qat_stages(stage))
