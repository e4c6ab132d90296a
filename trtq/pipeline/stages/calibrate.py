"""Calibration: the plan's activations get their amax from one pass over the data (or from a TensorRT cache).

Writes calibration.json (every method computed, the chosen one, the FP16-overflow ranges the typed graph reads)
and, on request (`--trt-cache`), from the chosen method, TensorRT's calibration.cache; with several methods, the most faithful one is
chosen on held-out data (`--calib all`). Histogram plots are drawn for the tensors where the methods disagree
most, or, with one method, where its threshold clips the widest tail.

The cache is for TensorRT's implicit INT8 (TensorRT 10, a graph without Q/DQ), which needs a scale for every
tensor of every INT8 layer: it holds every float activation of the model, computed in the same pass, while
calibration.json holds the tensors the Q/DQ plan quantizes. Without `--trt-cache` only the plan's tensors are
calibrated (on efficientnet_b0, 113 of 240 float tensors: the pass costs about half as much). A cache given with `--calib-cache` must name every
planned tensor; names that are not tensors of this model are reported, and a cache that mostly names tensors of
another model is refused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trtq import artifacts as A
from trtq.errors import UsageError
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import CalibrationSummary

if TYPE_CHECKING:
    from trtq.calibration import Calibration

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
        elif len(cfg.methods) > 1 and ctx.inputs.validation is not None:
            from trtq.metrics import resolve_metric

            try:  # a task metric needs the targets it scores against
                resolve_metric(cfg.choose_metric, ctx.inputs.validation.targets_kind)
            except UsageError as e:
                raise UsageError(str(e).replace("--metric", "--choose-metric")) from None

    def run(self, ctx: RunContext) -> None:
        from trtq.precision import measure_ranges

        fp32, plan = ctx.need("fp32", self.name), ctx.need("plan", self.name)
        cfg = ctx.config.calibration
        cache_amax: dict[str, float] = {}
        if cfg.cache is not None:
            cal, summary = self._from_cache(ctx, fp32, plan)
            range_data = ctx.inputs.validation
        else:
            cal, summary, cache_amax = self._from_data(ctx, fp32, plan)
            range_data = ctx.inputs.calib
        with ctx.clock("fp16_ranges"):
            cal.ranges = measure_ranges(fp32, itertools.islice(ctx.feeds(range_data), RANGE_BATCHES))
        ctx.write_json(A.CALIBRATION_JSON, cal.to_dict())
        if cfg.cache is None:
            from trtq.calibration import write_trt_cache
            from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION

            path = ctx.artifact_path(A.CALIBRATION_CACHE) if _writes_cache(ctx) else None
            if path is not None:
                version = tuple(cfg.cache_version or DEFAULT_CACHE_VERSION)
                write_trt_cache(path, cache_amax, trt_version=version, algorithm=cache_algorithm(cal.method))
            drawable = cal.tensors and all(
                getattr(h, "fine", None) is not None for h in cal.histograms.values()
            )
            if drawable and cal.histograms and ctx.wants(A.calib_plot_name(cal.tensors[0])):
                from trtq.calibrators.plot import render_threshold_plots

                for name, png in render_threshold_plots(cal, PLOTS):
                    ctx.write_bytes(name, png)
        ctx.calibration = cal
        ctx.result.calibration = summary

    def _from_cache(self, ctx: RunContext, fp32: object, plan: object) -> tuple[object, CalibrationSummary]:
        from trtq.calibration import Calibration, read_trt_cache

        cfg = ctx.config.calibration
        cache_amax = read_trt_cache(cfg.cache)
        missing = [t for t in plan.activations if t not in cache_amax]  # type: ignore[attr-defined]
        if missing:
            raise UsageError(
                f"calibration cache {cfg.cache} has no scale for {len(missing)} tensor(s) that need one, "
                f"e.g. {missing[0]!r}; recalibrate with --calib-data"
            )
        known = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}  # type: ignore[attr-defined]
        foreign = [t for t in cache_amax if t not in known]
        if len(foreign) > len(cache_amax) - len(foreign):
            raise UsageError(
                f"calibration cache {cfg.cache} names {len(foreign)} tensors that are not in this model (e.g. "
                f"{foreign[0]!r}) and only {len(cache_amax) - len(foreign)} that are: it was made for another model; "
                "recalibrate with --calib-data"
            )
        if foreign:
            ctx.result.warnings.append(
                f"calibration cache {cfg.cache} also names {len(foreign)} tensor(s) that are not in this model "
                f"(e.g. {foreign[0]!r}); they were ignored. A cache TensorRT wrote has names of its own layers; "
                "any other cache may come from another model"
            )
        amax = {t: cache_amax[t] for t in plan.activations}  # type: ignore[attr-defined]
        cal = Calibration.from_amax(amax, method="cache", source=str(cfg.cache))
        cal.format = ctx.config.format
        summary = CalibrationSummary(method="cache", methods=["cache"], tensors=len(amax), source="cache",
                                     cache=str(cfg.cache))  # fmt: skip
        return cal, summary

    def _from_data(
        self, ctx: RunContext, fp32: object, plan: object
    ) -> tuple[object, CalibrationSummary, dict[str, float]]:
        from trtq.calibration import calibrate, choose_method
        from trtq.precision import float_tensors
        from trtq.qdq import insert_qdq

        cfg, batch, data = ctx.config.calibration, ctx.config.data.batch_size, ctx.inputs.calib
        methods = cfg.methods
        planned = list(plan.activations)  # type: ignore[attr-defined]
        extra: list[str] = []
        if _writes_cache(ctx):  # implicit INT8 needs every tensor: computed in the same pass
            extra = [t for t in float_tensors(fp32) if t not in set(planned)]  # type: ignore[arg-type]
        # validating on the calibration data (no --eval-data): the pass's own FP32 outputs are the run's reference
        outputs: list[dict] | None = [] if ctx.inputs.validation is data and ctx.reference is None else None
        with ctx.clock("calibration_pass"):
            cal = calibrate(
                fp32, ctx.feeds(data), planned + extra, methods, num_batches=data.num_batches(batch),
                params=cfg.params, format=ctx.config.format, optional=extra, outputs=outputs,
            )  # fmt: skip
        if outputs is not None:
            ctx.share_fp32_reference(fp32, outputs)
        every = {m: dict(v) for m, v in cal.amax.items()}
        if extra:
            _keep_only(cal, planned)
        if len(methods) > 1:
            held = ctx.inputs.validation
            if ctx.inputs.eval is None:
                cal.warnings.append(
                    "the calibration method was chosen on the calibration data itself (no --eval-data)"
                )
            with ctx.clock("choose_method"):
                # a reproducible held-out subset; its FP32 outputs are taken from the run's shared reference
                idx = held.subset_indices(cfg.choose_samples or None, ctx.config.seed)
                subset = held.subset(cfg.choose_samples or None, ctx.config.seed)
                from trtq.validate import joined_outputs

                reference = {k: v[idx] for k, v in joined_outputs(ctx.fp32_reference()).items()}
                kept: dict = {}
                choose_method(
                    cal, lambda a: insert_qdq(fp32, plan, a, format=ctx.config.format),  # type: ignore[arg-type]
                    lambda: ctx.feeds(subset), reference_outputs=reference, metric=cfg.choose_metric,
                    targets=subset.targets, keep=kept,
                )  # fmt: skip
                cal.settings["choose_samples"] = int(len(idx))
                if (
                    kept.get("digest") is not None
                ):  # validation reuses them if model.int8.onnx is this same model
                    from trtq.pipeline.context import HeldOutRun

                    ctx.heldout = HeldOutRun(indices=idx, digest=kept["digest"], outputs=kept["outputs"])
        summary = CalibrationSummary(
            method=cal.method, methods=list(methods), tensors=len(cal.tensors), source="data", samples=len(data),
            choose_metric=cfg.choose_metric if len(methods) > 1 else None, scores=cal.scores,
            warnings=list(cal.warnings),
        )  # fmt: skip
        return cal, summary, every[cal.method]


def _writes_cache(ctx: RunContext) -> bool:
    """Whether this run writes calibration.cache: only on request (`--trt-cache`), and where the sink takes it."""
    return ctx.config.calibration.trt_cache and ctx.wants(A.CALIBRATION_CACHE)


def _keep_only(cal: Calibration, tensors: list[str]) -> None:
    """Drop every tensor but `tensors` from a Calibration (the cache-only ones stay out of calibration.json)."""
    import re

    keep = set(tensors)
    cal.amax = {m: {t: v for t, v in a.items() if t in keep} for m, a in cal.amax.items()}
    cal.stats = {t: v for t, v in cal.stats.items() if t in keep}
    cal.histograms = {t: v for t, v in cal.histograms.items() if t in keep}
    about = [re.match(r"^tensor '(.+?)' ", w) for w in cal.warnings]
    cal.warnings = [w for w, m in zip(cal.warnings, about) if m is None or m.group(1) in keep]
