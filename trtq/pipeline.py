"""`trtq build`: the whole path from a PyTorch model to a validated INT8 ONNX (and, with TensorRT, an engine).

Stages (each writes its artifact into the run folder; see docs/ARCHITECTURE.md):
export -> plan Q/DQ -> calibrate -> insert Q/DQ -> typed graph -> validate -> [sensitivity] -> [engine] -> report.

The run folder is assembled in a hidden staging folder beside it and renamed into place only when every
stage succeeded, so an error or Ctrl-C never leaves a half-written run behind.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq.engines.calib_cache import DEFAULT_CACHE_VERSION
from trtq.errors import UsageError
from trtq.progress import status

__all__ = ["build", "BuildResult", "ALL_METHODS", "staged_dir"]

#: What `--calib all` computes (from one pass of shared statistics).
ALL_METHODS = ("entropy", "minmax", "percentile", "mse")


@dataclass
class BuildResult:
    """What `trtq.pipeline` returns: where everything went, the numbers, and the engine when one was built."""

    out_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    engine: bytes | None = None
    engine_status: str = ""
    calib_method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, str]] = field(default_factory=list)

    @property
    def int8_onnx(self) -> Path:
        return self.artifacts["model.int8.onnx"]

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
            "calib_method": self.calib_method,
            "metrics": self.metrics,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "engine_status": self.engine_status,
            **self.extra,
        }


@contextmanager
def staged_dir(out: Path, force: bool) -> Iterator[Path]:
    """A hidden staging folder that becomes `out` on success and disappears on any failure."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; choose a folder path")
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"output folder {out} already exists and is not empty; pass --force to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start


def _resolve_preprocess(preprocess: Any, channels: int | None) -> Any:
    from trtq.data import PRESETS, Preprocess

    if preprocess is None:
        preprocess = PRESETS["imagenet"]
    elif isinstance(preprocess, str):
        if preprocess not in PRESETS:
            raise UsageError(f"unknown --preset {preprocess!r}; choose from {', '.join(PRESETS)}")
        preprocess = PRESETS[preprocess]
    elif isinstance(preprocess, dict):
        preprocess = Preprocess(**preprocess)
    if channels in (1, 3) and channels != preprocess.channels:  # other counts: arrays, not images
        mean, std = preprocess.mean, preprocess.std
        if channels == 1 and len(mean) == 3:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        preprocess = preprocess.with_overrides(channels=channels, mean=mean, std=std)
    return preprocess


