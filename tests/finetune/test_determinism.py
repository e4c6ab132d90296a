"""`trtq.finetune.determinism`: a run is seeded, uses deterministic kernels, and leaves the process as it was."""

from __future__ import annotations

import pytest
import torch

from trtq.errors import UsageError
from trtq.finetune.determinism import reproducible


def test_the_body_is_seeded_and_deterministic_and_everything_is_restored() -> None:
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    with reproducible(7, threads=1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        first = torch.rand(3)
    with reproducible(7):
        assert torch.equal(torch.rand(3), first)  # the same seed, the same numbers
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.rand(3), expected_after)  # the caller's random stream is untouched


def test_restores_after_an_error_and_refuses_zero_threads() -> None:
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError), reproducible(0, threads=1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(UsageError, match="--threads"), reproducible(0, threads=0):
        pass
