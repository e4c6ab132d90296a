"""The validate stage's warning when labelled data and the model disagree on the number of classes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from trtq.pipeline.stages.validate import class_count_warning


class _Runs:
    """Just enough of Polygraphy's RunResults for `stacked_outputs`: one runner, one iteration."""

    def __init__(self, logits: np.ndarray) -> None:
        self._items = [("fp32", [{"logits": logits}])]

    def items(self):  # noqa: D401
        return self._items


def _data(labels, classes):
    return SimpleNamespace(name="val/", labels=np.asarray(labels), classes=classes)


def test_two_class_folders_on_a_thousand_class_model_are_flagged():
    w = class_count_warning(_data([0, 1, 1], ["cat", "dog"]), _Runs(np.zeros((3, 1000), np.float32)))
    assert w is not None and "has 2 classes (cat, dog) but the model scores 1000" in w


def test_matching_counts_and_index_named_folders_are_not_flagged():
    assert class_count_warning(_data([0, 1], ["a", "b"]), _Runs(np.zeros((2, 2)))) is None
    assert (
        class_count_warning(_data([0, 1], ["0", "1"]), _Runs(np.zeros((2, 10)))) is None
    )  # 0, 1 name the class
    assert (
        class_count_warning(SimpleNamespace(name="x", labels=None, classes=None), _Runs(np.zeros((2, 10))))
        is None
    )
    w = class_count_warning(
        _data([0, 1], ["3", "7"]), _Runs(np.zeros((2, 10)))
    )  # positions 0, 1 are not 3, 7
    assert w is not None
