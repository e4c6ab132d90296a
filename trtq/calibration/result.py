"""`Calibration`: per-tensor thresholds of one or more methods, and calibration.json (read and write)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtq.calibrators import CALIBRATORS, TensorHistogram
from trtq.errors import UsageError
from trtq.files import write_json

__all__ = ["Calibration", "CALIBRATION_FORMAT"]

CALIBRATION_FORMAT = "trtq.calibration/1"


@dataclass
class Calibration:
    """Per-tensor thresholds for one or more calibration methods, plus what they were computed from.

    Attributes:
        methods: methods computed, in the order requested.
        amax: method -> tensor -> amax (clipping threshold; int8 scale = amax / 127).
        stats: tensor -> summary statistics (min, max, absmax, mean, std, count, zero_fraction, histogram).
        method: the method whose thresholds `amax_for()` returns by default.
        warnings: notes a person should read (dead tensors clamped, ...).
        settings: how the thresholds were computed (batches, bins, percentile).
        scores: method -> fidelity scores from `choose_method`, if it ran.
        ranges: max |x| of every float tensor of the model on calibration data (the typed graph keeps nodes
            that would overflow FP16 in FP32 by it).
        format: the quantization format the thresholds are for.
        histograms: tensor -> collected histogram (in memory only; used by plots, not saved).
    """

    methods: list[str]
    amax: dict[str, dict[str, float]]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: str = ""
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] | None = None
    ranges: dict[str, float] = field(default_factory=dict)
    format: str = "int8"
    histograms: dict[str, TensorHistogram] = field(default_factory=dict, repr=False, compare=False)
    #: where the thresholds came from, for messages ("calibration file x.json"); not saved
    origin: str = field(default="the calibration", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.method and self.methods:
            self.method = self.methods[0]

    @property
    def tensors(self) -> list[str]:
        """Tensor names, in calibration order."""
        return list(self.amax[self.methods[0]]) if self.methods else []

    def amax_for(self, method: str | None = None) -> dict[str, float]:
        """tensor -> amax for `method` (default: the chosen method).

        Raises:
            UsageError: the method was not computed.
        """
        m = CALIBRATORS.canonical(method or self.method)
        if m not in self.amax:
            raise UsageError(
                f"calibration method {m!r} was not computed (have: {', '.join(self.methods)}); "
                f"rerun calibration with it"
            )
        return dict(self.amax[m])

    @classmethod
    def from_amax(cls, amax: Mapping[str, float], method: str = "external", **settings: Any) -> Calibration:
        """Wrap thresholds from elsewhere (a TensorRT calibration cache, a user file) as a Calibration."""
        values = {str(k): float(v) for k, v in amax.items()}
        for name, v in values.items():
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"amax of tensor {name!r} is {v}; it must be a finite positive number")
        origin = (
            f"calibration cache {settings['source']}"
            if "source" in settings
            else f"the {method} amax mapping"
        )
        return cls(
            methods=[method], amax={method: values}, method=method, settings=dict(settings), origin=origin
        )

    def to_dict(self) -> dict[str, Any]:
        """The calibration.json content: readable, and ordered the same way for the same inputs."""
        tensors: dict[str, Any] = {}
        for name in self.tensors:
            tensors[name] = {
                "amax": {m: self.amax[m][name] for m in self.methods},
                **({"stats": self.stats[name]} if name in self.stats else {}),
            }
        return {
            "format": CALIBRATION_FORMAT,
            "method": self.method,
            "methods": list(self.methods),
            "settings": self.settings,
            "warnings": list(self.warnings),
            "scores": self.scores,
            "quant_format": self.format,
            "tensors": tensors,
            "ranges": dict(self.ranges),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write calibration.json atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, *, expect_tensors: Iterable[str] | None = None) -> Calibration:
        """Read a calibration.json written by `save`.

        Args:
            path: the file.
            expect_tensors: tensors the caller needs thresholds for; a file lacking any is refused.

        Raises:
            UsageError: missing, corrupt, from another tool, or lacking expected tensors.
        """
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"calibration file {p} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(
                f"calibration file {p} is not valid JSON ({e}); recreate it with trtq calibrate"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
            raise UsageError(
                f"{p} is not a trtq calibration file (expected format {CALIBRATION_FORMAT!r}); "
                "recreate it with trtq calibrate"
            )
        try:
            methods = [str(m) for m in doc["methods"]]
            amax: dict[str, dict[str, float]] = {m: {} for m in methods}
            stats: dict[str, dict[str, Any]] = {}
            for name, entry in doc["tensors"].items():
                for m in methods:
                    v = float(entry["amax"][m])
                    if not (math.isfinite(v) and v > 0):
                        raise ValueError(f"amax {v} of tensor {name!r} is not a finite positive number")
                    amax[m][name] = v
                if "stats" in entry:
                    stats[name] = dict(entry["stats"])
            cal = cls(
                methods=methods,
                amax=amax,
                stats=stats,
                method=str(doc.get("method") or (methods[0] if methods else "")),
                warnings=[str(w) for w in doc.get("warnings", [])],
                settings=dict(doc.get("settings") or {}),
                scores=doc.get("scores"),
                origin=f"calibration file {p}",
                # strict JSON writes an infinite range (a -inf attention mask) as null: read it back as inf
                ranges={
                    str(k): float("inf") if v is None else float(v)
                    for k, v in (doc.get("ranges") or {}).items()
                },
                format=str(doc.get("quant_format") or "int8"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(
                f"calibration file {p} is malformed ({e}); recreate it with trtq calibrate"
            ) from None
        if not methods or cal.method not in methods:
            raise UsageError(f"calibration file {p} names no usable method; recreate it with trtq calibrate")
        if expect_tensors is not None:
            missing = [t for t in expect_tensors if t not in amax[methods[0]]]
            if missing:
                raise UsageError(
                    f"calibration file {p} has no amax for {len(missing)} tensor(s) of this model "
                    f"(first: {missing[0]!r}); it was made for another model or plan: recalibrate"
                )
        return cal
