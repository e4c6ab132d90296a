"""The calibrator protocol and the registry of calibration methods.

A calibrator sees activation tensors batch by batch (`collect`) and returns one clipping threshold
(amax) per tensor (`compute_amax`). Symmetric int8: scale = amax / 127. Adding a method is one class
decorated with `@register_calibrator("name")`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["Calibrator", "register_calibrator", "get_calibrator", "list_calibrators", "CALIBRATORS"]

CALIBRATORS: dict[str, type[Calibrator]] = {}


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


def get_calibrator(name: str, **kwargs: object) -> Calibrator:
    try:
        cls = CALIBRATORS[name]
    except KeyError:
        raise KeyError(f"unknown calibration method {name!r}; choose from {', '.join(sorted(CALIBRATORS))}") from None
    return cls(**kwargs)


def list_calibrators() -> list[str]:
    return sorted(CALIBRATORS)
