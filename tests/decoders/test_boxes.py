"""The boxes decoder: outputs found by name, num_detections, padding rows and thresholds, and its error."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.decoders import DecodeSettings, resolve_decoder
from trtq.decoders.boxes import find_outputs
from trtq.errors import UsageError


def _outputs():
    boxes = np.array(
        [[[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, 1, 1]], [[1, 1, 2, 2], [3, 3, 4, 4], [0, 0, 0, 0]]]
    )
    scores = np.array([[0.5, 0.9, 0.0005], [0.7, 0.2, 0.0]])
    labels = np.array([[1, 0, 2], [3, -1, 0]])
    return {"num_dets": np.array([[3], [2]]), "det_boxes": boxes, "det_scores": scores, "det_classes": labels}


def test_reads_boxes_scores_labels_by_name():
    assert set(find_outputs(_outputs())) == {"num", "boxes", "scores", "labels"}
    first, second = resolve_decoder("boxes")(_outputs())
    assert first.labels.tolist() == [0, 1]  # best first; the 0.0005 row is under the confidence threshold
    assert first.boxes[0].tolist() == [5, 5, 20, 20]
    assert second.labels.tolist() == [3]  # label -1 is padding; row 3 is past num_dets
    assert len(resolve_decoder("boxes")(_outputs(), DecodeSettings(max_det=1))[0]) == 1


def test_without_a_count_every_row_counts():
    out = _outputs()
    del out["num_dets"]
    out = {"boxes": out["det_boxes"], "scores": out["det_scores"], "labels": out["det_classes"]}
    assert [len(d) for d in resolve_decoder("boxes")(out, DecodeSettings(conf_threshold=0.0))] == [3, 2]


def test_missing_or_misshapen_outputs_say_what_was_expected():
    with pytest.raises(UsageError, match=r"decoder boxes expects outputs named like boxes \[batch, K, 4\].*no boxes "
                       r"output \(output0 \(1, 7, 8\)\)"):  # fmt: skip
        resolve_decoder("boxes")({"output0": np.zeros((1, 7, 8))})
    with pytest.raises(
        UsageError, match=r"the model's outputs are boxes \(5, 4\), scores \(5,\), labels \(5,\)"
    ):
        resolve_decoder("boxes")({"boxes": np.zeros((5, 4)), "scores": np.zeros(5), "labels": np.zeros(5)})
