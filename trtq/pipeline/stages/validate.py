"""Validation: FP32, `model.int8.onnx` and `model.trt.onnx` each run once on the evaluation data (ONNX Runtime,
Q/DQ as written) and every candidate is scored against FP32 with the registered metrics.

The models run one at a time (one session alive) over batches decoded afresh, keeping only their outputs; the
FP32 outputs are the run's shared reference (`RunContext.fp32_reference`), computed once for the method choice
and validation."""

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
        typed_idx = _typed_subset(ctx) if ctx.typed is not None else None
        if typed_idx is not None:
            del models["typed"]  # scored on its subset below
        with status("validating against FP32 (ONNX Runtime, Q/DQ as written)"):
            # one model at a time over batches decoded afresh; the FP32 outputs are the shared reference
            known = {"fp32": ctx.fp32_reference()}
            reused = _int8_from_heldout(ctx, int8, known["fp32"])
            if reused is not None:
                known["int8"] = reused
            runs = run_models(models, lambda: ctx.feeds(data), outputs=known)
            ctx.result.validation = evaluate_runs(
                runs, "fp32", [k for k in models if k != "fp32"], targets=data.targets,
                extra_metrics=run_metrics(ctx), data=ctx.inputs.validation_label, rtol=cfg.rtol, atol=cfg.atol,
                check_error_stat=cfg.check_error_stat,
            )  # fmt: skip
            if reused is not None and ctx.heldout is not None:
                ctx.result.validation.reused = {"int8": int(len(ctx.heldout.indices))}
            if typed_idx is not None:
                ctx.result.validation.candidates["typed"] = _score_on_subset(
                    ctx, ctx.typed, typed_idx, known["fp32"]
                )
            from trtq.pipeline.stages.task import detection_section

            section = detection_section(ctx, runs)
            if section is not None:
                ctx.result.sections.append(section)
        warning = class_count_warning(data, runs)
        if warning:
            ctx.result.warnings.append(warning)


def _typed_subset(ctx: RunContext) -> object | None:
    """The evaluation samples the typed graph is scored on (`--typed-samples`), or None for all of them."""
    data, n = ctx.inputs.validation, ctx.config.typing.samples
    if data is None or not n or n >= len(data):
        return None
    targets = data.targets
    if targets is not None and targets.kind == "detection":  # mAP over a subset of images is another number
        return None
    return data.subset_indices(n, ctx.config.seed)


def _score_on_subset(ctx: RunContext, model: object, idx: object, reference: list) -> object:
    """A candidate run and scored against FP32 on the evaluation samples `idx` only (the FP32 outputs are the
    shared reference's rows for those samples)."""
    from polygraphy.comparator import IterationResult, RunResults

    from trtq.validate import evaluate_runs, joined_outputs, model_outputs, split_outputs

    data, cfg = ctx.inputs.validation, ctx.config.validation
    subset = data.take(idx)  # type: ignore[union-attr]
    got = model_outputs(model, ctx.feeds(subset), "typed")
    rows = {k: v[idx] for k, v in joined_outputs(reference).items()}
    ref = split_outputs(rows, [len(next(iter(b.values()))) for b in got])
    runs = RunResults()
    runs.append(("fp32", [IterationResult(outputs=r, runtime=0.0, runner_name="fp32") for r in ref]))
    runs.append(("typed", [IterationResult(outputs=g, runtime=0.0, runner_name="typed") for g in got]))
    part = evaluate_runs(
        runs, "fp32", ["typed"], targets=subset.targets, extra_metrics=run_metrics(ctx),
        rtol=cfg.rtol, atol=cfg.atol, check_error_stat=cfg.check_error_stat,
    )  # fmt: skip
    comparison = part.candidates["typed"]
    comparison.samples = int(len(idx))  # type: ignore[arg-type]
    return comparison


def _int8_from_heldout(ctx: RunContext, int8: object, reference: list) -> list[dict] | None:
    """model.int8.onnx's outputs per evaluation batch, its `--calib all` held-out samples taken from the method
    choice (which ran this same model on them: equal digests) and only the other samples run now; None when the
    choice ran another model (weight PTQ, a fallback plan) or kept no outputs."""
    import numpy as np

    from trtq.calibration.choose import model_digest
    from trtq.validate import joined_outputs, model_outputs, split_outputs

    held, data = ctx.heldout, ctx.inputs.validation
    if held is None or data is None or model_digest(int8) != held.digest:  # type: ignore[arg-type]
        return None
    sizes = [len(next(iter(b.values()))) for b in reference]
    total = sum(sizes)
    rest = np.setdiff1d(np.arange(total), held.indices)
    joined: dict[str, np.ndarray] = {}
    if len(rest):
        got = model_outputs(int8, ctx.feeds(data.take(rest)), "int8")
        ran = joined_outputs(got)
    else:
        ran = {k: v[:0] for k, v in held.outputs.items()}
    for k, v in held.outputs.items():
        v = np.asarray(v)
        full = np.empty((total, *v.shape[1:]), dtype=v.dtype)
        full[held.indices], full[rest] = v, ran[k]
        joined[k] = full
    return split_outputs(joined, sizes)


def class_count_warning(data: object, runs: object) -> str | None:
    """A warning when labelled data has another number of classes than the model has outputs (top-1 would compare
    a folder's sorted position with an unrelated class index), else None."""
    import numpy as np

    from trtq.validate import stacked_outputs

    labels = getattr(data, "labels", None)
    if labels is None or not len(labels):
        return None
    outputs = stacked_outputs(runs, "fp32")
    logits = np.asarray(next(iter(outputs.values())))
    if logits.ndim != 2:
        return None
    classes = data.classes  # type: ignore[attr-defined]
    have, scores = (len(classes) if classes else int(np.max(labels)) + 1), int(logits.shape[1])
    if have == scores:
        return None
    if classes and [c for c in classes] == [str(i) for i in range(len(classes))]:
        return None  # folders named 0, 1, ...: their positions are the class indices they name
    named = f" ({', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''})" if classes else ""
    return (
        f"the labelled data {data.name} has {have} classes{named} but the model scores {scores}: top-1 compares a "  # type: ignore[attr-defined]
        "sample's class position (folders in sorted order) with the model's class index, so it means something "
        "only if those orders agree (ImageNet folders named by WordNet id, n01440764 ..., do)"
    )
