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
