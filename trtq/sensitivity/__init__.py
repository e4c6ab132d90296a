"""Per-layer sensitivity analysis and FP16 fallback within an accuracy budget.

`analyze_sensitivity` measures each quantized layer alone INT8 and alone FP16 and ranks the layers;
`choose_fallback` picks the layers to keep out of INT8 so the assembled mixed model, evaluated in full,
stays within `max_drop` percentage points of FP32; `sensitivity_stage` is the `trtq build` step and
`run_sensitivity` the `trtq sensitivity` command. See docs/sensitivity.md.
"""

from __future__ import annotations

from trtq.sensitivity.analysis import LayerSensitivity, SensitivityResult, analyze_sensitivity
from trtq.sensitivity.fallback import FallbackResult, choose_fallback, mixed_model
from trtq.sensitivity.metrics import Metric, output_noise, resolve_metric, top1_accuracy, top1_agreement
from trtq.sensitivity.stage import SensitivityRun, run_sensitivity, sensitivity_stage

__all__ = [
    "analyze_sensitivity",
    "choose_fallback",
    "mixed_model",
    "sensitivity_stage",
    "run_sensitivity",
    "SensitivityRun",
    "LayerSensitivity",
    "SensitivityResult",
    "FallbackResult",
    "Metric",
    "resolve_metric",
    "top1_agreement",
    "top1_accuracy",
    "output_noise",
]
