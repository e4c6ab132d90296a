"""Engine build options and the parsing of `--batch` / `--shapes` values."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trtq.errors import UsageError

__all__ = ["EngineOptions", "parse_batch", "parse_shapes", "Shape", "ShapeRange"]

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]

_HW = ("none", "ampere_plus", "same_compute_capability")
_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class EngineOptions:
    """How to build a TensorRT engine.

    Attributes:
        batch: (min, opt, max) batch size of the optimisation profile for inputs with a dynamic batch axis.
        shapes: explicit (min, opt, max) shapes per input name; needed for dynamic axes other than the batch.
        workspace_gb: workspace memory pool limit in GiB (None: TensorRT's default, the whole GPU).
        timing_cache: file to load tactic timings from and save them to (kept across builds).
        opt_level: builder optimisation level 0-5 (TensorRT's default 3; higher builds slower, may run faster).
        hardware_compat: None, "ampere_plus" or "same_compute_capability" (engines that run on other GPUs).
        version_compat: build a version-compatible engine (runs on later TensorRT of the same major).
        precision: for weakly typed builds only (TensorRT 10 before 10.12): which builder flags to set,
            "int8" (INT8 + FP16), "fp16" or "fp32". Strongly typed builds take precision from the graph.
        calib_cache: a TensorRT calibration cache for legacy implicit INT8 (TensorRT 10 only, weakly typed,
            the graph without Q/DQ).
        min_int8_fraction: the precision proof fails when fewer than this share of the INT8 layers the graph
            asked for run in INT8.
        verbose: TensorRT's log at INFO instead of WARNING.
    """

    batch: tuple[int, int, int] = (1, 8, 32)
    shapes: dict[str, ShapeRange] | None = None
    workspace_gb: float | None = None
    timing_cache: Path | None = None
    opt_level: int = 3
    hardware_compat: str | None = None
    version_compat: bool = False
    precision: str = "int8"
    calib_cache: Path | None = None
    min_int8_fraction: float = 0.5
    verbose: bool = False

    def __post_init__(self) -> None:
        self.batch = _check_batch(tuple(int(b) for b in self.batch))
        if not 0 <= int(self.opt_level) <= 5:
            raise UsageError(f"--opt-level {self.opt_level}: the builder optimisation level must be 0 to 5")
        if self.workspace_gb is not None and not self.workspace_gb > 0:
            raise UsageError(f"--workspace-gb {self.workspace_gb}: give a positive size in GiB")
        if self.hardware_compat is not None:
            key = self.hardware_compat.lower().replace("-", "_")
            if key not in _HW:
                raise UsageError(
                    f"--hardware-compat {self.hardware_compat!r}: choose one of {', '.join(_HW)}"
                )
            self.hardware_compat = None if key == "none" else key
        if self.precision not in _PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose one of {', '.join(_PRECISIONS)}")
        if not 0.0 <= self.min_int8_fraction <= 1.0:
            raise UsageError(f"min_int8_fraction {self.min_int8_fraction}: must be between 0 and 1")
        if self.timing_cache is not None:
            self.timing_cache = Path(self.timing_cache)
        if self.calib_cache is not None:
            self.calib_cache = Path(self.calib_cache)
        if self.shapes:
            for name, rng in self.shapes.items():
                _check_range(name, rng)

    @property
    def workspace_bytes(self) -> int | None:
        return None if self.workspace_gb is None else int(self.workspace_gb * (1 << 30))

    def to_json(self) -> dict[str, Any]:
        """The options as plain JSON values (for engine.json)."""
        d = asdict(self)
        for k in ("timing_cache", "calib_cache"):
            d[k] = None if d[k] is None else str(d[k])
        d["batch"] = list(self.batch)
        if self.shapes:
            d["shapes"] = {n: [list(s) for s in rng] for n, rng in self.shapes.items()}
        return d


def _check_batch(b: tuple[int, ...]) -> tuple[int, int, int]:
    if len(b) != 3:
        raise UsageError(f"--batch {','.join(map(str, b))}: give one size or min,opt,max")
    mn, opt, mx = b
    if mn < 1 or not mn <= opt <= mx:
        raise UsageError(f"--batch {mn},{opt},{mx}: need 1 <= min <= opt <= max")
    return mn, opt, mx


def _check_range(name: str, rng: ShapeRange) -> None:
    if len(rng) != 3:
        raise UsageError(f"--shapes {name}: give min,opt,max shapes")
    mn, opt, mx = rng
    if not (len(mn) == len(opt) == len(mx)):
        raise UsageError(f"--shapes {name}: min, opt and max must have the same rank")
    for a, b, c in zip(mn, opt, mx):
        if a < 0 or not a <= b <= c:
            raise UsageError(
                f"--shapes {name}: need min <= opt <= max in every axis, got {_fmt(mn)} {_fmt(opt)} {_fmt(mx)}"
            )


def _fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def parse_batch(text: str) -> tuple[int, int, int]:
    """Parse `--batch`: "8" (fixed) or "1,8,32" (min,opt,max)."""
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v != "")
    except ValueError:
        raise UsageError(f"--batch {text!r}: give integers, e.g. 1,8,32") from None
    if len(values) == 1:
        values = values * 3
    return _check_batch(values)


def parse_shapes(items: list[str] | None) -> dict[str, ShapeRange] | None:
    """Parse `--shapes NAME:MIN,OPT,MAX` values such as "images:1x3x224x224,8x3x224x224,32x3x224x224".

    One shape instead of three fixes the input to that shape.
    """
    if not items:
        return None
    out: dict[str, ShapeRange] = {}
    for item in items:
        name, sep, rest = item.rpartition(":")
        if not sep or not name:
            raise UsageError(f"--shapes {item!r}: write NAME:MINxC..,OPTxC..,MAXxC.. (or NAME:SHAPE)")
        try:
            shapes = [tuple(int(d) for d in s.lower().split("x")) for s in rest.split(",")]
        except ValueError:
            raise UsageError(f"--shapes {item!r}: dimensions must be integers separated by 'x'") from None
        if len(shapes) == 1:
            shapes = shapes * 3
        rng = (shapes[0], shapes[1], shapes[2]) if len(shapes) == 3 else tuple(shapes)
        _check_range(name, rng)  # type: ignore[arg-type]
        out[name] = rng  # type: ignore[assignment]
    return out
