"""Plugins: modules outside trtq that register calibrators, placement rules, metrics or formats.

A plugin is any importable module whose import registers entries (`@register_calibrator`,
`@register_rule`, `@register_metric`, ...). trtq imports plugins from three places, in this order:

- the entry-point group `trtq.plugins` of installed packages (`[project.entry-points."trtq.plugins"]`);
- the environment variable `TRTQ_PLUGINS` (comma-separated module names);
- `--plugin MODULE` on the command line (repeatable), or `trtq.load_plugins(["module"])` in Python.

Each module is imported once; a module that cannot be imported is a `UsageError` naming it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

from trtq.errors import UsageError

__all__ = ["load_plugins", "loaded_plugins", "ENTRY_POINT_GROUP", "ENV_VAR"]

ENTRY_POINT_GROUP = "trtq.plugins"
ENV_VAR = "TRTQ_PLUGINS"

_LOADED: list[str] = []
_ENTRY_POINTS_DONE = False


def _import(name: str, where: str) -> None:
    if name in _LOADED:
        return
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise UsageError(f"plugin {name!r} ({where}) cannot be imported: {e}") from None
    _LOADED.append(name)


def load_plugins(modules: Iterable[str] = (), *, entry_points: bool = True, env: bool = True) -> list[str]:
    """Import plugin modules (entry points, `TRTQ_PLUGINS`, then `modules`); returns all loaded so far."""
    global _ENTRY_POINTS_DONE
    if entry_points and not _ENTRY_POINTS_DONE:
        _ENTRY_POINTS_DONE = True
        from importlib.metadata import entry_points as eps

        for ep in eps(group=ENTRY_POINT_GROUP):
            _import(ep.value.split(":")[0], f"entry point {ep.name!r}")
    if env:
        for name in os.environ.get(ENV_VAR, "").split(","):
            if name.strip():
                _import(name.strip(), ENV_VAR)
    for name in modules:
        if name.strip():
            _import(name.strip(), "--plugin")
    return list(_LOADED)


def loaded_plugins() -> list[str]:
    """Plugin modules imported so far (recorded in report.json)."""
    return list(_LOADED)
