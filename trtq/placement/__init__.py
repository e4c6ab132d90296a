"""Q/DQ placement: where TensorRT can fuse Q/DQ into INT8 kernels, as named rules that say why.

`plan_qdq(model, config)` returns a `QDQPlan`; `trtq.qdq.insert_qdq` applies it with calibrated scales.
"""

from __future__ import annotations

from trtq.placement.graph import GraphIndex, normalize
from trtq.placement.plan import Decision, PlacementConfig, QDQPlan, plan_qdq

__all__ = ["PlacementConfig", "Decision", "QDQPlan", "plan_qdq", "normalize", "GraphIndex"]
