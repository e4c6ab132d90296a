"""Exceptions trtq raises for problems a user can act on.

`UsageError` is a mistake in how trtq was called (bad option, missing file, wrong shape): the CLI prints
its one-line message and exits 2. `TrtqError` is a failure of the work itself (export parity, NaN in an
activation, an engine that is not INT8): the CLI prints its message and exits 1. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import contextvars

__all__ = [
    "TrtqError",
    "UsageError",
    "TensorRTUnavailable",
    "in_cli",
    "set_cli",
    "option_name",
    "option_hint",
]

_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("trtq_cli", default=False)


def set_cli(on: bool) -> None:
    """Mark this context as the command line (messages then name options as `--force`, not `force=True`)."""
    _CLI.set(on)


def in_cli() -> bool:
    """Whether trtq runs as the command line (`trtq ...`) rather than as a library."""
    return _CLI.get()


def option_name(name: str) -> str:
    """A boolean setting as the user writes it: "--force" on the command line, "force=True" in Python."""
    return f"--{name.replace('_', '-')}" if in_cli() else f"{name}=True"


def option_hint(name: str) -> str:
    """How to ask for a boolean setting: "pass --force" on the command line, "pass force=True" in Python."""
    return f"pass {option_name(name)}"


class TrtqError(Exception):
    """A failure the user should read as one line (exit code 1)."""

    exit_code = 1


class UsageError(TrtqError):
    """The user asked for something that cannot work as given (exit code 2)."""

    exit_code = 2


class TensorRTUnavailable(TrtqError):
    """TensorRT (or a GPU) is not present; the caller decides whether that is fatal."""

    exit_code = 1
