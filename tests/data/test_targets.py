"""Typed targets: `ClassLabels` (int64 labels with class names), subsets, slices, joining batches back."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.data import ClassLabels, Targets, concat_targets


def test_class_labels_are_flat_int64_and_keep_their_names():
    labels = ClassLabels([[1], [0], [2]], ["cat", "dog", "eel"])
    assert labels.values.dtype == np.int64 and labels.values.shape == (3,)
    assert labels.classes == ("cat", "dog", "eel") and labels.num_classes == 3 and labels.kind == "class"
    assert len(labels) == 3 and labels[0] == 1 and np.asarray(labels).tolist() == [1, 0, 2]
    assert np.asarray(labels, dtype=np.float32).dtype == np.float32
    assert ClassLabels([0, 1]).num_classes is None
    assert isinstance(labels, Targets)


def test_take_and_slice_keep_the_class_names():
    labels = ClassLabels(np.arange(6), tuple("abcdef"))
    taken = labels.take(np.array([4, 1]))
    assert taken.values.tolist() == [4, 1] and taken.classes == labels.classes
    assert labels.slice(2, 4).values.tolist() == [2, 3] and labels.slice(2, 4).classes == labels.classes


def test_concat_joins_batches_and_refuses_unknown_kinds():
    labels = ClassLabels(np.arange(5), tuple("abcde"))
    joined = concat_targets([labels.slice(0, 2), None, labels.slice(2, 5)])
    assert joined.values.tolist() == [0, 1, 2, 3, 4] and joined.classes == labels.classes
    assert concat_targets([None, None]) is None and concat_targets([]) is None

    class Boxes:
        kind = "boxes"

    with pytest.raises(TypeError, match="cannot join targets of kind 'boxes'"):
        concat_targets([Boxes()])


def _detection_targets():
    from trtq.data.targets import DetectionTargets

    return DetectionTargets(
        boxes=(np.zeros((0, 4)), np.array([[1, 2, 3, 4]]), np.array([[0, 0, 5, 5], [1, 1, 2, 2]])),
        classes=(np.zeros(0), np.array([2]), np.array([0, 1])),
        sizes=np.array([[10, 20], [30, 40], [50, 60]]), transforms=np.tile([1.0, 1.0, 0.0, 0.0], (3, 1)),
        names=("a", "b", "c"),
    )  # fmt: skip


def test_detection_targets_take_slice_and_concat():
    t = _detection_targets()
    assert len(t) == 3 and t.kind == "detection" and t.max_class == 2 and t.classes[0].dtype == np.int64
    sub = t.take(np.array([2, 0]))
    assert [len(b) for b in sub.boxes] == [2, 0] and sub.sizes.tolist() == [[50, 60], [10, 20]]
    assert sub.names == t.names and t.slice(1, 9).sizes.tolist() == [[30, 40], [50, 60]]
    joined = concat_targets([t.slice(0, 1), t.slice(1, 3)])
    assert [b.tolist() for b in joined.boxes] == [b.tolist() for b in t.boxes] and joined.labelled
    bound = t.with_decoder("d")
    assert bound.decoder == "d" and bound.slice(0, 2).decoder == "d" and t.decoder is None


def test_segmentation_targets_take_slice_and_concat():
    from trtq.data.targets import SegmentationTargets

    t = SegmentationTargets(np.arange(3 * 4).reshape(3, 2, 2), labelled=False, num_classes=5)
    assert len(t) == 3 and t.kind == "segmentation" and t.masks.dtype == np.uint8
    assert t.take(np.array([2])).masks.tolist() == [[[8, 9], [10, 11]]] and not t.slice(0, 1).labelled
    joined = concat_targets([t.slice(0, 1), t.slice(1, 3)])
    assert (joined.masks == t.masks).all() and joined.num_classes == 5
