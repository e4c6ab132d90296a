"""Progress bars (rich) for long steps; silent when quiet or when stderr is not a terminal-worthy sink."""

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


def note(line: str) -> None:
    """An informational line on stderr (nothing when quiet)."""
    if not _QUIET:
        import sys

        print(f"trtq: {line}", file=sys.stderr)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (nothing when quiet)."""
    if _QUIET:
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    console = Console(stderr=True)
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
    """A spinner for a step without a count (export, engine build)."""
    if _QUIET:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
