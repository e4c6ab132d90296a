"""The runner interface: lifecycle, timing of `infer`, and what a runner tells the benchmark by default."""

from __future__ import annotations

import numpy as np
import pytest

from tests.runners.fakes import HostRunner
from trtq.runners import BaseRunner, CudaSteps


def test_infer_needs_activation_and_context_manager_activates():
    runner = HostRunner()
    with pytest.raises(RuntimeError, match="host must be activated before infer"):
        runner.infer({"x": np.zeros((1, 4), np.float32)})
    assert runner.last_inference_time() is None
    with runner as r:
        assert r is runner and runner.is_active
        out = runner.infer({"x": np.ones((1, 4), np.float32)})
        assert out["y"].tolist() == [[1.0] * 4]
        assert runner.last_inference_time() is not None and runner.last_inference_time() >= 0
    assert not runner.is_active


def test_activate_and_deactivate_are_idempotent():
    events = []

    class Counting(HostRunner):
        def activate_impl(self) -> None:
            events.append("on")

        def deactivate_impl(self) -> None:
            events.append("off")

    r = Counting()
    r.activate()
    r.activate()
    r.deactivate()
    r.deactivate()
    assert events == ["on", "off"]


def test_defaults_say_host_runner():
    """A runner that does not opt in is timed on the host and has no profile limits."""
    r = HostRunner()
    assert BaseRunner.device == "cpu" and BaseRunner.backend == "custom"
    assert r.cuda_steps() is None
    assert r.profile_range("x") is None


def test_cuda_steps_is_a_frozen_record():
    steps = CudaSteps(bind=print, copy_inputs=print, enqueue=print, copy_outputs=print, stream="s")
    with pytest.raises(AttributeError):
        steps.stream = "other"  # type: ignore[misc]
