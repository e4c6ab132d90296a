"""The zoo's tables: name -> builder for torch models and for ONNX graphs, with one lookup each.

Builders are registered with `@model("name")` / `@graph("name")`; every builder seeds its own random numbers, so
the same name and arguments always give the same weights. Unknown names are a KeyError that lists the names.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Entry",
    "MODELS",
    "GRAPHS",
    "model",
    "graph",
    "make_model",
    "onnx_graph",
    "graph_file",
    "describe",
]


@dataclass(frozen=True)
class Entry:
    """One zoo entry: its name, what it is ("model" or "graph") and its builder."""

    name: str
    kind: str
    build: Callable[..., Any]

    @property
    def doc(self) -> str:
        """The first line of the builder's docstring."""
        return (inspect.getdoc(self.build) or "").splitlines()[0]


MODELS: dict[str, Entry] = {}
GRAPHS: dict[str, Entry] = {}


def _register(
    table: dict[str, Entry], kind: str, name: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in table:
            raise ValueError(f"zoo {kind} {name!r} is registered twice")
        if not inspect.getdoc(fn):
            raise ValueError(f"zoo {kind} {name!r} needs a docstring saying what it is")
        table[name] = Entry(name, kind, fn)
        return fn

    return deco


def model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a torch model builder under `name`."""
    return _register(MODELS, "model", name)


def graph(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an ONNX graph builder under `name`."""
    return _register(GRAPHS, "graph", name)


def _lookup(table: dict[str, Entry], kind: str, name: str) -> Entry:
    if name not in table:
        raise KeyError(f"no zoo {kind} {name!r}; the zoo has {', '.join(table)}")
    return table[name]


def make_model(name: str, **kwargs: Any) -> Any:
    """A new instance of the torch model `name` (in eval mode), built with `kwargs`."""
    return _lookup(MODELS, "model", name).build(**kwargs).eval()


_GRAPH_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}


def onnx_graph(name: str, **kwargs: Any) -> Any:
    """The ONNX graph `name` built with `kwargs` (an `onnx.ModelProto` of its own: callers may change it).

    Graphs are built once per name and arguments (exports of torch models take a moment) and copied out.
    """
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _GRAPH_CACHE:
        _GRAPH_CACHE[key] = _lookup(GRAPHS, "graph", name).build(**kwargs)
    return copy.deepcopy(_GRAPH_CACHE[key])


def graph_file(name: str, path: str | Path, **kwargs: Any) -> Path:
    """`onnx_graph(name, **kwargs)` written to `path` (for code that reads files); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_graph(name, **kwargs).SerializeToString())
    return path


def describe() -> str:
    """Every entry with its one-line description (what `python -m tests.zoo` prints)."""
    lines = []
    for title, table in (("torch models (make_model)", MODELS), ("ONNX graphs (onnx_graph)", GRAPHS)):
        lines.append(title)
        lines += [f"  {e.name:22s} {e.doc}" for e in table.values()]
    return "\n".join(lines)
