"""What every command runs inside: SIGTERM and SIGHUP handled like Ctrl-C, and stdout kept for `--json`.

`timeout`, `docker stop` and batch schedulers stop a process with SIGTERM (SIGHUP when a terminal closes).
The handlers turn the first such signal into `Terminated`, a `KeyboardInterrupt`, so the same clean-up runs
as for Ctrl-C (the staging folder is removed) and the exit code is 128 + the signal (143, 129). A signal
whose exception Python swallowed (it arrived inside a weakref callback or `__del__`) is delivered again;
signals that arrive while cleaning up are ignored.

With `--json`, stdout must hold the JSON document only: while the command runs, Python's `sys.stdout` and
the process's file descriptor 1 both point at stderr (a library's download line or a native library's
message lands there), and the JSON is printed on the real stdout at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "termination_signals", "json_stdout", "pending_json", "interrupted_line",
           "fs_error_line"]  # fmt: skip

#: The JSON document `emit` holds back until stdout is restored (None: nothing to print).
_PENDING: list[str] = []
_ACTIVE = threading.local()


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (a KeyboardInterrupt, so every clean-up that handles Ctrl-C runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _signals() -> list[int]:
    return [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]


class _SignalState:
    """The first termination signal raises; a raise swallowed by a weakref callback or `__del__` (Python ignores
    exceptions there) is re-delivered; later signals, while the clean-up runs, are ignored."""

    def __init__(self) -> None:
        self.count = 0
        self.swallowed = False
        self.signum: int | None = None

    def handler(self, signum: int, frame: Any) -> None:
        if self.count and not self.swallowed:
            return  # already stopping: let the clean-up finish
        self.count += 1
        self.swallowed = False
        self.signum = signum
        raise Terminated(signum)

    @staticmethod
    def _redeliver(signum: int) -> None:
        """Deliver the signal to the main thread again, a moment later (outside the callback that swallowed it)."""
        import _thread
        import time

        def later() -> None:
            time.sleep(0.02)
            _thread.interrupt_main(signum)

        threading.Thread(target=later, name="trtq-signal", daemon=True).start()

    def unraisable(self, previous: Any) -> Any:
        def hook(info: Any) -> None:
            if isinstance(info.exc_value, Terminated):
                self.swallowed = True
                self._redeliver(info.exc_value.signum)
                return
            previous(info)

        return hook


@contextlib.contextmanager
def termination_signals() -> Iterator[None]:
    """SIGTERM / SIGHUP raise `Terminated` in the main thread while the block runs (see `_SignalState`).

    A signal whose disposition is SIG_IGN when the block starts (SIGHUP under `nohup`) is left ignored.

    Whatever exception leaves the block after such a signal arrived (an extension module being imported at that
    moment turns it into "ImportError: initialization failed") leaves as `Terminated`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _SignalState()
    # A signal the process was told to ignore stays ignored: `nohup trtq build ...` keeps running on hangup.
    previous = {
        s: signal.signal(s, state.handler) for s in _signals() if signal.getsignal(s) is not signal.SIG_IGN
    }
    previous_hook = sys.unraisablehook
    sys.unraisablehook = state.unraisable(previous_hook)
    try:
        yield
    except Terminated:
        raise
    except BaseException as e:
        if state.signum is None:
            raise
        raise Terminated(state.signum) from e
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sys.unraisablehook = previous_hook


@contextlib.contextmanager
def json_stdout(enabled: bool) -> Iterator[None]:
    """With `enabled`, send everything written to stdout to stderr; print the held-back JSON at the end."""
    if not enabled:
        yield
        return
    _PENDING.clear()
    sys.stdout.flush()
    saved_py = sys.stdout
    saved_fd = None
    with contextlib.suppress(OSError):  # the process's stdout (fd 1), whatever sys.stdout is
        saved_fd = (1, os.dup(1))
        sys.stderr.flush()
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    _ACTIVE.on = True
    try:
        yield
    finally:
        _ACTIVE.on = False
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stdout = saved_py
        if saved_fd is not None:
            os.dup2(saved_fd[1], saved_fd[0])
            os.close(saved_fd[1])
        for doc in _PENDING:
            print(doc, file=saved_py, flush=True)
        _PENDING.clear()


def pending_json(text: str) -> bool:
    """Hold `text` (the JSON result) for the real stdout; False when no `json_stdout` block is active."""
    if getattr(_ACTIVE, "on", False):
        _PENDING.append(text)
        return True
    return False


def interrupted_line(e: BaseException) -> str:
    """The one line an interrupted command ends with: what stopped it and what was left on disk."""
    from trtq.rundir import open_runs

    what = f"terminated ({e.name})" if isinstance(e, Terminated) else "interrupted"
    left = open_runs()
    if left:
        where = ", ".join(str(p) for p in left)
        return f"trtq: {what}; the run written in place in {where} is incomplete (--force replaces it)"
    return f"trtq: {what}; no partial artifacts were left behind"


def fs_error_line(e: OSError) -> str | None:
    """One line for a full disk, a read-only or unwritable folder; None for other OS errors."""
    from trtq.rundir import FS_ERRNOS, os_error_message

    return os_error_message(e) if e.errno in FS_ERRNOS else None