def build(
    model: Any,
    calib_data: Any,
    out: str | os.PathLike,
    *,
    calib: str = "entropy",
    eval_data: Any = None,
    preprocess: Any = None,
    calib_samples: int | None = 512,
    eval_samples: int | None = None,
    batch_size: int = 32,
    opset: int = 17,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    placement: Any = None,
    percentile: float = 99.99,
    calib_cache: str | os.PathLike | None = None,
    trt_cache_version: tuple[int, int, int] = DEFAULT_CACHE_VERSION,
    typed_graph: bool = True,
    max_drop: float | None = None,
    fallback: int | Sequence[str] | None = None,
    metric: Callable[..., float] | str | None = None,
    engine: Any = None,
    build_engine: bool = True,
    seed: int = 0,
    force: bool = False,
) -> BuildResult:
    """Build a TensorRT-ready INT8 ONNX (and an engine where TensorRT is present) from a model.

    Args:
        model: torchvision name, `package.module:factory`, saved model file, `.onnx` file or nn.Module.
        calib_data: image folder, .npy/.npz, array, or iterable of samples (see `trtq.data.load_data`).
        out: run folder to create (refused if it exists and is not empty, unless `force`).
        calib: "entropy", "minmax", "percentile", "mse", or "all" (all four from one pass, best kept).
        eval_data: labelled or unlabelled evaluation data; defaults to the calibration data.
        preprocess: a `trtq.data.Preprocess`, a preset name, or a dict of its fields.
        calib_samples, eval_samples: reproducible subsets (None = all).
        batch_size: batch size for calibration and evaluation.
        opset: export opset.
        weights, checkpoint, trust_pickle: see `trtq.export.export_onnx`.
        placement: a `trtq.placement.PlacementConfig` (exclusions, keep-first-last, rule switches).
        percentile: the percentile method's percentile.
        calib_cache: a TensorRT calibration cache to take scales from instead of calibrating.
        trt_cache_version: TensorRT version written into the exported calibration cache header.
        typed_graph: also write the strongly typed INT8+FP16 `model.trt.onnx`.
        max_drop, fallback, metric: sensitivity analysis and FP16 fallback (see `trtq.sensitivity`).
        engine: `trtq.engines.EngineOptions` for the engine step.
        build_engine: try the engine step (needs TensorRT and a GPU).
        seed: seed for model construction and data subsets.
        force: replace an existing run folder.
    """
    from trtq.data import load_data
    from trtq.export import check_input_shape, export_onnx, input_channels, onnx_input_shape, resolve_model

    if calib != "all" and calib not in ALL_METHODS and calib != "max":
        raise UsageError(f"--calib {calib!r} is not a method; choose from {', '.join(ALL_METHODS)} or all")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, not {batch_size}")
    out = Path(out)
    result = BuildResult(out_dir=out)
    clock = _Clock(result.timings)
    total_start = time.perf_counter()

    # Inputs are checked before anything is written.
    with clock("load"):
        if calib_cache is None and calib_data is None:
            raise UsageError(
                "--calib-data is required (or --calib-cache to take scales from a TensorRT cache)"
            )
        source = resolve_model(
            model, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle, seed=seed
        )
        pre = _resolve_preprocess(preprocess, input_channels(source))
        calib_ds = None
        if calib_data is not None:
            calib_ds = load_data(calib_data, pre, limit=calib_samples, seed=seed, what="--calib-data")
        eval_ds = (
            load_data(eval_data, pre, limit=eval_samples, seed=seed, what="--eval-data")
            if eval_data
            else None
        )
        sample_ds = calib_ds or eval_ds
        if sample_ds is None:
            raise UsageError(
                "--eval-data is needed when scales come from --calib-cache (to export and validate)"
            )
        sample, _ = next(sample_ds.iter_batches(min(2, len(sample_ds))))
        if source.is_onnx:
            check_input_shape(
                source.onnx_model, sample.shape, what="--calib-data" if calib_ds else "--eval-data"
            )
        if eval_ds is not None and calib_ds is not None and eval_ds.sample_shape != calib_ds.sample_shape:
            raise UsageError(
                f"--eval-data samples have shape {eval_ds.sample_shape} but --calib-data samples {calib_ds.sample_shape}"
            )

    with staged_dir(out, force) as stage:
        # export ---------------------------------------------------------------------------------
        with clock("export"), status("exporting to ONNX"):
            exported = export_onnx(source, sample, stage / "model.onnx", opset=opset)
        fp32 = exported.model
        input_name, _ = onnx_input_shape(fp32)
        result.artifacts["model.onnx"] = out / "model.onnx"
        result.metrics["export"] = exported.summary()

        # placement ------------------------------------------------------------------------------
        from trtq.placement import plan_qdq

        with clock("placement"):
            plan = plan_qdq(fp32, placement)
        result.metrics["placement"] = _placement_summary(plan)

        # calibration ----------------------------------------------------------------------------
        amax = _calibration_stage(
            result, clock, stage, out, fp32, plan, calib_ds, eval_ds, input_name, calib, batch_size,
            percentile, calib_cache, trt_cache_version,
        )  # fmt: skip

        # Q/DQ -----------------------------------------------------------------------------------
        from trtq._io import save_onnx
        from trtq.qdq import insert_qdq

        with clock("quantize"):
            int8 = insert_qdq(fp32, plan, amax)
            onnx.checker.check_model(int8, full_check=True)
        val_ds = eval_ds or calib_ds

        # sensitivity / fallback (optional): model.int8.onnx becomes the mixed graph -------------
        if max_drop is not None or fallback is not None:
            from trtq.sensitivity import sensitivity_stage

            with clock("sensitivity"):
                _, int8 = sensitivity_stage(
                    result, stage, fp32, plan, amax, val_ds, input_name, batch_size,
                    max_drop=max_drop, fallback=fallback, metric=metric, placement=placement,
                )  # fmt: skip
        save_onnx(int8, stage / "model.int8.onnx")
        result.artifacts["model.int8.onnx"] = out / "model.int8.onnx"

        _finish_stages(
            result, clock, stage, out, fp32, int8, val_ds, input_name, batch_size,
            data_label="eval" if eval_ds is not None else "calibration (no --eval-data)",
            typed_graph=typed_graph, build_engine=build_engine, engine=engine,
        )  # fmt: skip

        result.timings["total"] = time.perf_counter() - total_start
        from trtq.report import write_report

        write_report(result, stage)
        result.artifacts["report.json"] = out / "report.json"
        result.artifacts["report.md"] = out / "report.md"
    return result


