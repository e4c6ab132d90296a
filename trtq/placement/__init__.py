"""Q/DQ placement: where TensorRT can fuse Q/DQ into INT8 kernels, as named rules that say why.

`plan_qdq(model, config)` returns a `QDQPlan`; `trtq.qdq.insert_qdq` applies it with calibrated scales.
The rules live in the registry `RULES` (`trtq.placement.rules`); `PlacementConfig(disable_rules=...)`
and `enable_rules=...` choose which run, and `@register_rule` adds one from a plugin.
"""

from __future__ import annotations

from trtq.placement.config import PlacementConfig
from trtq.placement.graph import GraphIndex, normalize
from trtq.placement.plan import Decision, QDQPlan, plan_qdq
from trtq.placement.rules import RULES, register_rule

__all__ = [
    "PlacementConfig",
    "Decision",
    "QDQPlan",
    "plan_qdq",
    "normalize",
    "GraphIndex",
    "RULES",
    "register_rule",
]
