"""Bitwise-reproducible QAT runs: one seed, deterministic kernels, a fixed CPU thread count.

`reproducible(seed, threads)` wraps a whole `trtq.qat` run. Inside it PyTorch's global random state is
seeded (and restored afterwards, so the caller's random stream is untouched), deterministic algorithms are
requested (`torch.use_deterministic_algorithms(True, warn_only=True)`: ops without a deterministic kernel
warn instead of failing), cuDNN autotuning is off, and the CPU thread count is `threads` when given. The
DataLoader shuffles with its own seeded generator (`trtq.finetune.train`) and data subsets are seeded
(`trtq.data.load_data`), so a run repeats bit for bit for a seed and a thread count. The thread count is
part of that promise: PyTorch splits reductions (convolution weight gradients, BatchNorm statistics) across
threads, and another count adds the same numbers in another order. ONNX Runtime's results here do not
depend on its thread count or batch size (measured on this package's models).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from trtq.errors import UsageError

__all__ = ["reproducible", "CUBLAS_WORKSPACE"]

#: The cuBLAS workspace setting PyTorch's deterministic mode needs on CUDA (set when the variable is unset).
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def reproducible(seed: int, threads: int | None = None) -> Iterator[None]:
    """Run the body seeded, with deterministic kernels and `threads` CPU threads; restore everything after.

    Args:
        seed: seeds PyTorch's global random state (CPU and every CUDA device).
        threads: PyTorch CPU threads inside the body (None = leave the count as it is).

    Raises:
        UsageError: `threads` is below 1.
    """
    import torch

    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, not {threads}")
    previous = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    if devices:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    with torch.random.fork_rng(devices=devices):
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            torch.manual_seed(seed)
            yield
        finally:
            torch.set_num_threads(previous[0])
            torch.use_deterministic_algorithms(previous[1], warn_only=previous[2])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[3], previous[4]
