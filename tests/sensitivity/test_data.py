"""`EvalData`: sensitivity's evaluation batches, iterable many times, with typed targets checked for length."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.data import ClassLabels, DataSource
from trtq.errors import UsageError
from trtq.sensitivity.data import EvalData


def test_arrays_data_sources_and_feed_lists_give_the_same_batches_every_time() -> None:
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    from_array = EvalData(x, "input", batch_size=4, targets=np.arange(10) % 2)
    first, second = list(from_array.feeds()), list(from_array.feeds())
    assert [f["input"].shape[0] for f in first] == [4, 4, 2]
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(first, second))
    assert from_array.targets_kind == "class" and list(from_array.labels) == [0, 1] * 5
    ds = DataSource(name="d", array=x[:, :, None, None], targets=ClassLabels(np.arange(10)))
    from_source = EvalData(ds, ["input"], batch_size=5)
    assert from_source.count == 10 and from_source.labels is not None
    assert from_source.sample()["input"].shape == (1, 3, 1, 1)
    feeds = EvalData([{"input": x[:6]}, {"input": x[6:]}], "input")
    assert feeds.count == 10 and feeds.targets is None


def test_named_inputs_feed_by_name() -> None:
    ds = DataSource(name="tok", inputs={"ids": np.zeros((6, 4), np.int64), "mask": np.ones((6, 4), np.int64)})
    data = EvalData(ds, ["ids", "mask"], batch_size=4)
    batch = next(data.feeds())
    assert set(batch) == {"ids", "mask"} and batch["ids"].dtype == np.int64


def test_bad_evaluation_data_is_refused() -> None:
    with pytest.raises(UsageError, match="3 labels for 4 evaluation samples"):
        EvalData(np.zeros((4, 2), np.float32), "x", targets=np.arange(3))
    with pytest.raises(UsageError, match="holds no samples"):
        EvalData(np.zeros((0, 2), np.float32), "x")
    with pytest.raises(UsageError, match="batch size must be >= 1"):
        EvalData(np.zeros((2, 2), np.float32), "x", batch_size=0)
    with pytest.raises(UsageError, match="must be a DataSource"):
        EvalData("not data", "x")
