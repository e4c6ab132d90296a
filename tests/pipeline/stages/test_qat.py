"""QATGraphStage and its helpers: a Q/DQ graph from `trtq qat` taken as the INT8 model, checked against PTQ's plan."""

from __future__ import annotations

import json

import onnx
import pytest

from tests.pipeline.stages.conftest import arrays
from trtq.errors import TrtqError, UsageError
from trtq.pipeline.stages import QATGraphStage
from trtq.pipeline.stages.qat import (
    QAT_METADATA_KEY,
    load_qat_graphs,
    placement_from_metadata,
    read_qat_metadata,
)
from trtq.placement import PlacementConfig, plan_qdq
from trtq.qdq import insert_qdq


def _qdq(
    fp32: onnx.ModelProto, config: PlacementConfig | None = None, meta: dict | None = None
) -> onnx.ModelProto:
    plan = plan_qdq(fp32, config)
    q = insert_qdq(fp32, plan, {t: 2.0 for t in plan.activations})
    if meta is not None:
        onnx.helper.set_model_props(q, {QAT_METADATA_KEY: json.dumps(meta)})
    return q


def test_read_qat_metadata(fp32):
    assert read_qat_metadata(fp32) == {}
    meta = {"calib": "entropy", "placement": {"exclude_nodes": ["/2/Conv"]}}
    assert read_qat_metadata(_qdq(fp32, meta=meta)) == meta
    broken = _qdq(fp32)
    onnx.helper.set_model_props(broken, {QAT_METADATA_KEY: "{not json"})
    assert read_qat_metadata(broken) == {}


def test_placement_from_metadata_given_recorded_or_default():
    given = PlacementConfig(keep_first_last=True)
    assert placement_from_metadata({"placement": {"exclude_nodes": ["a"]}}, given) is given
    recorded = placement_from_metadata({"placement": {"exclude_nodes": ["a"], "from_the_future": 1}}, None)
    assert recorded == PlacementConfig(exclude_nodes=("a",))  # unknown keys of a newer trtq are dropped
    assert placement_from_metadata({}, None) == PlacementConfig()


def test_load_qat_graphs_finds_model_onnx_beside_and_refuses_what_is_not_qdq(fp32, tmp_path):
    onnx.save(fp32, str(tmp_path / "model.onnx"))
    onnx.save(_qdq(fp32), str(tmp_path / "model.qat.onnx"))
    qat, path, ref = load_qat_graphs(tmp_path / "model.qat.onnx", None)
    assert path == tmp_path / "model.qat.onnx" and ref == fp32
    with pytest.raises(UsageError, match="no QuantizeLinear nodes; it is not a Q/DQ graph"):
        load_qat_graphs(tmp_path / "model.onnx", None)
    with pytest.raises(UsageError, match="the FP32 model is needed: pass it .* as --fp32-onnx"):
        load_qat_graphs(_qdq(fp32), None)
    with pytest.raises(UsageError, match="QAT model .*nope.onnx does not exist"):
        load_qat_graphs(tmp_path / "nope.onnx", fp32)


def test_run_takes_the_graph_as_int8_and_checks_the_placement(run_context, fp32, tmp_path):
    qat = _qdq(fp32, meta={"calib": "minmax"})
    ctx = run_context(eval=arrays(4, labels=True), sample=arrays(2).array)
    stage = QATGraphStage(qat=qat, fp32=fp32, qat_metrics={"accuracy": {"samples": 4}})
    stage.check(ctx)
    stage.run(ctx)
    assert ctx.int8 == qat and ctx.fp32 == fp32 and ctx.calibration is None
    assert onnx.load(str(tmp_path / "staging" / "model.int8.onnx")) == qat
    assert (
        ctx.result.calibration.source == "qat"
        and ctx.result.calibration.method == "qat (minmax initial scales)"
    )
    assert ctx.result.placement.qat_check["matches"] is True
    section = ctx.result.sections[0]
    assert section.title == "QAT" and section.key == "qat" and section.data["accuracy"] == {"samples": 4}


def test_foreign_placement_is_reported_or_refused_when_strict(run_context, fp32):
    qat = _qdq(fp32, PlacementConfig(exclude_nodes=("/2/Conv",)))
    ctx = run_context(sample=arrays(2).array)
    stage = QATGraphStage(qat=qat, fp32=fp32)
    stage.check(ctx)
    stage.run(ctx)
    assert ctx.result.placement.qat_check["matches"] is False
    strict = QATGraphStage(qat=qat, fp32=fp32, strict=True)
    strict.check(ctx)
    with pytest.raises(TrtqError):
        strict.run(ctx)


def test_check_refuses_data_the_graphs_cannot_take(run_context, fp32):
    ctx = run_context(sample=arrays(2).array[:, :1])
    with pytest.raises(UsageError, match="--eval-data"):
        QATGraphStage(qat=_qdq(fp32), fp32=fp32).check(ctx)
