"""Validation: FP32, `model.int8.onnx` and `model.trt.onnx` each run once on the evaluation data (ONNX Runtime,
Q/DQ as written) and every candidate is scored against FP32 with the registered metrics."""

from __future__ import annotations

from dataclasses import dataclass

from trtq.pipeline.context import RunContext

__all__ = ["ValidateStage", "run_metrics"]


def run_metrics(ctx: RunContext) -> list:
    """The metrics a run asks for besides the automatic ones: `validation.metrics` and the fallback metric."""
    from trtq.metrics import get_metric, resolve_metric

    data = ctx.inputs.validation
    kind = data.targets_kind if data is not None else None
    out = [get_metric(m) for m in ctx.config.validation.metrics]
    if ctx.config.fallback.metric is not None:
        out.append(resolve_metric(ctx.config.fallback.metric, kind))
    return out


@dataclass
class ValidateStage:
    """Records `ctx.result.validation` (fp32 reference; int8 and typed candidates)."""

    name: str = "validate"

    def check(self, ctx: RunContext) -> None:
        run_metrics(ctx)

    def run(self, ctx: RunContext) -> None:
        from trtq.progress import status
        from trtq.validate import evaluate_runs, run_models

        fp32, int8 = ctx.need("fp32", self.name), ctx.need("int8", self.name)
        data, cfg = ctx.inputs.validation, ctx.config.validation
        models = {"fp32": fp32, "int8": int8, **({"typed": ctx.typed} if ctx.typed is not None else {})}
        with status("validating against FP32 (ONNX Runtime, Q/DQ as written)"):
            runs = run_models(models, list(ctx.feeds(data)))
            ctx.result.validation = evaluate_runs(
                runs, "fp32", [k for k in models if k != "fp32"], targets=data.targets,
                extra_metrics=run_metrics(ctx), data=ctx.inputs.validation_label, rtol=cfg.rtol, atol=cfg.atol,
                check_error_stat=cfg.check_error_stat,
            )  # fmt: skip
