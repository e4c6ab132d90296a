"""`PlacementConfig`: rules enabled and disabled by name, validation, the deprecated booleans, JSON form."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from trtq.errors import UsageError
from trtq.placement import PlacementConfig, plan_qdq
from trtq.placement.config import LEGACY_SWITCHES
from trtq.placement.rules import default_rule_names, rule_names


def test_defaults_enable_every_default_rule():
    assert PlacementConfig().enabled_rules() == default_rule_names()


def test_disable_removes_a_rule_and_keeps_the_run_order():
    names = PlacementConfig(disable_rules=("SmallOrGemv", "SmallConv")).enabled_rules()
    assert names == tuple(n for n in default_rule_names() if n not in ("SmallConv", "SmallOrGemv"))


@pytest.mark.parametrize("field", ["enable_rules", "disable_rules"])
def test_an_unknown_rule_name_is_refused_with_the_registered_names(field):
    config = PlacementConfig(**{field: ("SmallConvs",)})
    with pytest.raises(UsageError) as e:
        config.validate()
    msg = str(e.value)
    assert f"placement rule 'SmallConvs' in {field} (--{field[:-1].replace('_', '-')})" in msg
    assert "\n" not in msg and "--plugin" in msg
    assert msg.split("choose from ", 1)[1].startswith(", ".join(rule_names()))
    with pytest.raises(UsageError, match="SmallConvs"):
        config.enabled_rules()


def test_a_rule_both_enabled_and_disabled_is_refused():
    config = PlacementConfig(enable_rules=("SmallConv",), disable_rules=("SmallConv",))
    with pytest.raises(UsageError, match="'SmallConv' is in both enable_rules .* and disable_rules"):
        config.validate()


@pytest.mark.parametrize("rule", ["ExcludedByName", "ExcludedByOpType", "KeepFirstLast"])
def test_rules_of_user_options_cannot_be_disabled(rule):
    with pytest.raises(UsageError, match=f"'{rule}' .* cannot be disabled"):
        PlacementConfig(disable_rules=(rule,)).validate()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_batch_hint_must_be_a_positive_integer(bad):
    with pytest.raises(UsageError, match="batch_hint"):
        PlacementConfig(batch_hint=bad).validate()


def test_one_name_as_a_string_is_one_name_and_lists_become_tuples():
    config = PlacementConfig(exclude_nodes="conv1", disable_rules="SmallConv", enable_rules=["Commuting"])
    assert config.exclude_nodes == ("conv1",)
    assert config.disable_rules == ("SmallConv",) and config.enable_rules == ("Commuting",)
    assert "SmallConv" not in config.enabled_rules()


def test_asdict_and_json_round_trip():
    config = PlacementConfig(
        exclude_nodes=[r"/fc/.*"], exclude_op_types=["Gemm"], disable_rules=("SmallConv",), batch_hint=4
    )
    fields = json.loads(json.dumps(dataclasses.asdict(config)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a config written by this release rebuilds without warnings
        again = PlacementConfig(**fields)
    assert again == config and again.enabled_rules() == config.enabled_rules()


# ---- the deprecated booleans -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "rule"), list(LEGACY_SWITCHES.items()))
def test_legacy_boolean_false_warns_and_becomes_disable_rules(field, rule):
    with pytest.warns(
        DeprecationWarning, match=rf"{field}=False\) is deprecated .* disable_rules=\('{rule}',\)"
    ):
        config = PlacementConfig(**{field: False})
    assert config == PlacementConfig(disable_rules=(rule,)) and getattr(config, field) is None
    assert rule not in config.enabled_rules()
    with pytest.warns(DeprecationWarning), pytest.raises(UsageError, match=f"{field}=False.*enable_rules"):
        PlacementConfig(**{field: False}, enable_rules=(rule,))


@pytest.mark.parametrize(("field", "rule"), list(LEGACY_SWITCHES.items()))
def test_legacy_boolean_true_warns_and_is_the_default(field, rule):
    with pytest.warns(DeprecationWarning, match=f"{field}=True.*{rule} runs by default"):
        config = PlacementConfig(**{field: True})
    assert config == PlacementConfig() and config.enabled_rules() == default_rule_names()
    with pytest.warns(DeprecationWarning), pytest.raises(UsageError, match=f"{field}=True.*disable_rules"):
        PlacementConfig(**{field: True}, disable_rules=(rule,))


def test_a_config_built_with_the_booleans_records_like_one_built_by_name():
    """What cli/_options.py and old report.json / QAT metadata pass today rebuilds to the new form."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        default = PlacementConfig(exclude_nodes=(), skip_small_convs=True, skip_gemv=True)
        small = PlacementConfig(skip_small_convs=False, skip_gemv=False)  # --quantize-small
        old_record = PlacementConfig(**{f: True for f in LEGACY_SWITCHES}, batch_hint=1)
    assert dataclasses.asdict(default) == dataclasses.asdict(PlacementConfig())
    assert small == PlacementConfig(disable_rules=("SmallConv", "SmallOrGemv"))
    assert old_record == PlacementConfig()


def test_legacy_booleans_still_change_the_plan(onnx_graph):
    """The assertions trtq 0.1's tests made with the booleans, unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert not plan_qdq(onnx_graph("concat"), PlacementConfig(concat_shared_scale=False)).scale_groups
        assert "r2_out" not in plan_qdq(onnx_graph("pooling"), PlacementConfig(pooling=False)).activations
        assert (
            "odd"
            in plan_qdq(onnx_graph("small_convs"), PlacementConfig(skip_small_convs=False)).quantized_nodes
        )


def test_legacy_warning_points_at_the_caller():
    with pytest.warns(DeprecationWarning) as record:
        PlacementConfig(pooling=False)
    assert record[0].filename == __file__
