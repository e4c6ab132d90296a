"""The weights section: weight-side PTQ (`--weight-ptq`) and how quantized weights are stored."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trtq.config.sections import from_args
from trtq.errors import UsageError

__all__ = ["WeightsConfig"]


@dataclass(frozen=True)
class WeightsConfig:
    """Weight-side PTQ and weight storage.

    Attributes:
        methods: weight methods (`trtq.weights.WEIGHT_METHODS`: equalize, clip, adaround, bias-correction),
            applied in that order (equalize rewrites the FP32 graph before calibration, `EqualizeStage`; the
            others run after it, `WeightsStage`); () = max |w| per channel, rounded to nearest.
        batches: calibration batches the weight statistics are measured on.
        adaround_iters: optimisation steps per layer of learned rounding (bounds its time per layer).
        storage: "qdq" (FP32 weight -> Q -> DQ) or "int8" (INT8 initializer -> DQ: a file about 4x smaller).
    """

    methods: tuple[str, ...] = ()
    batches: int = 4
    adaround_iters: int = 300
    storage: str = "qdq"

    @property
    def enabled(self) -> bool:
        """Whether a method that runs after calibration (`WeightsStage`) is asked for."""
        from trtq.weights import WEIGHT_METHODS

        return any(not WEIGHT_METHODS[m].graph for m in self.methods)

    @property
    def equalize(self) -> bool:
        """Whether cross-layer equalisation rewrites the FP32 graph before calibration (`EqualizeStage`)."""
        return "equalize" in self.methods

    def validate(self) -> None:
        from trtq.qdq import WEIGHT_STORAGE
        from trtq.weights import resolve_weight_methods

        resolve_weight_methods(self.methods)
        if not isinstance(self.batches, int) or self.batches < 1:
            raise UsageError(f"--weight-batches {self.batches!r}: give at least 1 batch")
        if not isinstance(self.adaround_iters, int) or self.adaround_iters < 1:
            raise UsageError(f"--adaround-iters {self.adaround_iters!r}: give at least 1 step")
        if self.storage not in WEIGHT_STORAGE:
            raise UsageError(f"--weight-storage {self.storage!r}: choose from {', '.join(WEIGHT_STORAGE)}")

    @classmethod
    def from_args(cls, args: Any, base: WeightsConfig | None = None) -> WeightsConfig:
        cfg = from_args(base or cls(), args, {"weight_batches": "batches", "adaround_iters": "adaround_iters",
                                              "weight_storage": "storage"})  # fmt: skip
        if hasattr(args, "weight_ptq"):
            from trtq.weights import resolve_weight_methods

            cfg = replace(cfg, methods=tuple(resolve_weight_methods(str(args.weight_ptq))))
        return cfg
