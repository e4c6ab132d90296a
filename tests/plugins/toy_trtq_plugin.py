"""A plugin outside the trtq package: one calibrator, one placement rule and one metric, registered on import.

Used by tests/test_plugins.py through `trtq --plugin tests.plugins.toy_trtq_plugin ...`, exactly as a user's own
module would be.
"""

from __future__ import annotations

import numpy as np

from trtq.calibrators import CalibParam, CollectorCalibrator, register_calibrator
from trtq.metrics import register_metric
from trtq.placement.rules import WeightedRule, register_rule


@register_calibrator("toyfraction")
class ToyFractionCalibrator(CollectorCalibrator):
    """amax = a fixed fraction of max |x| (a deliberately simple method)."""

    needs_histogram = False
    params = (CalibParam("fraction", float, 0.5, "share of max |x| kept", low=0.0, high=1.0, low_open=True),)

    def __init__(self, fraction: float = 0.5, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.fraction = float(fraction)

    def amax_from(self, rec) -> float:  # type: ignore[no-untyped-def]
        return self.fraction * rec.absmax


@register_rule("ToyKeepStem", default=False)
class ToyKeepStem(WeightedRule):
    """Keeps every weighted layer whose name contains "stem" in high precision."""

    def check(self, node, ctx) -> str | None:  # type: ignore[no-untyped-def]
        return "toy plugin keeps the stem in FP16" if "stem" in node.name else None


@register_metric("toy_l1", unit="value", kind="fidelity", description="minus the mean absolute error")
def toy_l1(reference, outputs, targets=None) -> float:  # type: ignore[no-untyped-def]
    """Minus the mean absolute difference from FP32 over the first output (higher is better)."""
    name = next(iter(reference))
    return -float(
        np.mean(np.abs(np.asarray(outputs[name], np.float64) - np.asarray(reference[name], np.float64)))
    )
