"""What a run folder shows: calibration histograms even with one method, and the trtexec / Polygraphy hand-off."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import trtq
from trtq.calibrators.plot import clipping, plot_order


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1)
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One entropy build of a small CNN (no TensorRT here: the engine step records the hand-off only)."""
    tmp_path = tmp_path_factory.mktemp("run")
    data = np.random.default_rng(0).standard_normal((24, 16, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    return tmp_path, trtq.build(_model(), tmp_path / "calib.npy", tmp_path / "run", calib="entropy")


def test_one_method_run_draws_the_widest_clipped_tensors(run):
    tmp_path, result = run
    plots = sorted(p.name for p in (tmp_path / "run").glob("calib_*.png"))
    assert plots, "a one-method run must still draw calibration histograms"
    assert all((tmp_path / "run" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
    report = (tmp_path / "run" / "report.md").read_text()
    assert all(f"![{p}]({p})" in report for p in plots)
    assert result.calibration.method == "entropy"


def test_one_method_order_is_by_how_much_of_the_range_is_clipped():
    from trtq.calibration import calibrate

    rng = np.random.default_rng(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 1), torch.nn.ReLU())
    from trtq.export import export_onnx

    sample = rng.standard_normal((2, 16, 4, 4)).astype(np.float32)
    onnx_model = export_onnx(model, sample).model
    names = [i.name for i in onnx_model.graph.input] + [onnx_model.graph.node[-1].output[0]]
    feeds = [{"input": rng.standard_normal((8, 16, 4, 4)).astype(np.float32)} for _ in range(3)]
    cal = calibrate(onnx_model, feeds, names, ["entropy"])
    score = clipping(cal)
    assert all(v >= 1.0 for v in score.values())
    assert plot_order(cal) == sorted(cal.tensors, key=lambda t: -score[t])


def test_report_hands_off_to_trtexec_and_polygraphy(run):
    """report.json and report.md carry commands that parse against each TensorRT version's real trtexec options."""
    from tests.engines.trtexec_options import VERSIONS, parse_trtexec

    tmp_path, _ = run
    doc = json.loads((tmp_path / "run" / "report.json").read_text())
    cmds = doc["engine"]["handoff"]
    report = (tmp_path / "run" / "report.md").read_text()
    trtexec = [c for c in cmds if c["tool"] == "trtexec"]
    assert {c["target"] for c in trtexec} == set(VERSIONS.values())
    for c in cmds:
        assert c["command"] in report
    for c in trtexec:
        for version, target in VERSIONS.items():
            if target == c["target"]:
                parsed = parse_trtexec(c["command"], version)
                assert (
                    parsed["--minShapes"] == "input:1x16x8x8" and parsed["--maxShapes"] == "input:32x16x8x8"
                )
