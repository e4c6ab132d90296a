"""mIoU: against scikit-learn's jaccard_score on the same pixels, 255 ignored, resized predictions, FP32 as the
reference without labels, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import jaccard_score

from trtq.data.targets import SegmentationTargets
from trtq.errors import UsageError
from trtq.metrics import METRICS, resolve_metric
from trtq.metrics.segmentation import IGNORE, predicted_classes


def _case(seed: int, classes: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (3, 12, 10)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.1] = IGNORE
    scores = rng.normal(size=(3, classes, 12, 10)).astype(np.float32)
    scores[:, 1] += 3 * (labels == 1)  # class 1 mostly right, the others noise
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_jaccard(seed):
    labels, scores = _case(seed)
    value = METRICS.get("miou")({"o": scores}, {"o": scores}, SegmentationTargets(labels))
    keep = labels.reshape(-1) != IGNORE
    y, p = labels.reshape(-1)[keep], scores.argmax(1).reshape(-1)[keep]
    present = sorted(set(y.tolist()) | set(p.tolist()))
    assert value == pytest.approx(jaccard_score(y, p, labels=present, average="macro"))
    assert 0.1 < value < 0.9


def test_perfect_and_resized_predictions():
    labels = np.zeros((1, 8, 8), np.uint8)
    labels[0, :4] = 1
    scores = np.zeros((1, 2, 4, 4), np.float32)  # half resolution
    scores[0, 1, :2] = 5.0
    scores[0, 0, 2:] = 5.0
    assert predicted_classes({"o": scores}, (8, 8)).shape == (1, 8, 8)
    assert METRICS.get("miou")({"o": scores}, {"o": scores}, SegmentationTargets(labels)) == pytest.approx(
        1.0
    )


def test_without_labels_fp32_is_the_reference_and_padding_is_ignored():
    _, scores = _case(3)
    valid = np.zeros((3, 12, 10), np.uint8)
    valid[:, :2] = IGNORE  # letterbox padding
    t = SegmentationTargets(valid, labelled=False)
    m = METRICS.get("miou")
    assert m({"o": scores}, {"o": scores}, t) == pytest.approx(1.0)
    other = scores.copy()
    other[:, :, :2] = -other[:, :, :2]  # changes only inside the padding
    assert m({"o": scores}, {"o": other}, t) == pytest.approx(1.0)
    other[:, :, 5:] = -other[:, :, 5:]
    assert m({"o": scores}, {"o": other}, t) < 0.5


def test_errors_name_the_problem():
    labels, scores = _case(0)
    m = METRICS.get("miou")
    with pytest.raises(
        UsageError, match=r"miou expects the first output \[batch, classes, H, W\].*'o' has shape \(3, 4\)"
    ):
        m({"o": np.zeros((3, 4))}, {"o": np.zeros((3, 4))}, SegmentationTargets(labels))
    with pytest.raises(UsageError, match=r"the label masks hold class 7 but the model scores 4 classes"):
        m({"o": scores}, {"o": scores}, SegmentationTargets(np.full((3, 12, 10), 7, np.uint8)))
    with pytest.raises(UsageError, match="--metric miou needs evaluation data with segmentation targets"):
        resolve_metric("miou", None)
    assert resolve_metric(None, "segmentation").name == "miou"
