"""Export samples: an array or {name: array} to the feed (floats cast, integers kept); output flattening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trtq.errors import UsageError
from trtq.export import as_feed, flatten_outputs, output_names


def test_as_feed_casts_floats_keeps_integers_and_rejects_bad_samples() -> None:
    single = as_feed(np.ones((2, 3), np.float64))
    assert list(single) == ["input"] and single["input"].dtype == np.float32
    feed = as_feed({"ids": np.ones((2, 3), np.int64), "mask": np.ones((2, 3), bool), "x": np.ones((2, 3))})
    assert [a.dtype for a in feed.values()] == [np.int64, np.bool_, np.float32]
    with pytest.raises(UsageError, match="empty mapping"):
        as_feed({})
    with pytest.raises(UsageError, match="'x' is a scalar"):
        as_feed({"x": np.float32(1)})
    with pytest.raises(UsageError, match="'s' has dtype <U1"):
        as_feed({"s": np.array(["a"])})


def test_flatten_outputs_is_public_and_orders_nested_outputs() -> None:
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert flatten_outputs((a, [b, {"z": c}])) == [a, b, c]
    with pytest.raises(UsageError, match="output of type str"):
        flatten_outputs((a, "text"))
    assert output_names(1) == ["output"] and output_names(3) == ["output_0", "output_1", "output_2"]
