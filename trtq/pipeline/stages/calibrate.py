"""Calibration: the plan's activations get their amax from one pass over the data (or from a TensorRT cache).

Writes calibration.json (every method computed, the chosen one, the FP16-overflow ranges the typed graph reads)
and, from the chosen method, TensorRT's calibration.cache; with several methods, the most faithful one is
chosen on held-out data (`--calib all`). Histogram plots are drawn for the tensors where the methods disagree
most, or, with one method, where its threshold clips the widest tail.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from trtq import artifacts as A
from trtq.errors import UsageError
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import CalibrationSummary

__all__ = ["CalibrateStage", "RANGE_BATCHES", "cache_algorithm"]

#: Batches the FP16-overflow ranges of the typed graph are measured on.
RANGE_BATCHES = 2
#: Histogram plots: of the tensors where the methods disagree most, or (one method) where it clips the widest tail.
PLOTS = 4


def cache_algorithm(method: str) -> str:
    """The TensorRT calibrator algorithm a cache of `method`'s scales is labelled with."""
    return "MinMaxCalibration" if method == "minmax" else "EntropyCalibration2"


@dataclass
class CalibrateStage:
    """Sets `ctx.calibration`; writes calibration.json, calibration.cache and plots; records the summary."""

    name: str = "calibrate"

    def check(self, ctx: RunContext) -> None:
        cfg = ctx.config.calibration
        if cfg.cache is not None:
            if not Path(cfg.cache).is_file():
                raise UsageError(f"--calib-cache {cfg.cache} does not exist")
            if ctx.inputs.validation is None:
                raise UsageError("--calib-cache needs --eval-data (or --calib-data) to measure FP16 ranges")
        elif ctx.inputs.calib is None:
            raise UsageError(
                "--calib-data is required (or --calib-cache to take scales from a TensorRT cache)"
            )

    def run(self, ctx: RunContext) -> None:
        from trtq.precision import measure_ranges

        fp32, plan = ctx.need("fp32", self.name), ctx.need("plan", self.name)
        cfg = ctx.config.calibration
        if cfg.cache is not None:
            cal, summary = self._from_cache(ctx, plan)
            range_data = ctx.inputs.validation
        else:
            cal, summary = self._from_data(ctx, fp32, plan)
            range_data = ctx.inputs.calib
        cal.ranges = measure_ranges(fp32, itertools.islice(ctx.feeds(range_data), RANGE_BATCHES))
        ctx.write_json(A.CALIBRATION_JSON, cal.to_dict())
        if cfg.cache is None:
            from trtq.calibration import write_trt_cache
            from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION

            path = ctx.artifact_path(A.CALIBRATION_CACHE)
            if path is not None:
                version = tuple(cfg.cache_version or DEFAULT_CACHE_VERSION)
                write_trt_cache(
                    path, cal.amax_for(), trt_version=version, algorithm=cache_algorithm(cal.method)
                )
            drawable = cal.tensors and all(
                getattr(h, "fine", None) is not None for h in cal.histograms.values()
            )
            if drawable and cal.histograms and ctx.wants(A.calib_plot_name(cal.tensors[0])):
                from trtq.calibrators.plot import render_threshold_plots

                for name, png in render_threshold_plots(cal, PLOTS):
                    ctx.write_bytes(name, png)
        ctx.calibration = cal
        ctx.result.calibration = summary

    def _from_cache(self, ctx: RunContext, plan: object) -> tuple[object, CalibrationSummary]:
        from trtq.calibration import Calibration, read_trt_cache

        cfg = ctx.config.calibration
        cache_amax = read_trt_cache(cfg.cache)
        missing = [t for t in plan.activations if t not in cache_amax]  # type: ignore[attr-defined]
        if missing:
            raise UsageError(
                f"calibration cache {cfg.cache} has no scale for {len(missing)} tensor(s) that need one, "
                f"e.g. {missing[0]!r}; recalibrate with --calib-data"
            )
        amax = {t: cache_amax[t] for t in plan.activations}  # type: ignore[attr-defined]
        cal = Calibration.from_amax(amax, method="cache", source=str(cfg.cache))
        cal.format = ctx.config.format
        summary = CalibrationSummary(method="cache", methods=["cache"], tensors=len(amax), source="cache",
                                     cache=str(cfg.cache))  # fmt: skip
        return cal, summary

    def _from_data(self, ctx: RunContext, fp32: object, plan: object) -> tuple[object, CalibrationSummary]:
        from trtq.calibration import calibrate, choose_method
        from trtq.qdq import insert_qdq

        cfg, batch, data = ctx.config.calibration, ctx.config.data.batch_size, ctx.inputs.calib
        methods = cfg.methods
        cal = calibrate(
            fp32, ctx.feeds(data), plan.activations, methods,  # type: ignore[attr-defined]
            num_batches=data.num_batches(batch), params=cfg.params, format=ctx.config.format,
        )  # fmt: skip
        if len(methods) > 1:
            held = ctx.inputs.validation
            if ctx.inputs.eval is None:
                cal.warnings.append(
                    "the calibration method was chosen on the calibration data itself (no --eval-data)"
                )
            with ctx.clock("choose_method"):
                choose_method(
                    cal, lambda a: insert_qdq(fp32, plan, a, format=ctx.config.format),  # type: ignore[arg-type]
                    list(ctx.feeds(held)), reference_model=fp32, metric=cfg.choose_metric,
                )  # fmt: skip
        summary = CalibrationSummary(
            method=cal.method, methods=list(methods), tensors=len(cal.tensors), source="data", samples=len(data),
            choose_metric=cfg.choose_metric if len(methods) > 1 else None, scores=cal.scores,
            warnings=list(cal.warnings),
        )  # fmt: skip
        return cal, summary
