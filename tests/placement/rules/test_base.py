"""The rule registry: names, kinds, order, `@register_rule`, and rules that plugins register from outside trtq."""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trtq.errors import UsageError
from trtq.placement import PlacementConfig, plan_qdq
from trtq.placement.rules import (
    KINDS,
    RULES,
    PatternRule,
    PostPassRule,
    WeightedRule,
    default_pattern_rules,
    default_rule_names,
    default_weighted_rules,
    make_rules,
    register_rule,
    rule_names,
)
from trtq.plugins import load_plugins

DOCS = Path(__file__).resolve().parents[3] / "docs" / "placement.md"

BUILT_IN = [
    "ExcludedByName",
    "ExcludedByOpType",
    "KeepFirstLast",
    "DetectionHead",
    "NonConstantWeight",
    "KeepAttentionFP16",
    "AttentionMatMul",
    "SmallConv",
    "SmallOrGemv",
    "DetectionPostprocess",
    "TransformerHighPrecision",
    "ResidualAdd",
    "Int8Elementwise",
    "PoolingChain",
    "Commuting",
    "NeckResizeConcat",
    "ConcatSharedScale",
    "ConcatThroughResize",
]
#: Built-in rules that run only when enabled by name.
OPT_IN = ["KeepAttentionFP16"]
DEFAULTS = [n for n in BUILT_IN if n not in OPT_IN]


def test_built_in_rules_run_in_todays_order_and_all_but_the_opt_in_ones_by_default():
    assert rule_names() == BUILT_IN
    assert default_rule_names() == tuple(DEFAULTS)
    assert [r.name for r in default_weighted_rules()] == DEFAULTS[:8]
    assert [r.name for r in default_pattern_rules()] == DEFAULTS[8:15]
    assert [r.name for r in make_rules(PostPassRule, BUILT_IN)] == [
        "ConcatSharedScale",
        "ConcatThroughResize",
    ]
    assert rule_names(PatternRule) == BUILT_IN[9:16]


def test_every_rule_has_a_docstring_a_kind_and_a_unique_name():
    classes = [RULES.get(n) for n in RULES.names()]
    assert [c.name for c in classes] == RULES.names()
    assert len({c.name for c in classes}) == len(classes) == len(set(classes))
    for cls in classes:
        assert (cls.__dict__.get("__doc__") or "").strip(), f"{cls.name} has no docstring"
        assert cls.kind in KINDS
        assert not issubclass(cls, PatternRule) or cls.op_types


def test_only_the_user_option_rules_cannot_be_disabled():
    fixed = [n for n in rule_names() if not RULES.get(n).switchable]
    assert fixed == ["ExcludedByName", "ExcludedByOpType", "KeepFirstLast"]
    vetoes = [r.name for r in default_weighted_rules() if r.vetoes_patterns]
    assert vetoes == ["ExcludedByName", "ExcludedByOpType"]


