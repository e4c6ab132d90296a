"""trtq.export.parity: PyTorch vs ONNX Runtime outputs, and which inputs carry the dynamic sequence axis."""

from __future__ import annotations

import numpy as np
import pytest

from trtq.errors import TrtqError
from trtq.export.parity import check_parity, sequence_inputs


def test_check_parity_counts_shapes_and_nan() -> None:
    ref = [np.ones((2, 3), np.float32)]
    assert check_parity("m", ref, [np.ones((2, 3), np.float32)], 1e-3, 1e-4) == 0.0
    with pytest.raises(TrtqError, match="0 outputs in ONNX vs 1 in PyTorch"):
        check_parity("m", ref, [], 1e-3, 1e-4)
    with pytest.raises(TrtqError, match=r"output shape \(3, 2\) in ONNX"):
        check_parity("m", ref, [np.ones((3, 2), np.float32)], 1e-3, 1e-4)
    with pytest.raises(TrtqError, match="NaN/Inf"):
        check_parity("m", ref, [np.full((2, 3), np.nan, np.float32)], 1e-3, 1e-4)


def test_parity_passes_within_tolerance_of_the_largest_output_and_reports_the_worst_error() -> None:
    ref = [np.array([100.0, 1.0], np.float32)]
    # the bound is atol + rtol * max|ref| = 1e-4 + 1e-3 * 100
    assert check_parity("m", ref, [np.array([100.05, 1.0], np.float32)], 1e-3, 1e-4) == pytest.approx(
        0.05, rel=1e-3
    )
    with pytest.raises(TrtqError, match="max abs error 0.2"):
        check_parity("m", ref, [np.array([100.2, 1.0], np.float32)], 1e-3, 1e-4)


def test_integer_inputs_of_rank_two_or_more_are_sequences() -> None:
    feed = {
        "input_ids": np.zeros((2, 8), np.int64),
        "mask": np.ones((2, 8), np.bool_),
        "pixels": np.zeros((2, 3, 4, 4), np.float32),
        "lengths": np.zeros((2,), np.int64),
    }
    assert sequence_inputs(feed) == ["input_ids", "mask"]
