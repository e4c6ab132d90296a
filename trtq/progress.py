"""Progress bars (rich) for long steps; silent when quiet or when stderr is not a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["track", "set_quiet", "is_quiet", "status", "note"]

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def _terminal_console():  # -> rich.console.Console | None
    """rich's Console on stderr when it is a terminal; None otherwise (a log file or a pipe gets no bars: rich
    would leave a blank line there for each bar and spinner)."""
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None


def note(line: str) -> None:
    """An informational line on stderr (nothing when quiet)."""
    if not _QUIET:
        import sys

        print(f"trtq: {line}", file=sys.stderr)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (nothing when quiet or when stderr is not a terminal)."""
    console = None if _QUIET else _terminal_console()
    if console is None:
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner for a step without a count (export, engine build); nothing when quiet or not on a terminal."""
    console = None if _QUIET else _terminal_console()
    if console is None:
        yield
        return
    with console.status(message):
        yield
