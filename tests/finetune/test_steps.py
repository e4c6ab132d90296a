"""`trtq.finetune.steps`: the accuracy step scores every model through the metric registry."""

from __future__ import annotations

import pytest


def test_onnx_accuracy_goes_through_the_metric_registry(digits: dict, monkeypatch) -> None:
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model
    from trtq.finetune.steps import onnx_accuracy
    from trtq.metrics import base

    val = load_data(str(digits["val"]), limit=100, seed=0)
    fp32 = export_onnx(resolve_model(digits["model"]), next(val.iter_batches(2))[0]).model
    called = []
    real = base.get_metric
    monkeypatch.setattr("trtq.metrics.get_metric", lambda name: called.append(name) or real(name))
    acc = onnx_accuracy(fp32, fp32, fp32, val, "input", 32)
    assert called == ["top1_accuracy", "top1_agreement", "cosine"]
    assert acc.samples == 100 and acc.fp32.agreement_with_fp32 is None
    assert acc.ptq.top1 == acc.qat.top1 == acc.fp32.top1 > 0.9
    assert acc.qat.agreement_with_fp32 == 1.0 and acc.qat.cosine_vs_fp32 == pytest.approx(1.0)
    assert acc.to_json()["fp32"] == {"top1": acc.fp32.top1}


def test_accuracy_rows_of_the_run_are_the_registrys_numbers(outlier_run) -> None:
    acc = outlier_run.accuracy
    assert 0 < acc.ptq.cosine_vs_fp32 < acc.qat.cosine_vs_fp32 <= 1  # QAT moved the outputs back towards FP32
    assert acc.qat.agreement_with_fp32 > acc.ptq.agreement_with_fp32
    assert outlier_run.torch_accuracy.qat_top1 == outlier_run.history.best.val_top1
