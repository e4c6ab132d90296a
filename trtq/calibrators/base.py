"""The calibrator protocol and the registry of calibration methods.

A calibrator sees activation tensors batch by batch (`collect`) and returns one clipping threshold
(amax) per tensor (`compute_amax`). Symmetric int8: scale = amax / 127. Adding a method is one class
decorated with `@register_calibrator("name")`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = [
    "Calibrator",
    "register_calibrator",
    "register_alias",
    "canonical_method",
    "get_calibrator",
    "list_calibrators",
    "CALIBRATORS",
    "ALIASES",
]

CALIBRATORS: dict[str, type[Calibrator]] = {}
#: other names accepted for a registered method (alias -> method), e.g. "max" -> "minmax"
ALIASES: dict[str, str] = {}


class Calibrator:
    """Base class: streaming statistics in, per-tensor amax out."""

    method: str = ""

    def collect(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Fold one batch of activations (name -> array) into the statistics, then forget it."""
        raise NotImplementedError

    def compute_amax(self) -> dict[str, float]:
        """Clipping threshold per tensor seen so far."""
        raise NotImplementedError


def register_calibrator(name: str) -> Callable[[type[Calibrator]], type[Calibrator]]:
    def deco(cls: type[Calibrator]) -> type[Calibrator]:
        if name in CALIBRATORS:
            raise ValueError(f"calibrator {name!r} registered twice")
        cls.method = name
        CALIBRATORS[name] = cls
        return cls

    return deco


def register_alias(alias: str, name: str) -> None:
    """Accept `alias` wherever the registered method `name` is accepted."""
    if alias in CALIBRATORS or alias in ALIASES:
        raise ValueError(f"calibrator name {alias!r} registered twice")
    ALIASES[alias] = name


def canonical_method(name: str) -> str:
    """The registered method name for `name` or one of its aliases (unknown names are returned as given)."""
    return ALIASES.get(name, name)


def get_calibrator(name: str, **kwargs: object) -> Calibrator:
    try:
        cls = CALIBRATORS[canonical_method(name)]
    except KeyError:
        raise KeyError(
            f"unknown calibration method {name!r}; choose from {', '.join(sorted(CALIBRATORS))}"
        ) from None
    return cls(**kwargs)


def list_calibrators() -> list[str]:
    return sorted(CALIBRATORS)
