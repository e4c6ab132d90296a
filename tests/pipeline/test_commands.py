"""The stage commands as library calls: each writes only the files it was asked for, and checks its paths first."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from trtq.calibration import Calibration
from trtq.config import BuildConfig, CalibrationConfig, DataConfig
from trtq.errors import UsageError
from trtq.pipeline.commands import (
    calibrate_files,
    export_file,
    load_fp32,
    quantize_files,
    sensitivity_folder,
    validate_files,
)
from trtq.placement import plan_qdq
from trtq.progress import set_quiet
from trtq.qdq import insert_qdq

set_quiet(True)


@pytest.fixture
def model(tmp_path, graph_file):
    """tiny_cnn (16, 32 channels) as m.onnx and 8 random samples as d.npy."""
    path = graph_file("tiny_cnn", tmp_path / "m.onnx", widths=(16, 32))
    np.save(tmp_path / "d.npy", np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32))
    return path, tmp_path / "d.npy"


def test_load_fp32_refuses_a_graph_that_already_has_qdq(tmp_path, onnx_graph):
    fp32 = onnx_graph("conv_relu_conv")
    onnx.save(insert_qdq(fp32, plan_qdq(fp32), {"x": 1.0, "r1": 1.0}), str(tmp_path / "q.onnx"))
    with pytest.raises(
        UsageError, match="q.onnx already has QuantizeLinear/DequantizeLinear nodes; pass the FP32 model"
    ):
        load_fp32(tmp_path / "q.onnx")
    assert load_fp32(fp32) is fp32


def test_export_file_from_a_random_sample_of_the_given_shape(tmp_path, make_model):
    out = tmp_path / "e.onnx"
    result = export_file(BuildConfig(model=make_model("tiny_cnn")), out, shape="3,16,16")
    assert onnx.load(str(out)).graph.input[0].name == "input" and result.export.kind == "module"
    assert result.artifacts == {"model.onnx": out} and sorted(p.name for p in tmp_path.iterdir()) == [
        "e.onnx"
    ]
    with pytest.raises(UsageError, match=r"e.onnx already exists; pass force=True"):
        export_file(BuildConfig(model=make_model("tiny_cnn")), out, shape="3,16,16")
    with pytest.raises(UsageError, match="output .*e.onnx is one of the inputs; choose another path"):
        export_file(BuildConfig(model=str(out), force=True), out)


def test_calibrate_files_writes_json_and_only_the_asked_cache(model, tmp_path):
    path, data = model
    cfg = BuildConfig(model=str(path), data=DataConfig(calib_data=str(data), batch_size=4),
                      calibration=CalibrationConfig(method="minmax"))  # fmt: skip
    ctx = calibrate_files(cfg, tmp_path / "c.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "d.npy", "m.onnx"]
    assert (
        Calibration.load(tmp_path / "c.json").tensors
        == ctx.calibration.tensors
        == plan_qdq(onnx.load(str(path))).activations
    )
    explicit = calibrate_files(cfg, tmp_path / "x.json", trt_cache=tmp_path / "x.cache", tensors="x")
    assert explicit.calibration.tensors == ["x"] and (tmp_path / "x.cache").is_file()
    with pytest.raises(UsageError, match="--tensors names no tensor"):
        calibrate_files(cfg, tmp_path / "y.json", tensors=" , ")
    with pytest.raises(UsageError, match="--calib-data is required"):
        calibrate_files(BuildConfig(model=str(path)), tmp_path / "z.json")


def test_quantize_files_writes_int8_and_on_request_the_typed_graph_and_the_plan(model, tmp_path):
    path, _ = model
    plan = plan_qdq(onnx.load(str(path)))
    Calibration.from_amax({t: 2.0 for t in plan.activations}).save(tmp_path / "c.json")
    ctx = quantize_files(BuildConfig(model=str(path)), tmp_path / "c.json", tmp_path / "q.onnx")
    assert ctx.typed is None and not (tmp_path / "q.trt.onnx").exists()
    ctx = quantize_files(BuildConfig(model=str(path), force=True), tmp_path / "c.json", tmp_path / "q.onnx",
                         trt_out=tmp_path / "q.trt.onnx", plan_out=tmp_path / "p.json")  # fmt: skip
    assert onnx.load(str(tmp_path / "q.trt.onnx")) == ctx.typed
    assert json.loads((tmp_path / "p.json").read_text())["activations"] == plan.activations
    with pytest.raises(UsageError, match="is one of the inputs"):
        quantize_files(BuildConfig(model=str(path), force=True), tmp_path / "c.json", tmp_path / "c.json")


def test_sensitivity_folder_needs_eval_data_and_stages_its_folder(model, tmp_path):
    path, data = model
    plan = plan_qdq(onnx.load(str(path)))
    Calibration.from_amax({t: 2.0 for t in plan.activations}).save(tmp_path / "c.json")
    with pytest.raises(UsageError, match="--eval-data is required"):
        sensitivity_folder(BuildConfig(model=str(path), out=str(tmp_path / "s")), tmp_path / "c.json")
    cfg = BuildConfig(
        model=str(path), out=str(tmp_path / "s"), data=DataConfig(eval_data=str(data), batch_size=4)
    )
    ctx = sensitivity_folder(cfg, tmp_path / "c.json")
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [
        ".trtq-run",
        "placement.json",
        "sensitivity.json",
        "sensitivity.md",
        "sensitivity.png",
    ]  # no budget: no mixed model
    assert ctx.result.sensitivity.sensitivity is not None and ctx.result.sensitivity.fallback is None


def test_validate_files_compares_two_onnx_files_and_writes_the_document(tmp_path, graph_file):
    ref = graph_file("linear_classifier", tmp_path / "ref.onnx")
    cand = graph_file("linear_classifier", tmp_path / "cand.onnx", qdq=True)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((6, 3, 4, 4)).astype(np.float32))
    cfg = BuildConfig(data=DataConfig(eval_data=str(tmp_path / "x.npy"), batch_size=3))
    doc = validate_files(cfg, cand, ref, out=str(tmp_path / "v.json"))
    assert doc["model"] == str(cand) and doc["reference_artifact"] == str(ref) and doc["samples"] == 6
    assert doc["pass"] is doc["polygraphy"]["candidate"] is True
    assert json.loads((tmp_path / "v.json").read_text()) == json.loads(json.dumps(doc))
    with pytest.raises(UsageError, match="v.json already exists"):
        validate_files(cfg, cand, ref, out=str(tmp_path / "v.json"))
    two = graph_file("two_inputs", tmp_path / "two.onnx")
    with pytest.raises(UsageError, match="two.onnx has 2 inputs; trtq validate feeds models with one input"):
        validate_files(cfg, two, two)
