"""`trtq.finetune.calibrate`: the initial ranges come from trtq's calibrators, one range per tensor."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.finetune.helpers import RUN
from trtq.errors import UsageError


def test_initial_ranges_come_from_the_trtq_calibrator(digits: dict, outlier_run) -> None:
    amax = outlier_run.metrics["calibration"]["amax"]
    # independent reference: max |x| of the FP32 model's conv2 input over the same calibration subset
    from trtq.data import load_data

    ds = load_data(str(digits["train"]), limit=RUN["calib_samples"], seed=0)
    seen = []
    net = copy.deepcopy(digits["outlier"]).eval()
    net.conv2[0].register_forward_pre_hook(lambda _m, a: seen.append(a[0].abs().max().item()))
    with torch.no_grad():
        for x, _ in ds.iter_batches(32):
            net(torch.from_numpy(x))
    assert amax["/conv1/conv1.2/Relu_output_0"] == pytest.approx(max(seen), rel=1e-6)
    # one range per tensor the plan quantizes (the global-pool input included)
    assert set(amax) == {
        "input",
        "/stem/stem.2/Relu_output_0",
        "/conv1/conv1.2/Relu_output_0",
        "/pool/MaxPool_output_0",
        "/conv3/conv3.2/Relu_output_0",
    }


def test_method_parameters_reach_the_calibrator() -> None:
    from trtq.finetune.calibrate import make_calibrator

    assert make_calibrator("percentile", 99.0).percentile == 99.0
    assert make_calibrator("percentile", 99.0, {"percentile": 99.9}).percentile == 99.9  # params win
    assert make_calibrator("max").__class__.__name__ == "MinMaxCalibrator"  # aliases resolve
    with pytest.raises(UsageError, match="kl"):
        make_calibrator("kl")
