"""Named registries: every family that grows (calibrators, placement rules, metrics, formats, ...) is one.

A `Registry` maps names (and aliases) to entries in registration order, so every list of names a user sees
(help texts, error messages, `--calib all`) comes from the registry itself and a new entry needs one module
and one decorator. Entries registered from outside trtq (a plugin module, see `trtq.plugins`) are used
exactly like the built-in ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from trtq.errors import UsageError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order, with aliases and one-line errors that list the valid names.

    Args:
        kind: what the entries are, for messages ("calibration method", "placement rule", "metric").
        option: the command-line option that takes these names, for messages ("--calib").
    """

    def __init__(self, kind: str, option: str | None = None) -> None:
        self.kind = kind
        self.option = option
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add `entry` under `name`; a second registration of a name is refused unless `replace`."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if not replace and (name in self._entries or name in self._aliases):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """`@registry.decorator("name")` registers what it decorates."""

        def deco(entry: T) -> T:
            return self.register(name, entry, replace=replace)

        return deco

    def alias(self, alias: str, name: str) -> None:
        """Accept `alias` wherever `name` is accepted."""
        if alias in self._entries or alias in self._aliases:
            raise ValueError(f"{self.kind} name {alias!r} is registered twice")
        if name not in self._entries:
            raise ValueError(f"cannot alias {alias!r} to unregistered {self.kind} {name!r}")
        self._aliases[alias] = name

    def unregister(self, name: str) -> None:
        """Remove an entry and its aliases (for tests and plugins that replace an entry)."""
        self._entries.pop(name, None)
        for a in [a for a, n in self._aliases.items() if n == name]:
            del self._aliases[a]

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases (unknown names are returned as given)."""
        return self._aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def names(self) -> list[str]:
        """Registered names, in registration order (aliases not included)."""
        return list(self._entries)

    def aliases(self) -> dict[str, str]:
        """alias -> name."""
        return dict(self._aliases)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def get(self, name: str) -> T:
        """The entry for `name` (or an alias); `UsageError` naming the option and the valid names otherwise."""
        key = self.canonical(name)
        if key not in self._entries:
            raise UsageError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: str) -> str:
        what = f"{self.option} {name!r}" if self.option else f"{self.kind} {name!r}"
        return f"{what} is not a registered {self.kind}; choose from {', '.join(self.names()) or '(none)'}"
