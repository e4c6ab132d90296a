"""Metrics: one registry for every number trtq compares models by.

Validation, sensitivity and the FP16 fallback budget (`--metric`, `--max-drop`), the choice of calibration
method (`--calib all`), QAT and the report all look metrics up here by name. A metric is called as
`metric(reference, outputs, targets)`: the FP32 model's outputs and the candidate's (output name -> array, all
samples on axis 0) and the data's targets (`trtq.data.ClassLabels`, ..., or None), and returns one float.

Built in: task metrics `top1_accuracy`, `top5_accuracy` (need class labels), `top1_agreement`; fidelity
metrics `cosine`, `snr_db`, `mse`, `max_abs_error`, `mean_abs_error`, `output_noise`, and for embeddings
`neighbour_overlap` (k-nearest-neighbour agreement with FP32); detection `map50_95`, `map50` (COCO, through
pycocotools; need detection targets) and segmentation `miou`. Any registered metric on a single output is
`NAME@OUTPUT` (`cosine@pooler_output`, `max_abs_error@logits`). A plugin adds one with
`@register_metric("name", ...)`; `--metric package.module:function` uses a function without registering it.
"""

from trtq.metrics import classification, detection, embedding, fidelity, segmentation  # noqa: F401  (registers the built-in metrics)
from trtq.metrics.base import (
    METRICS,
    Metric,
    MetricFn,
    Outputs,
    applicable_metrics,
    default_metric,
    for_output,
    get_metric,
    is_known_metric,
    register_metric,
    resolve_metric,
)

__all__ = [
    "METRICS",
    "Metric",
    "MetricFn",
    "Outputs",
    "register_metric",
    "get_metric",
    "resolve_metric",
    "default_metric",
    "applicable_metrics",
    "for_output",
    "is_known_metric",
]