def test_docs_list_every_rule_with_its_default():
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(\w+)` \| (yes|no|always) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    assert set(rows) == set(BUILT_IN)
    for name, default in rows.items():
        cls = RULES.get(name)
        assert default == ("always" if not cls.switchable else "yes" if cls.default else "no"), name


def test_register_rule_refuses_what_could_never_run():
    class NotARule:
        """Not a rule."""

    class NoOps(PatternRule):
        """Lists no op types."""

    with pytest.raises(TypeError, match="WeightedRule, PatternRule or PostPassRule"):
        register_rule("NotARule")(NotARule)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="lists no op_types"):
        register_rule()(NoOps)
    with pytest.raises(ValueError, match="'SmallConv' is registered twice"):

        @register_rule("SmallConv")
        class Again(WeightedRule):
            """A second SmallConv."""

    with pytest.raises(ValueError, match="class SmallConv is registered twice"):
        register_rule("SmallConv2")(RULES.get("SmallConv"))
    assert rule_names() == BUILT_IN


def test_bare_decorator_uses_the_class_name():
    try:

        @register_rule
        class BareRule(WeightedRule):
            """Objects to nothing."""

            def check(self, node, ctx):
                return None

        assert RULES.get("BareRule") is BareRule and BareRule.name == "BareRule" and BareRule.default
        assert rule_names(WeightedRule)[-1] == "BareRule"  # DEFAULT_ORDER: after the built-ins
    finally:
        RULES.unregister("BareRule")


# ---- plugins ------------------------------------------------------------------------------------------------

PLUGIN = '''
"""Placement rules a user writes in their own package."""

from trtq.placement.rules import PatternRule, Verdict, WeightedRule, register_rule


@register_rule("KeepConv2", default=False)
class KeepConv2(WeightedRule):
    """Keeps conv2 in high precision."""

    def check(self, node, ctx):
        return "conv2 stays in FP16 (plugin)" if node.name == "conv2" else None


@register_rule("EarlyOdd", default=False, order=450)
class EarlyOdd(WeightedRule):
    """Objects to the conv named odd, before SmallConv (order 500) looks at it."""

    def check(self, node, ctx):
        return "odd (early plugin)" if node.name == "odd" else None


@register_rule("LateOdd", default=False)
class LateOdd(WeightedRule):
    """Objects to the conv named odd, after every built-in rule."""

    def check(self, node, ctx):
        return "odd (late plugin)" if node.name == "odd" else None


@register_rule("AddsStayFP", default=False, order=50)
class AddsStayFP(PatternRule):
    """Every Add stays in high precision (runs before ResidualAdd)."""

    op_types = ("Add",)

    def apply(self, node, ctx, view):
        return Verdict([], "Adds stay FP (plugin)")


@register_rule("TouchHead")
class TouchHead(WeightedRule):
    """On by default: keeps a node named plugin_head in high precision."""

    def check(self, node, ctx):
        return "plugin head" if node.name == "plugin_head" else None
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A plugin module outside trtq, loaded the way `--plugin MODULE` loads one; unregistered afterwards."""
    name = f"rule_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins([name], entry_points=False, env=False)
    try:
        yield name
    finally:
        for rule in [n for n in RULES.names() if RULES.get(n).__module__ == name]:
            RULES.unregister(rule)
        sys.modules.pop(name, None)


def test_a_plugin_rule_registers_like_a_built_in(plugin):
    assert rule_names(WeightedRule) == [
        "ExcludedByName",
        "ExcludedByOpType",
        "KeepFirstLast",
        "DetectionHead",
        "NonConstantWeight",
        "KeepAttentionFP16",
        "AttentionMatMul",
        "EarlyOdd",  # order 450, registered after AttentionMatMul
        "SmallConv",
        "SmallOrGemv",
        "KeepConv2",  # no order: after the built-ins, in registration order
        "LateOdd",
        "TouchHead",
    ]
    assert rule_names(PatternRule)[0] == "AddsStayFP"
    assert "TouchHead" in default_rule_names() and "KeepConv2" not in default_rule_names()


def test_a_default_false_plugin_rule_acts_only_when_enabled_by_name(plugin, onnx_graph):
    m = onnx_graph("residual_block")
    default = plan_qdq(m)
    assert "conv2" in default.quantized_nodes and "KeepConv2" not in default.enabled_rules
    enabled = plan_qdq(m, PlacementConfig(enable_rules=("KeepConv2",)))
    d = enabled.decision_for("conv2")
    assert (d.rule, d.quantized, d.reason) == ("KeepConv2", False, "conv2 stays in FP16 (plugin)")
    assert "relu1_out" not in enabled.activations
    assert not enabled.decision_for("add").quantized  # ResidualAdd sees conv2 in high precision
    assert "KeepConv2" in enabled.enabled_rules


def test_plugin_rules_run_at_their_order(plugin, onnx_graph):
    m = onnx_graph("small_convs")
    assert plan_qdq(m).decision_for("odd").rule == "SmallConv"
    assert plan_qdq(m, PlacementConfig(enable_rules=("EarlyOdd",))).decision_for("odd").rule == "EarlyOdd"
    assert plan_qdq(m, PlacementConfig(enable_rules=("LateOdd",))).decision_for("odd").rule == "SmallConv"
    late = plan_qdq(m, PlacementConfig(enable_rules=("LateOdd",), disable_rules=("SmallConv",)))
    assert late.decision_for("odd").rule == "LateOdd"


def test_a_plugin_pattern_rule_takes_its_candidates_before_later_rules(plugin, onnx_graph):
    plan = plan_qdq(onnx_graph("residual_block"), PlacementConfig(enable_rules=("AddsStayFP",)))
    d = plan.decision_for("add")
    assert (d.rule, d.quantized) == ("AddsStayFP", False)
    assert plan.consumers["stem_relu_out"] == ["conv1"]


def test_a_plugin_rule_disabled_by_name_is_gone_and_unknown_once_unregistered(plugin):
    assert "TouchHead" in PlacementConfig().enabled_rules()
    assert "TouchHead" not in PlacementConfig(disable_rules=("TouchHead",)).enabled_rules()
    RULES.unregister("TouchHead")
    with pytest.raises(UsageError, match="'TouchHead' in disable_rules .* is not registered"):
        PlacementConfig(disable_rules=("TouchHead",)).validate()


def test_scale_groups_merge_transitively_in_plan_order_and_drop_singletons() -> None:
    from trtq.placement.rules.base import ScaleGroups

    groups = ScaleGroups()
    groups.join("c", "a")
    groups.join("d", "c")  # d joins a's group through c
    groups.join("e", "f")
    groups.join("x", "g")  # x is not an activation of the plan: g stays alone
    assert groups.groups(["a", "b", "c", "d", "e", "f", "g"]) == [["a", "c", "d"], ["e", "f"]]
    assert groups.groups(["f", "e", "d", "c", "a"]) == [["f", "e"], ["d", "c", "a"]]
