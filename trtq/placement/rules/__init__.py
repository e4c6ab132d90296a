"""Placement rules: small named classes, each deciding one thing and saying why, registered by name.

`base` defines the three kinds (`WeightedRule`, `PatternRule`, `PostPassRule`), the registry `RULES` and
`@register_rule`; `weighted`, `patterns`, `transformer` and `detection` hold the built-in rules. Importing this package registers them.
`PlacementConfig(enable_rules=..., disable_rules=...)` chooses which rules `plan_qdq` runs.
"""

from __future__ import annotations

from trtq.placement.rules.base import (
    DEFAULT_ORDER,
    KINDS,
    RULES,
    PatternRule,
    PlacementContext,
    PlanView,
    PostPassRule,
    Rule,
    Verdict,
    WeightedRule,
    default_pattern_rules,
    default_rule_names,
    default_weighted_rules,
    make_rules,
    register_rule,
    rule_names,
)
from trtq.placement.rules.detection import (
    ConcatThroughResize,
    DetectionHead,
    DetectionPostprocess,
    NeckResizeConcat,
    head_concats,
    head_region,
)
from trtq.placement.rules.patterns import (
    Commuting,
    ConcatSharedScale,
    Int8Elementwise,
    PoolingChain,
    ResidualAdd,
    concat_scale_groups,
)
from trtq.placement.rules.transformer import (
    AttentionMatMul,
    KeepAttentionFP16,
    TransformerHighPrecision,
    attention_role,
)
from trtq.placement.rules.weighted import (
    ExcludedByName,
    ExcludedByOpType,
    KeepFirstLast,
    NonConstantWeight,
    SmallConv,
    SmallOrGemv,
    weight_axis,
    weight_input,
)

__all__ = [
    "PlacementContext",
    "WeightedRule",
    "ExcludedByName",
    "ExcludedByOpType",
    "KeepFirstLast",
    "NonConstantWeight",
    "SmallConv",
    "SmallOrGemv",
    "weight_axis",
    "weight_input",
    "default_weighted_rules",
    "Verdict",
    "PlanView",
    "PatternRule",
    "ResidualAdd",
    "Int8Elementwise",
    "PoolingChain",
    "Commuting",
    "default_pattern_rules",
    "concat_scale_groups",
    "AttentionMatMul",
    "KeepAttentionFP16",
    "TransformerHighPrecision",
    "attention_role",
    "DetectionHead",
    "DetectionPostprocess",
    "NeckResizeConcat",
    "ConcatThroughResize",
    "head_concats",
    "head_region",
    "Rule",
    "PostPassRule",
    "ConcatSharedScale",
    "KINDS",
    "DEFAULT_ORDER",
    "RULES",
    "register_rule",
    "rule_names",
    "default_rule_names",
    "make_rules",
]
