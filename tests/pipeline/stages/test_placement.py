"""PlacementStage: `ctx.plan` from the configured rules, the placement summary, placement.json where wanted."""

from __future__ import annotations

import json

import pytest

from trtq.config import BuildConfig
from trtq.errors import TrtqError, UsageError
from trtq.pipeline import NamedFiles
from trtq.pipeline.stages import PlacementStage
from trtq.placement import PlacementConfig, plan_qdq


def test_run_plans_with_the_configured_rules_and_summarises(run_context, onnx_graph, tmp_path):
    fp32 = onnx_graph("residual_block")
    config = BuildConfig(placement=PlacementConfig(exclude_nodes=("head",)))
    ctx = run_context(config, fp32=fp32)
    PlacementStage().run(ctx)
    assert ctx.plan == plan_qdq(fp32, config.placement)
    summary = ctx.result.placement
    assert (
        summary.quantized_nodes == 3
        and summary.weight_qdq == 3
        and summary.activation_qdq == len(ctx.plan.activations)
    )
    assert {"node": "head", "op_type": "Conv", "rule": "ExcludedByName"}.items() <= summary.skipped[0].items()
    doc = json.loads(
        (tmp_path / "staging" / "placement.json").read_text()
    )  # a run folder takes every artifact
    assert doc == json.loads(json.dumps(ctx.plan.to_json()))


def test_placement_json_only_where_the_sink_names_it(run_context, onnx_graph, tmp_path):
    ctx = run_context(
        sink=NamedFiles({"model.int8.onnx": tmp_path / "q.onnx"}), fp32=onnx_graph("residual_block")
    )
    PlacementStage().run(ctx)
    assert ctx.plan is not None and list(tmp_path.iterdir()) == [] and ctx.result.artifacts == {}


def test_check_refuses_an_unknown_rule_and_run_needs_the_fp32_model(run_context):
    with pytest.raises(UsageError, match="'SmallConvs' in disable_rules"):
        PlacementStage().check(
            run_context(BuildConfig(placement=PlacementConfig(disable_rules=("SmallConvs",))))
        )
    with pytest.raises(TrtqError, match="the placement stage needs fp32, which no earlier stage produced"):
        PlacementStage().run(run_context())
