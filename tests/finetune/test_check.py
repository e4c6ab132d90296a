"""`trtq.finetune.check`: the PyTorch model against its ONNX graph, scored by the metric registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_torch_vs_onnx_scores_through_the_metric_registry(digits: dict, monkeypatch) -> None:
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model
    from trtq.finetune import torch_vs_onnx
    from trtq.metrics import base

    ds = load_data(str(digits["val"]), limit=100, seed=0)
    net = digits["model"].eval()
    graph = export_onnx(resolve_model(net), next(ds.iter_batches(2))[0]).model
    called = []
    real = base.get_metric
    monkeypatch.setattr(base, "get_metric", lambda name: called.append(name) or real(name))
    monkeypatch.setattr("trtq.metrics.get_metric", base.get_metric)
    check = torch_vs_onnx(net, graph, ds.iter_batches(32))
    assert sorted(called) == ["max_abs_error", "mean_abs_error", "top1_agreement"]
    assert check.samples == 100 and check.top1_agreement == 1.0  # FP32 against FP32 (BatchNorm folded)
    with torch.no_grad():
        ref = np.concatenate([net(torch.from_numpy(x)).numpy() for x, _ in ds.iter_batches(32)])
    assert check.max_abs_logit == pytest.approx(float(np.abs(ref).max()))
    # float rounding of the BatchNorm fold only: measured 4e-7 of the largest logit, 250x below the bound
    assert check.max_abs_logit_error < 1e-4 * check.max_abs_logit
    assert check.mean_abs_logit_error <= check.max_abs_logit_error
    assert set(check.to_json()) == {
        "samples", "max_abs_logit_error", "mean_abs_logit_error", "max_abs_logit", "top1_agreement",
    }  # fmt: skip
    with pytest.warns(DeprecationWarning, match="ExportCheck"):
        assert check["samples"] == 100  # the dict access of earlier versions still works, for now
