"""Every run folder that calibrated from data shows calibration histograms, even with one method."""

from __future__ import annotations

import numpy as np
import torch

import trtq
from trtq.calibrators.plot import clipping, plot_order


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1)
    )


def test_one_method_run_draws_the_widest_clipped_tensors(tmp_path):
    data = np.random.default_rng(0).standard_normal((24, 16, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    result = trtq.build(
        _model(), tmp_path / "calib.npy", tmp_path / "run", calib="entropy", build_engine=False
    )
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
