"""Sensitivity and FP16 fallback: rank the quantized layers, keep the fewest in FP16 within the budget.

Writes sensitivity.json, sensitivity.png and, when a budget chose the set, tradeoff.png (and sensitivity.md where
the sink wants it, as `trtq sensitivity` does); replaces `ctx.plan` with the mixed plan, which the quantize stage then applies, so the
mixed graph is written by the same code whether it comes from `trtq build --max-drop` or `trtq sensitivity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtq import artifacts as A
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import ReportSection, SensitivitySummary

__all__ = ["FallbackStage", "SECTION_TITLE", "CACHE_BYTES"]

#: Title of the report.md section.
SECTION_TITLE = "Sensitivity and FP16 fallback"
#: Memory for the sensitivity pass's cached activations (`VariantEvaluator`): fewer checkpoints than the library
#: default of 2 GiB, so `trtq build --max-drop` stays within 2 GB on an ImageNet CNN (1812 MiB on efficientnet_b0 with
#: 256 images; 384 MiB peaked at 2005 MiB once numba's ~130 MiB was resident, and was no faster; docs/performance.md).
CACHE_BYTES = 256 << 20


@dataclass
class FallbackStage:
    """Runs when a budget or a fallback set is configured (or always, for `trtq sensitivity`).

    Attributes:
        always_rank: rank the layers even without a budget (the `trtq sensitivity` command).
        mixed_artifact: the artifact name the mixed graph is reported under in sensitivity.md.
    """

    name: str = "sensitivity"
    always_rank: bool = False
    mixed_artifact: str = A.TYPED_ONNX

    def active(self, ctx: RunContext) -> bool:
        return self.always_rank or ctx.config.fallback.enabled

    def check(self, ctx: RunContext) -> None:
        from trtq.metrics import resolve_metric

        data = ctx.inputs.validation
        resolve_metric(ctx.config.fallback.metric, data.targets_kind if data is not None else None)

    def run(self, ctx: RunContext) -> None:
        from trtq.metrics import resolve_metric
        from trtq.pipeline.memory import release_memory
        from trtq.progress import status
        from trtq.sensitivity import analyze_sensitivity, choose_fallback
        from trtq.sensitivity.report import plot_sensitivity, sensitivity_document, sensitivity_markdown
        from trtq.sensitivity.tradeoff import plot_tradeoff

        cfg = ctx.config.fallback
        fp32, plan = ctx.need("fp32", self.name), ctx.need("plan", self.name)
        amax = ctx.need("calibration", self.name).amax_for()
        data, batch = ctx.inputs.validation, ctx.config.data.batch_size
        met = resolve_metric(cfg.metric, data.targets_kind)
        # a named fallback set needs no ranking; a budget or "the N most sensitive" does
        rank = (self.always_rank and cfg.layers is None) or cfg.max_drop is not None
        rank = rank or isinstance(cfg.layers, (int, np.integer))
        kw = {
            "placement": ctx.config.placement,
            "metric": met,
            "input_name": ctx.input_names,
            "batch_size": batch,
        }
        sens = None
        if rank:
            sens = analyze_sensitivity(
                fp32, amax, data, plan=plan, workers=cfg.workers, rank_by=cfg.rank_by, cache_bytes=CACHE_BYTES,
                alone_int8=cfg.alone_int8, **kw,
            )  # fmt: skip
        choice = None
        if cfg.enabled:
            release_memory()  # what the analysis freed goes back before the search runs its own models
            with status(f"choosing the FP16 fallback set (ranked by {cfg.rank_by}, evaluating mixed models)"):
                choice = choose_fallback(
                    fp32, amax, data, sensitivity=sens, max_drop=cfg.max_drop, fallback=cfg.layers,
                    rank_by=cfg.rank_by, top_k=cfg.top_k, workers=cfg.workers, cache_bytes=CACHE_BYTES, **kw,
                )  # fmt: skip
            ctx.plan = choice.plan
        ctx.write_json(A.SENSITIVITY_JSON, sensitivity_document(sens, choice))
        plot = None
        if sens is not None:
            path = ctx.artifact_path(A.SENSITIVITY_PNG)
            if path is not None:
                plot_sensitivity(sens, path, choice.nodes if choice else None)
                plot = A.SENSITIVITY_PNG
        tradeoff = None
        if choice is not None and choice.max_drop is not None:
            path = ctx.artifact_path(A.TRADEOFF_PNG)
            if path is not None:
                plot_tradeoff(choice, path)
                tradeoff = A.TRADEOFF_PNG
        section = sensitivity_markdown(sens, choice, plot, mixed_name=self.mixed_artifact, tradeoff=tradeoff)
        if ctx.wants(A.SENSITIVITY_MD):
            ctx.write_text(A.SENSITIVITY_MD, "# trtq sensitivity\n\n" + section)
        ctx.result.sensitivity = SensitivitySummary(sens, choice)
        ctx.result.sections.append(ReportSection(SECTION_TITLE, section))
