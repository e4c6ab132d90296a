"""The run context and its sinks: where each artifact goes, which ones are written at all, timings, `need`."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from trtq.config import BuildConfig
from trtq.errors import TrtqError
from trtq.pipeline import Clock, InMemory, NamedFiles, RunContext, RunFolder
from trtq.pipeline.inputs import Inputs
from trtq.pipeline.results import BuildResult


def _ctx(sink) -> RunContext:
    return RunContext(config=BuildConfig(), sink=sink, result=BuildResult(out_dir=None),
                      inputs=Inputs(None, None, None, None, None))  # fmt: skip


def test_named_files_writes_only_the_named_artifacts(tmp_path, onnx_graph):
    sink = NamedFiles({"model.int8.onnx": tmp_path / "q.onnx", "calibration.cache": None})
    ctx = _ctx(sink)
    model = onnx_graph("conv_relu")
    assert ctx.write_onnx("model.int8.onnx", model) == tmp_path / "q.onnx"
    assert ctx.write_json("calibration.json", {"a": 1}) is None
    assert ctx.write_bytes("calibration.cache", b"x") is None
    assert ctx.write_text("report.md", "# r") is None
    assert [p.name for p in tmp_path.iterdir()] == ["q.onnx"] and onnx.load(str(tmp_path / "q.onnx")) == model
    assert ctx.result.artifacts == {"model.int8.onnx": tmp_path / "q.onnx"}
    assert ctx.wants("model.int8.onnx") and not ctx.wants("calibration.json")


def test_named_files_sends_the_rest_to_a_folder_unless_named_none(tmp_path):
    sink = NamedFiles(
        {"calibration.json": str(tmp_path / "c.json"), "calibration.cache": None}, folder=tmp_path / "plots"
    )
    assert sink.path("calib_x.png") == tmp_path / "plots" / "calib_x.png"
    assert sink.path("calibration.cache") is None and sink.final("calibration.cache") == Path(
        "calibration.cache"
    )
    ctx = _ctx(sink)
    ctx.write_bytes("calib_x.png", b"\x89PNG")
    assert (tmp_path / "plots" / "calib_x.png").read_bytes() == b"\x89PNG"
    assert (
        ctx.artifact_path("calibration.json") == tmp_path / "c.json"
        and "calibration.json" in ctx.result.artifacts
    )


def test_run_folder_writes_into_staging_and_records_final_paths(tmp_path):
    staging, out = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    ctx = _ctx(RunFolder(staging, out))
    ctx.write_json("report.json", {"x": float("nan")})
    ctx.write_text("report.md", "# report\n")
    assert json.loads((staging / "report.json").read_text()) == {"x": None}  # strict JSON through trtq.files
    assert (staging / "report.md").read_text() == "# report\n"
    assert ctx.result.artifacts == {"report.json": out / "report.json", "report.md": out / "report.md"}
    assert ctx.wants("anything") and not out.exists()


def test_in_memory_writes_nothing_but_says_what_is_wanted(tmp_path):
    ctx = _ctx(InMemory(frozenset({"model.trt.onnx"})))
    assert ctx.wants("model.trt.onnx") and not ctx.wants("model.int8.onnx")
    assert ctx.write_text("model.trt.onnx", "x") is None and ctx.result.artifacts == {}
    assert InMemory().final("a.onnx") == Path("a.onnx")


def test_need_names_the_stage_and_what_is_missing():
    ctx = _ctx(InMemory())
    with pytest.raises(
        TrtqError, match="^the quantize stage needs calibration, which no earlier stage produced$"
    ):
        ctx.need("calibration", "quantize")
    ctx.plan = "a plan"
    assert ctx.need("plan", "quantize") == "a plan"


def test_clock_adds_time_per_step_even_when_the_step_fails():
    timings: dict[str, float] = {"export": 1.0}
    clock = Clock(timings)
    with clock("export"):
        pass
    with pytest.raises(ValueError), clock("calibrate"):
        raise ValueError
    assert (
        timings["export"] >= 1.0 and timings["calibrate"] >= 0.0 and set(timings) == {"export", "calibrate"}
    )
    ctx = _ctx(InMemory())
    with ctx.clock("x"):
        pass
    assert "x" in ctx.result.timings
