"""The engine: where TensorRT and a GPU are present, build `model.plan`, prove its precision, validate it
against FP32 and benchmark it; elsewhere record the one-line reason and name the TensorRT-ready ONNX.

A failure of the engine step (parser, builder, precision proof, engine validation) does not throw away the
CPU work: it is recorded (`EngineSummary.error`, engine.json, engine.log, report.md), the run folder is put in
place, and `run_build` then raises `EngineFailed` (exit 1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtq import artifacts as A
from trtq.pipeline.context import RunContext

__all__ = ["EngineStage"]


@dataclass
class EngineStage:
    """Records `ctx.result.engine_info` (and `ctx.result.engine`, the plan bytes, when built)."""

    name: str = "engine"

    def check(self, ctx: RunContext) -> None:
        return None

    def run(self, ctx: RunContext) -> None:
        from trtq.engines import engine_stage, tensorrt_status

        info = ctx.result.engine_info
        cfg = ctx.config.engine
        self._handoff(ctx)
        if not cfg.enabled:
            info.status = "skipped (--no-engine)"
            return
        ok, reason = tensorrt_status()
        ready = ctx.result.artifacts.get(A.TYPED_ONNX) or ctx.result.artifacts.get(A.INT8_ONNX)
        if not ok:
            why = "TensorRT is not installed" if "not installed" in reason else reason
            info.status = f"skipped: the engine step needs an NVIDIA GPU with TensorRT ({why}); TensorRT-ready ONNX: {ready}"
            info.skipped_reason = reason
            return
        from trtq.errors import TensorRTUnavailable, TrtqError

        trt_onnx, int8_onnx = ctx.sink.path(A.TYPED_ONNX), ctx.sink.path(A.INT8_ONNX)
        run_dir = Path(ctx.sink.path(A.PLAN)).parent
        try:
            summary = engine_stage(run_dir, trt_onnx, int8_onnx, cfg, handoff=info.handoff or None)
            info.info, info.built = summary, True
            ctx.result.engine = Path(ctx.sink.path(A.PLAN)).read_bytes()
            info.status = "built"
            if ctx.inputs.validation is not None:
                self._check_engine(ctx)
        except TensorRTUnavailable as e:  # no usable GPU after all: the documented skip
            info.status = f"skipped: the engine step needs an NVIDIA GPU with TensorRT ({e}); TensorRT-ready ONNX: {ready}"
            info.skipped_reason = str(e)
        except TrtqError as e:
            final_dir = ctx.sink.final(A.PLAN).parent
            info.error = str(e).replace(str(run_dir), str(final_dir))  # name where the files will be
            info.status = f"failed: {info.error}"
            if not (run_dir / A.ENGINE_JSON).is_file():
                ctx.write_json(A.ENGINE_JSON, {"status": "failed", "error": info.error})
        finally:
            for name in (A.PLAN, A.ENGINE_JSON, A.ENGINE_LAYERS_JSON, A.ENGINE_LOG):
                if (run_dir / name).is_file():
                    ctx.result.artifacts[name] = ctx.sink.final(name)

    def _handoff(self, ctx: RunContext) -> None:
        """The trtexec / Polygraphy commands that build and check the same engine on a GPU machine."""
        from trtq.engines.handoff import handoff_commands
        from trtq.engines.profiles import compute_profile, onnx_input_shapes
        from trtq.errors import UsageError

        info, graph = ctx.result.engine_info, ctx.typed or ctx.int8
        if graph is None:
            return
        try:
            profile = compute_profile(
                onnx_input_shapes(graph), ctx.config.engine.batch, ctx.config.engine.shapes
            )
        except UsageError as e:
            info.handoff_note = f"no trtexec command: {e}"
            return
        v = ctx.config.validation
        cmds = handoff_commands(
            profile, ctx.config.engine, rtol=v.rtol, atol=v.atol, check_error_stat=v.check_error_stat
        )
        if (
            ctx.typed is None
        ):  # no model.trt.onnx (--no-typed): only the weakly typed TensorRT 10 build applies
            cmds = [c for c in cmds if c.target in ("trt10_weak", "any")]
            info.handoff_note = (
                f"only TensorRT 10 before 10.12 commands: {A.TYPED_ONNX} was not written (--no-typed)"
            )
        info.handoff = [c.to_json() for c in cmds]

    def _check_engine(self, ctx: RunContext) -> None:
        """The engine against the FP32 ONNX on the evaluation data, then its latency at the profile's batches."""
        from dataclasses import replace

        from trtq.benchmark import bench
        from trtq.progress import status
        from trtq.runners import TensorRTRunner
        from trtq.validate import compare

        info, cfg = ctx.result.engine_info, ctx.config.engine
        plan, fp32 = Path(ctx.sink.path(A.PLAN)), Path(ctx.sink.path(A.MODEL_ONNX))
        min_b, opt_b, max_b = cfg.batch
        batch = max(min_b, min(ctx.config.data.batch_size, max_b))
        with (
            ctx.clock("engine_validate"),
            status("validating the engine against FP32 (TensorRT vs ONNX Runtime)"),
        ):
            info.validation = compare(
                TensorRTRunner(plan, host_code_allowed=cfg.version_compat), fp32,
                list(ctx.feeds(ctx.inputs.validation, batch)), targets=ctx.inputs.validation.targets,
            )  # fmt: skip
        with ctx.clock("engine_bench"), status("benchmarking the engine"):
            settings = replace(ctx.config.bench, batches=tuple(sorted({min_b, opt_b})))
            doc = bench([plan], settings, out_dir=plan.parent)
        info.bench = doc.get("results", [])
        for name in (A.BENCH_JSON, A.BENCH_PNG):
            if (plan.parent / name).exists():
                ctx.result.artifacts[name] = ctx.sink.final(name)
        agree = info.validation.value("candidate", "top1_agreement")
        mean_ap = info.validation.value("candidate", "map50_95")
        line = (
            f"engine vs FP32: top-1 agreement {100 * agree:.2f}%"
            if agree is not None
            else f"engine mAP50-95 {100 * mean_ap:.2f}%"
            if mean_ap is not None
            else "engine validated"
        )
        info.status = f"built; {line}; bench.json written"
