"""Per-layer sensitivity analysis and FP16 fallback within an accuracy budget.

`analyze_sensitivity` measures each quantized layer alone INT8 and alone FP16 and ranks the layers;
`choose_fallback` picks the layers to keep out of INT8 so the assembled mixed model, evaluated in full, stays
within `max_drop` of FP32 on the chosen metric (`trtq.metrics`). The `trtq build` step and the `trtq
sensitivity` command are the pipeline's fallback stage (`trtq.pipeline.stages.fallback`). See docs/sensitivity.md.
"""

from __future__ import annotations

from trtq.metrics import Metric, resolve_metric
from trtq.metrics.classification import top1_accuracy, top1_agreement
from trtq.metrics.fidelity import output_noise
from trtq.sensitivity.analysis import LayerSensitivity, SensitivityResult, analyze_sensitivity
from trtq.sensitivity.fallback import FallbackResult, choose_fallback, mixed_model

__all__ = [
    "analyze_sensitivity",
    "choose_fallback",
    "mixed_model",
    "LayerSensitivity",
    "SensitivityResult",
    "FallbackResult",
    "Metric",
    "resolve_metric",
    "top1_agreement",
    "top1_accuracy",
    "output_noise",
]
