"""Placement: where Q/DQ go in the FP32 model (`trtq.placement.plan_qdq` with the configured rules)."""

from __future__ import annotations

from dataclasses import dataclass

from trtq import artifacts as A
from trtq.pipeline.context import RunContext
from trtq.pipeline.results import PlacementSummary

__all__ = ["PlacementStage"]


@dataclass
class PlacementStage:
    """Sets `ctx.plan`; records `ctx.result.placement`; writes `placement.json` where the sink wants it."""

    name: str = "placement"

    def check(self, ctx: RunContext) -> None:
        ctx.config.placement.validate() if hasattr(ctx.config.placement, "validate") else None

    def run(self, ctx: RunContext) -> None:
        from trtq.placement import plan_qdq

        fp32 = ctx.need("fp32", self.name)
        ctx.plan = plan_qdq(fp32, ctx.config.placement)
        ctx.result.placement = PlacementSummary.from_plan(ctx.plan)
        if ctx.wants(A.PLACEMENT_JSON):
            ctx.write_json(A.PLACEMENT_JSON, ctx.plan.to_json())
