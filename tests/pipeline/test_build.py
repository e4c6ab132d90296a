"""`trtq.build` end to end on real data (scikit-learn digits) and on a torchvision CNN with an image folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.placement.checks import dq_fed
from trtq.errors import UsageError
from trtq.pipeline import build, ptq_stages, qat_stages
from trtq.pipeline.stages import QATGraphStage


def test_digits_build_end_to_end(digits_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ts, calib, val = digits_files
    res = build(str(ts), calib_data=calib, eval_data=val, out=tmp_path / "run", calib="entropy")
    for name in ("model.onnx", "calibration.json", "model.int8.onnx", "model.trt.onnx",
                 "report.json", "report.md"):  # fmt: skip
        assert (tmp_path / "run" / name).is_file(), name
    assert not (tmp_path / "run" / "calibration.cache").exists()  # written on request only (trt_cache=True)
    int8 = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    onnx.checker.check_model(int8, full_check=True)
    # every Conv/Gemm reads weight and input through DQ, unless placement says why not
    skipped = {s["node"] for s in res.placement.skipped}
    weighted = {n.name for n in int8.graph.node if n.op_type in ("Conv", "Gemm")}
    assert weighted - skipped == dq_fed(int8)
    assert len(dq_fed(int8)) >= 4
    val = res.validation
    fp32_top1, int8_top1 = val.value("fp32", "top1_accuracy"), val.value("int8", "top1_accuracy")
    assert fp32_top1 > 0.9  # real accuracy of a trained model on held-out digits
    assert abs(fp32_top1 - int8_top1) <= 0.02
    assert val.value("int8", "top1_agreement") >= 0.97
    assert "engine" in res.engine_status and "TensorRT" in res.engine_status
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["validation"]["models"]["int8"]["top1_accuracy"] == int8_top1
    assert report["config"]["calibration"]["method"] == "entropy"
    md = (tmp_path / "run" / "report.md").read_text()
    assert "INT8 (model.int8.onnx)" in md and f"{100 * int8_top1:.2f}%" in md
    assert not list(tmp_path.glob(".run.partial-*"))


def test_build_is_deterministic(digits_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ts, calib, val = digits_files
    for name in ("a", "b"):
        build(
            str(ts),
            calib_data=calib,
            out=tmp_path / name,
            calib="minmax",
            typed_graph=False,
            calib_samples=64,
            trt_cache=True,
        )
    for art in ("model.onnx", "model.int8.onnx", "calibration.json", "calibration.cache"):
        assert (tmp_path / "a" / art).read_bytes() == (tmp_path / "b" / art).read_bytes(), art


def test_resnet18_random_init_with_an_image_folder(tmp_path: Path, image_folder) -> None:
    image_folder("imgs", classes=2, per_class=4, size=72)
    res = build("resnet18", calib_data=tmp_path / "imgs", out=tmp_path / "r18", preprocess={"size": 64,
                "resize": 72}, typed_graph=False)  # fmt: skip
    int8 = onnx.load(str(res.int8_onnx))
    assert len(dq_fed(int8)) >= 19  # 20 convs + fc; ModelOpt-style rules may skip the 3-channel stem
    assert res.validation.samples == 8
    skipped = {s["node"]: s["rule"] for s in res.placement.skipped if s["op_type"] in ("Conv", "Gemm")}
    assert skipped == {"/fc/Gemm": "SmallOrGemv"}  # the classifier is matrix-vector at batch 1


def test_onnx_with_an_unquantizable_op_is_built_and_the_op_listed(tmp_path: Path, graph_file) -> None:
    graph_file("dynamic_weight_conv", tmp_path / "m.onnx")
    np.save(tmp_path / "d.npy", np.random.default_rng(1).standard_normal((8, 16, 8, 8)).astype(np.float32))
    res = build(str(tmp_path / "m.onnx"), calib_data=tmp_path / "d.npy", out=tmp_path / "r", calib="minmax")
    skipped = {s["node"]: s for s in res.placement.skipped}
    assert "conv_dynamic_weight" in skipped and "weight" in skipped["conv_dynamic_weight"]["reason"]
    int8 = onnx.load(str(res.int8_onnx))
    assert dq_fed(int8) == {"conv_static_weight"}
    assert "conv_dynamic_weight" in (tmp_path / "r" / "report.md").read_text()


def test_the_stage_lists_in_order():
    assert [s.name for s in ptq_stages()] == [
        "export", "task", "smoothquant", "equalize", "placement", "calibrate", "weights", "sensitivity", "quantize", "typed_graph", "validate", "engine",
        "report",
    ]  # fmt: skip
    qat = QATGraphStage(qat="model.qat.onnx")
    stages = qat_stages(qat)
    assert stages[0] is qat and [s.name for s in stages[1:]] == [
        "task",
        "typed_graph",
        "validate",
        "engine",
        "report",
    ]


def test_settings_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown setting 'calibration_method'"):
        build("resnet18", calib_data=tmp_path, out=tmp_path / "r", calibration_method="entropy")
    with pytest.raises(UsageError, match="--max-drop -1"):
        build("resnet18", calib_data=tmp_path, out=tmp_path / "r", max_drop=-1)
    with pytest.raises(UsageError, match="--calib-data is required"):
        build("resnet18", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
