"""`trtq.finetune.run`: the output folder of a run, and the hand-off into the build path."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from tests.finetune.helpers import HAS_TYPED
from trtq.errors import TrtqError


def test_artifacts_and_handoff_run_folder(outlier_run) -> None:
    out = outlier_run.out_dir
    for name in ("model.onnx", "model.ptq.onnx", "model.qat.onnx", "metrics.json", "training_curves.png"):
        assert (out / name).is_file(), name
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(str(out / "checkpoints" / "best.pt"), weights_only=True)
    assert any(k.endswith("input_quantizer._amax") for k in state)
    run = outlier_run.build
    assert run.out_dir == out / "run"
    assert (out / "run" / "model.int8.onnx").read_bytes() == (out / "model.qat.onnx").read_bytes()
    assert (out / "run" / "model.trt.onnx").is_file() == HAS_TYPED
    assert run.placement.qat_check["matches"]
    report = (out / "run" / "report.md").read_text()
    section = report.split("## QAT\n", 1)[1].split("\n## ", 1)[0]
    acc = outlier_run.metrics["accuracy"]
    for key in ("fp32", "ptq", "qat"):
        assert f"{100 * acc[key]['top1']:.2f}%" in section
    assert "matches PTQ" in section and "qat_curves.png" in section
    assert json.loads((out / "run" / "report.json").read_text())["qat"]["accuracy"] == acc
    assert set(outlier_run.timings) == {
        "prepare",
        "ptq_export",
        "train",
        "export_and_check",
        "total",
        "handoff",
    }


def test_build_from_qat_reads_settings_from_the_graph_and_flags_foreign_placement(
    outlier_run, digits, tmp_path: Path
) -> None:
    from trtq.finetune import read_qat_metadata
    from trtq.pipeline import build_from_qat

    qat_path = outlier_run.artifacts["model.qat.onnx"]
    meta = read_qat_metadata(onnx.load(qat_path))
    assert meta["calib"] == "minmax" and meta["placement"]["exclude_nodes"] == []
    res = build_from_qat(
        qat_path, None, str(digits["val"]), tmp_path / "run", typed_graph=False, build_engine=False
    )
    # the same graph on the same data in the same runtime: exactly the QAT run's number
    assert res.validation.value("int8", "top1_accuracy") == outlier_run.metrics["accuracy"]["qat"]["top1"]
    # the PTQ graph is a valid Q/DQ graph too, but another placement than a plan excluding conv2
    from trtq.placement import PlacementConfig

    other = PlacementConfig(exclude_nodes=("/conv2/conv2.0/Conv",))
    with pytest.raises(TrtqError, match="placement differs"):
        build_from_qat(qat_path, None, str(digits["val"]), tmp_path / "strict", placement=other, strict=True,
                       typed_graph=False, build_engine=False)  # fmt: skip
    lax = build_from_qat(qat_path, None, str(digits["val"]), tmp_path / "lax", placement=other,
                         typed_graph=False, build_engine=False)  # fmt: skip
    assert lax.placement.qat_check["extra"] == ["/conv1/conv1.2/Relu_output_0"]
    assert "differs from PTQ" in (tmp_path / "lax" / "report.md").read_text()
