"""The calibrator protocol, the parameters a method declares, and the registry of calibration methods.

A calibrator sees activation tensors batch by batch (`collect`) and returns one clipping threshold (amax) per
tensor (`compute_amax`); the quantization format turns it into a scale (INT8: amax / 127). Adding a method is
one class decorated with `@register_calibrator("name")`; a method with settings declares them in `params`, and
every list of method names, parameter names and defaults users see comes from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from trtq.errors import UsageError
from trtq.registry import Registry

__all__ = [
    "Calibrator",
    "CalibParam",
    "register_calibrator",
    "register_alias",
    "canonical_method",
    "get_calibrator",
    "list_calibrators",
    "method_params",
    "CALIBRATORS",
    "ALIASES",
]

CALIBRATORS: Registry[type[Calibrator]] = Registry("calibration method", "--calib")


@dataclass(frozen=True)
class CalibParam:
    """A setting of a calibration method (`--calib-param NAME=VALUE`, `CalibrationConfig.params`).

    Attributes:
        name: the parameter name (also the constructor keyword).
        type: float, int or str; values given as text are converted with it.
        default: the value when not given.
        help: one line for help texts.
        low, high: inclusive bounds for numbers (None = unbounded); `low_open` makes the lower bound exclusive.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def convert(self, value: Any, method: str) -> Any:
        """`value` converted and range-checked; UsageError naming the parameter otherwise."""
        try:
            v = self.type(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"--calib-param {self.name}={value!r}: {method} expects a {self.type.__name__}"
            ) from None
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            bound = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
            raise UsageError(f"--calib-param {self.name}={value}: must be {bound} ({method})")
        if self.high is not None and v > self.high:
            raise UsageError(f"--calib-param {self.name}={value}: must be <= {self.high:g} ({method})")
        return v


class Calibrator:
    """Base class: streaming statistics in, per-tensor amax out.

    Class attributes:
        method: the registered name (set by `register_calibrator`).
        params: the settings the method takes as constructor keywords.
    """

    method: ClassVar[str] = ""
    params: ClassVar[tuple[CalibParam, ...]] = ()

    def collect(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Fold one batch of activations (name -> array) into the statistics, then forget it."""
        raise NotImplementedError

    def compute_amax(self) -> dict[str, float]:
        """Clipping threshold per tensor seen so far."""
        raise NotImplementedError


def register_calibrator(name: str) -> Callable[[type[Calibrator]], type[Calibrator]]:
    """Class decorator: register a calibration method under `name`."""

    def deco(cls: type[Calibrator]) -> type[Calibrator]:
        CALIBRATORS.register(name, cls)
        cls.method = name
        return cls

    return deco


def register_alias(alias: str, name: str) -> None:
    """Accept `alias` wherever the registered method `name` is accepted."""
    CALIBRATORS.alias(alias, name)


#: alias -> method (a read-only view of the registry's aliases).
class _AliasView(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        return CALIBRATORS.aliases()[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(CALIBRATORS.aliases())

    def __len__(self) -> int:
        return len(CALIBRATORS.aliases())


ALIASES: Mapping[str, str] = _AliasView()


def canonical_method(name: str) -> str:
    """The registered method name for `name` or one of its aliases (unknown names are returned as given)."""
    return CALIBRATORS.canonical(name)


def method_params(name: str) -> dict[str, CalibParam]:
    """The parameters a registered method declares, by name."""
    cls = CALIBRATORS.get(name)
    return {p.name: p for p in cls.params}


def get_calibrator(name: str, **kwargs: object) -> Calibrator:
    """An instance of the method `name` (UsageError listing the methods when unknown)."""
    return CALIBRATORS.get(name)(**kwargs)


def list_calibrators() -> list[str]:
    """Registered method names, in registration order."""
    return CALIBRATORS.names()
