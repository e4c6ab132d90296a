"""`trtq.finetune.report`: report.md's QAT section from a run's metrics."""

from __future__ import annotations

from trtq.finetune.layout import PlacementCheck
from trtq.finetune.report import qat_section


def test_section_shows_accuracy_training_scales_and_checks(outlier_run) -> None:
    check = PlacementCheck(True, activations=5, weights=5)
    text = qat_section({**outlier_run.metrics, "curves": True}, check)
    acc = outlier_run.accuracy
    assert f"| QAT | {100 * acc.qat.top1:.2f}% | {100 * acc.qat.agreement_with_fp32:.2f}% |" in text
    assert f"| FP32 (model.onnx) | {100 * acc.fp32.top1:.2f}% | 100.00% |" in text
    assert "Training: 2 epoch(s), sgd at lr 0.01" in text and "best epoch 2" in text
    assert "trtq calibrator **minmax** over 256 samples" in text
    assert "Q/DQ placement matches PTQ (5 activation, 5 weight Q/DQ)." in text
    assert "![QAT training curves](qat_curves.png)" in text


def test_a_user_function_and_a_graph_from_elsewhere() -> None:
    text = qat_section({"training": {"train_fn": "my_train"}}, PlacementCheck(False, missing=["t"]))
    assert "Training: user function `my_train`." in text and "differs from PTQ: missing: t" in text
    assert "| model |" not in text  # no accuracy rows without accuracy
