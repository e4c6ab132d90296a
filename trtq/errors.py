"""Exceptions trtq raises for problems a user can act on.

`UsageError` is a mistake in how trtq was called (bad option, missing file, wrong shape): the CLI prints
its one-line message and exits 2. `TrtqError` is a failure of the work itself (export parity, NaN in an
activation, an engine that is not INT8): the CLI prints its message and exits 1. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["TrtqError", "UsageError", "TensorRTUnavailable"]


class TrtqError(Exception):
    """A failure the user should read as one line (exit code 1)."""

    exit_code = 1


class UsageError(TrtqError):
    """The user asked for something that cannot work as given (exit code 2)."""

    exit_code = 2


class TensorRTUnavailable(TrtqError):
    """TensorRT (or a GPU) is not present; the caller decides whether that is fatal."""

    exit_code = 1