def _placement_summary(plan: Any) -> dict[str, Any]:
    skipped = [
        {"node": d.node, "op_type": d.op_type, "rule": d.rule, "reason": d.reason}
        for d in plan.decisions
        if not d.quantized
    ]
    return {
        "quantized_nodes": len(plan.quantized_nodes),
        "activation_qdq": len(plan.activations),
        "weight_qdq": len(plan.weights),
        "skipped": skipped,
    }


def _calibration_stage(
    result: BuildResult, clock: _Clock, stage: Path, out: Path, fp32: onnx.ModelProto, plan: Any,
    calib_ds: Any, eval_ds: Any, input_name: str, calib: str, batch_size: int, percentile: float,
    calib_cache: Any, trt_cache_version: tuple[int, int, int],
) -> dict[str, float]:  # fmt: skip
    from trtq.calibration import Calibration, calibrate, choose_method, read_trt_cache, write_trt_cache

    if calib_cache is not None:
        with clock("calibrate"):
            cache_amax = read_trt_cache(calib_cache)
            missing = [t for t in plan.activations if t not in cache_amax]
            if missing:
                raise UsageError(
                    f"calibration cache {calib_cache} has no scale for {len(missing)} tensor(s) that need one, "
                    f"e.g. {missing[0]!r}; recalibrate with --calib-data"
                )
        amax = {t: cache_amax[t] for t in plan.activations}
        result.calib_method = "cache"
        result.metrics["calibration"] = {"method": "cache", "source": str(calib_cache), "tensors": len(amax)}
        return amax

    methods = list(ALL_METHODS) if calib == "all" else ["minmax" if calib == "max" else calib]
    feeds = calib_ds.feeds(input_name, batch_size)
    with clock("calibrate"):
        calibration: Calibration = calibrate(
            fp32, feeds, plan.activations, methods, num_batches=calib_ds.num_batches(batch_size),
            percentile=percentile,
        )  # fmt: skip
    chosen = methods[0]
    if calib == "all":
        from trtq.qdq import insert_qdq

        held = eval_ds or calib_ds
        with clock("choose_method"):
            chosen, scores = choose_method(
                calibration, lambda a: insert_qdq(fp32, plan, a), list(held.feeds(input_name, batch_size)),
                reference_model=fp32,
            )  # fmt: skip
        result.metrics["method_scores"] = scores
    calibration.method = chosen
    calibration.save(stage / "calibration.json")
    result.artifacts["calibration.json"] = out / "calibration.json"
    amax = calibration.amax_for(chosen)
    algo = "MinMaxCalibration" if chosen == "minmax" else "EntropyCalibration2"
    write_trt_cache(stage / "calibration.cache", amax, trt_version=trt_cache_version, algorithm=algo)
    result.artifacts["calibration.cache"] = out / "calibration.cache"
    result.calib_method = chosen
    result.metrics["calibration"] = {
        "method": chosen,
        "methods_computed": methods,
        "tensors": len(amax),
        "samples": len(calib_ds),
    }
    try:
        from trtq.calibration import plot_thresholds

        plots = plot_thresholds(calibration, 4, stage) if len(methods) > 1 else []
        for p in plots:
            result.artifacts[Path(p).name] = out / Path(p).name
    except ImportError:
        pass
    return amax


def _finish_stages(
    result: BuildResult, clock: _Clock, stage: Path, out: Path, fp32: onnx.ModelProto, int8: onnx.ModelProto,
    data: Any, input_name: str, batch_size: int, *, data_label: str, typed_graph: bool, build_engine: bool,
    engine: Any,
) -> None:  # fmt: skip
    """What every Q/DQ graph goes through last (PTQ and QAT alike): typed graph, validation, engine."""
    typed = (
        _typed_stage(result, clock, stage, out, fp32, int8, data, input_name, batch_size)
        if typed_graph
        else None
    )
    # each model runs once; the pairs are compared from the stored outputs
    with clock("validate"), status("validating against FP32 (ONNX Runtime, Q/DQ as written)"):
        result.metrics.update(_validate(fp32, int8, typed, data, input_name, batch_size))
    result.metrics["validation"]["data"] = data_label
    if build_engine:
        _engine_stage(result, clock, stage, out, engine, data, input_name, batch_size)
    else:
        result.engine_status = "skipped (--no-engine)"


