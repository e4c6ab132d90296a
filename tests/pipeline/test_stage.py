"""`run_stages`: every active stage is checked before any runs, then each runs in order, timed under its name."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from trtq.config import BuildConfig
from trtq.errors import UsageError
from trtq.pipeline import InMemory, RunContext, Stage, run_stages
from trtq.pipeline.inputs import Inputs
from trtq.pipeline.results import BuildResult


@dataclass
class Recorder:
    name: str
    log: list[str]
    fail_check: bool = False
    turns_off: list = field(default_factory=list)

    def check(self, ctx: RunContext) -> None:
        self.log.append(f"check {self.name}")
        if self.fail_check:
            raise UsageError(f"{self.name} refuses")

    def run(self, ctx: RunContext) -> None:
        self.log.append(f"run {self.name}")
        for other in self.turns_off:
            other.on = False


@dataclass
class Switchable(Recorder):
    on: bool = True

    def active(self, ctx: RunContext) -> bool:
        return self.on


def _ctx() -> RunContext:
    return RunContext(config=BuildConfig(), sink=InMemory(), result=BuildResult(out_dir=None),
                      inputs=Inputs(None, None, None, None, None))  # fmt: skip


def test_checks_come_first_and_runs_are_timed_in_order():
    log: list[str] = []
    ctx = _ctx()
    run_stages([Recorder("a", log), Recorder("b", log)], ctx)
    assert log == ["check a", "check b", "run a", "run b"] and set(ctx.result.timings) == {"a", "b"}


def test_a_failing_check_stops_the_run_before_any_stage_works():
    log: list[str] = []
    with pytest.raises(UsageError, match="b refuses"):
        run_stages([Recorder("a", log), Recorder("b", log, fail_check=True), Recorder("c", log)], _ctx())
    assert log == ["check a", "check b"]


def test_inactive_stages_are_neither_checked_nor_run_and_an_earlier_stage_may_switch_one_off():
    log: list[str] = []
    later = Switchable("later", log)
    ctx = _ctx()
    run_stages([Switchable("off", log, on=False), Recorder("first", log, turns_off=[later]), later], ctx)
    assert log == ["check first", "check later", "run first"]  # checked while active, then switched off
    assert set(ctx.result.timings) == {"first"}


def test_stages_satisfy_the_protocol():
    from trtq.pipeline.build import ptq_stages

    assert isinstance(Recorder("a", []), Stage)
    assert all(isinstance(s, Stage) for s in ptq_stages())
    assert not isinstance(object(), Stage)
