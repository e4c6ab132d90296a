"""The `Stage` protocol and the loop that runs a list of stages over one context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from trtq.pipeline.context import RunContext
from trtq.pipeline.memory import release_memory

__all__ = ["Stage", "run_stages"]


@runtime_checkable
class Stage(Protocol):
    """One step of a run.

    `check(ctx)` runs for every stage before the first stage starts (cheap validation that needs the resolved
    inputs: metric names against the data, file names); `run(ctx)` does the work, writes the stage's artifact
    through the context and returns its typed result (also recorded in `ctx.result`). A stage may define
    `active(ctx) -> bool`; an inactive stage is neither checked nor run (nor timed).
    """

    name: str

    def check(self, ctx: RunContext) -> None: ...

    def run(self, ctx: RunContext) -> Any: ...


def run_stages(stages: Sequence[Stage], ctx: RunContext) -> None:
    """Check every active stage, then run them in order, timing each under its name."""
    active = [s for s in stages if getattr(s, "active", None) is None or s.active(ctx)]
    for stage in active:
        stage.check(ctx)
    for stage in active:
        if getattr(stage, "active", None) is not None and not stage.active(ctx):
            continue  # an earlier stage changed what this one would do (e.g. no fallback was chosen)
        with ctx.clock(stage.name):
            stage.run(ctx)
        release_memory()  # what the stage freed goes back to the system, not into the next stage's peak