def _typed_stage(
    result: BuildResult, clock: _Clock, stage: Path, out: Path, fp32: onnx.ModelProto, int8: onnx.ModelProto,
    data: Any, input_name: str, batch_size: int,
) -> onnx.ModelProto:  # fmt: skip
    """model.trt.onnx: the non-INT8 remainder typed FP16, I/O FP32 (strongly typed TensorRT 10.12+ / 11)."""
    from trtq._io import save_onnx
    from trtq.precision import measure_ranges, to_strongly_typed

    with clock("typed_graph"), status("typing the non-INT8 remainder FP16 (model.trt.onnx)"):
        # tensors whose FP32 range would overflow FP16 stay FP32 (measured on two batches)
        ranges = measure_ranges(fp32, itertools.islice(data.feeds(input_name, batch_size), 2))
        typed = to_strongly_typed(int8, ranges=ranges)
    save_onnx(typed, stage / "model.trt.onnx")
    result.artifacts["model.trt.onnx"] = out / "model.trt.onnx"
    return typed


def _validate(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, typed: onnx.ModelProto | None, data: Any, input_name: str,
    batch_size: int,
) -> dict[str, Any]:  # fmt: skip
    from trtq.validate import compare_results, run_models

    models = {"fp32": fp32, "int8": int8, **({"typed": typed} if typed is not None else {})}
    runs = run_models(models, data, input_name=input_name, batch_size=batch_size)
    out: dict[str, Any] = {"validation": compare_results(runs, "int8", "fp32", labels=data.labels).to_json()}
    if typed is not None:
        out["typed_graph"] = {
            "vs_int8_fp32_typed": compare_results(runs, "typed", "int8", labels=data.labels).to_json(),
            "vs_fp32": compare_results(runs, "typed", "fp32", labels=data.labels).to_json(),
        }
    return out


def _engine_stage(
    result: BuildResult, clock: _Clock, stage: Path, out: Path, options: Any, data: Any = None,
    input_name: str | None = None, batch_size: int = 32,
) -> None:  # fmt: skip
    """Build the engine where TensorRT is present, then validate it against FP32 and benchmark it."""
    from trtq.engines import EngineOptions, engine_stage, tensorrt_status

    ok, reason = tensorrt_status()
    trt_onnx = result.artifacts.get("model.trt.onnx") or result.artifacts["model.int8.onnx"]
    if not ok:
        why = "TensorRT is not installed" if "not installed" in reason else reason.split(";")[0]
        result.engine_status = f"skipped: the engine step needs an NVIDIA GPU with TensorRT ({why}); TensorRT-ready ONNX: {trt_onnx}"
        result.extra["engine_skipped_reason"] = reason
        return
    options = options or EngineOptions()
    with clock("engine"):
        summary = engine_stage(stage, stage / Path(trt_onnx).name, stage / "model.int8.onnx", options)
    result.metrics["engine"] = summary
    result.engine = (stage / "model.plan").read_bytes()
    result.artifacts["model.plan"] = out / "model.plan"
    result.artifacts["engine.json"] = out / "engine.json"
    result.engine_status = "built"
    if data is None or input_name is None:
        return
    _engine_checks(result, clock, stage, out, options, data, input_name, batch_size)


def _engine_checks(
    result: BuildResult, clock: _Clock, stage: Path, out: Path, options: Any, data: Any, input_name: str,
    batch_size: int,
) -> None:  # fmt: skip
    """The engine against the FP32 ONNX on the evaluation data, then its latency at the profile's batch sizes."""
    from trtq.benchmark import BenchSettings, bench
    from trtq.engines import TensorRTRunner
    from trtq.validate import compare

    min_b, opt_b, max_b = options.batch
    with clock("engine_validate"), status("validating the engine against FP32 (TensorRT vs ONNX Runtime)"):
        val = compare(TensorRTRunner(stage / "model.plan"), stage / "model.onnx", data, input_name=input_name,
                      batch_size=max(min_b, min(batch_size, max_b)))  # fmt: skip
    result.metrics["engine_validation"] = val.to_json()
    with clock("engine_bench"), status("benchmarking the engine"):
        doc = bench(
            [stage / "model.plan"], BenchSettings(batches=tuple(sorted({min_b, opt_b}))), out_dir=stage
        )
    result.metrics["engine_bench"] = doc.get("results", [])
    result.artifacts["bench.json"] = out / "bench.json"
    if (stage / "bench.png").exists():
        result.artifacts["bench.png"] = out / "bench.png"
    cls = val.classification
    line = (
        f"engine vs FP32: top-1 agreement {100 * cls['top1_agreement']:.2f}%" if cls else "engine validated"
    )
    result.engine_status = f"built; {line}; bench.json written"
