"""Classification metrics on logits against independent numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.data import ClassLabels
from trtq.errors import UsageError
from trtq.metrics import get_metric
from trtq.metrics.classification import is_classifier, logits, top1_accuracy, top1_agreement, top5_accuracy

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((200, 12)).astype(np.float32)
OUT = REF + RNG.standard_normal((200, 12)).astype(np.float32) * 0.7
LABELS = RNG.integers(0, 12, 200)


def test_top1_accuracy_and_agreement_match_numpy():
    ref, out = {"logits": REF}, {"logits": OUT}
    assert top1_accuracy(ref, out, LABELS) == pytest.approx(np.mean(OUT.argmax(1) == LABELS))
    assert top1_accuracy(ref, out, ClassLabels(LABELS)) == pytest.approx(np.mean(OUT.argmax(1) == LABELS))
    agreement = np.mean(OUT.argmax(1) == REF.argmax(1))
    assert 0.3 < agreement < 0.95 and top1_agreement(ref, out) == pytest.approx(agreement)


def test_top5_accuracy_matches_a_sort_based_reference():
    top5 = np.argsort(-OUT, axis=1)[:, :5]
    expected = np.mean([label in row for label, row in zip(LABELS, top5)])
    assert top5_accuracy({"l": REF}, {"l": OUT}, LABELS) == pytest.approx(expected)
    three = OUT[:, :3]
    assert (
        top5_accuracy({"l": three}, {"l": three}, LABELS % 3) == 1.0
    )  # fewer than 5 classes: every class counts


def test_only_the_first_output_counts_and_extra_dims_are_flattened():
    ref = {"logits": REF, "aux": -REF}
    assert top1_agreement(ref, {"logits": REF, "aux": REF}) == 1.0
    assert logits({"l": np.zeros((4, 2, 3))}, "x").shape == (4, 6)


def test_outputs_that_are_not_logits_and_bad_labels_are_usage_errors():
    with pytest.raises(
        UsageError,
        match=r"top-1 agreement needs classifier outputs \(N, classes\); the first output has shape \(5,\)",
    ):
        top1_agreement({"y": np.zeros(5)}, {"y": np.zeros(5)})
    with pytest.raises(UsageError, match="top-1 accuracy needs labelled evaluation data"):
        top1_accuracy({"l": REF}, {"l": OUT}, None)
    with pytest.raises(UsageError, match="199 labels for 200 samples"):
        top5_accuracy({"l": REF}, {"l": OUT}, LABELS[:199])
    assert (
        is_classifier({"l": REF})
        and not is_classifier({"l": REF[:, :1]})
        and not is_classifier({"l": REF[0]})
    )


def test_registered_with_the_targets_they_need_and_their_titles():
    acc, top5, agree = (get_metric(n) for n in ("top1_accuracy", "top5_accuracy", "top1_agreement"))
    assert (acc.needs, top5.needs, agree.needs) == ("class", "class", None)
    assert (acc.heading, top5.heading, agree.heading) == ("top-1", "top-5", "top-1 agreement with FP32")
    assert all(
        m.auto and m.kind == "task" and m.higher_is_better and m.unit == "fraction"
        for m in (acc, top5, agree)
    )
    assert acc({"l": REF}, {"l": OUT}, LABELS) == top1_accuracy({"l": REF}, {"l": OUT}, LABELS)
