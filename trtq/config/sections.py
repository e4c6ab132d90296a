"""The typed sections of a build configuration, each with its defaults and its checks.

Every section is a dataclass of JSON values (it is recorded in report.json and read back with `from_dict`),
validates itself (`validate()` raises a `UsageError` that names the command-line option), and can be built
from parsed command-line options (`from_args(args, base)`: only the options present in `args` override `base`,
so a recorded configuration plus a few options reproduces a run with changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from trtq.errors import UsageError

__all__ = [
    "ExportConfig",
    "FallbackConfig",
    "TypingConfig",
    "ValidationConfig",
    "from_args",
    "check_count",
    "names_of",
    "section_from_dict",
    "section_to_dict",
]

S = TypeVar("S")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "to_json"):
        return value.to_json()
    return f"<{type(value).__name__}>"  # an in-memory object from the Python API: not repeatable from JSON


def section_to_dict(section: Any) -> dict[str, Any]:
    """A section as JSON values."""
    return {f.name: _jsonable(getattr(section, f.name)) for f in fields(section)}


def section_from_dict(cls: type[S], data: Mapping[str, Any] | None, what: str) -> S:
    """Rebuild a section from `section_to_dict` output; unknown keys are a UsageError naming them."""
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UsageError(
            f"config section {what!r} has unknown keys {', '.join(unknown)}; expected {', '.join(known)}"
        )
    # JSON has lists where the sections hold tuples (sections are frozen and hashable)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def from_args(base: S, args: Any, mapping: Mapping[str, str]) -> S:
    """`base` with the fields named in `mapping` (option dest -> field) replaced where `args` has the option."""
    changes = {fld: getattr(args, dest) for dest, fld in mapping.items() if hasattr(args, dest)}
    return replace(base, **changes) if changes else base  # type: ignore[type-var]


def check_count(value: int | None, option: str, allow_zero_all: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        extra = " (0 on the command line means all)" if allow_zero_all else ""
        raise UsageError(f"{option} must be a positive number of samples, not {value!r}{extra}")


@dataclass(frozen=True)
class ExportConfig:
    """How the model becomes `model.onnx`.

    Attributes:
        opset: ONNX opset of the export (>= 13: per-channel Q/DQ needs `axis`).
        weights: pretrained weights (downloads them): a torchvision weights name (e.g. "DEFAULT"), or for
            `timm:NAME` models "DEFAULT" or a timm pretrained tag.
        checkpoint: a state dict to load into the model (read with `torch.load(weights_only=True)`).
        trust_pickle: allow unpickling a full-model file the user made.
        exporter: the torch exporter: "auto" (the TorchScript-based one while torch has it, else or when it fails
            the torch.export-based one), "dynamo" or "legacy"; report.json says which ran and why.
    """

    opset: int = 17
    weights: str | None = None
    checkpoint: str | None = None
    trust_pickle: bool = False
    exporter: str = "auto"

    def validate(self) -> None:
        if not isinstance(self.opset, int) or self.opset < 13:
            raise UsageError(f"--opset {self.opset}: per-channel Q/DQ needs opset >= 13 (default 17)")
        if self.exporter not in ("auto", "dynamo", "legacy"):
            raise UsageError(f"--exporter {self.exporter!r}: choose from auto, dynamo, legacy")

    @classmethod
    def from_args(cls, args: Any, base: ExportConfig | None = None) -> ExportConfig:
        mapping = {
            "opset": "opset",
            "weights": "weights",
            "checkpoint": "checkpoint",
            "trust_pickle": "trust_pickle",
            "exporter": "exporter",
        }
        return from_args(base or cls(), args, mapping)


@dataclass(frozen=True)
class FallbackConfig:
    """Sensitivity analysis and the FP16 fallback (optional).

    Attributes:
        max_drop: keep the fewest layers FP16 so the metric drops at most this much below FP32 (percentage points
            for fraction metrics such as top-1; the metric's own unit otherwise).
        layers: N (the N most sensitive layers) or node names / full-match regexes kept FP16. N is refused with
            `max_drop` (both would decide the count); names with `max_drop` are kept and the budget search
            adds what else it needs.
        metric: the metric of the budget (a registered name or package.module:function); None = top-1 accuracy
            with labels, top-1 agreement without.
        workers: parallel evaluations (None: the CPUs available).
        rank_by: what ranks the layers: "cosine" (mean output cosine to FP32) or "kl" (output KL to FP32),
            continuous measures with a greedy search that re-measures candidates given the layers already FP16,
            or "metric" (the budget metric, a static order).
        top_k: candidates the greedy search re-evaluates per step.
        alone_int8: also measure each layer alone INT8, the rest FP32 (`--alone-int8`): its damage in
            isolation, shown in the report; twice the analysis time, and the ranking does not need it.
    """

    max_drop: float | None = None
    layers: int | tuple[str, ...] | None = None
    metric: str | None = None
    workers: int | None = None
    rank_by: str = "cosine"
    top_k: int = 6
    alone_int8: bool = False

    @property
    def enabled(self) -> bool:
        return self.max_drop is not None or self.layers is not None

    def validate(self) -> None:
        if self.max_drop is not None and (not math.isfinite(float(self.max_drop)) or self.max_drop < 0):
            raise UsageError(f"--max-drop {self.max_drop}: the budget must be >= 0 (0 = no loss allowed)")
        if isinstance(self.layers, int) and not isinstance(self.layers, bool) and self.layers < 0:
            raise UsageError(f"--fallback {self.layers}: give a number of layers >= 0 or node names")
        if isinstance(self.layers, int) and not isinstance(self.layers, bool) and self.max_drop is not None:
            raise UsageError(
                f"--fallback {self.layers} and --max-drop {self.max_drop} both decide how many layers stay FP16: "
                "give --max-drop (the fewest layers within the budget) or --fallback N (the N most sensitive); "
                "--fallback NAMES with --max-drop keeps those layers and searches the rest"
            )
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers {self.workers}: give at least 1")
        if self.rank_by not in ("cosine", "kl", "metric"):
            raise UsageError(f"--rank-by {self.rank_by!r}: choose cosine, kl or metric")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise UsageError(f"--rank-top-k {self.top_k!r}: give a number of candidates >= 1")
        if self.metric is not None and not callable(self.metric):
            from trtq.metrics import METRICS, is_known_metric

            if not is_known_metric(str(self.metric)) and ":" not in str(self.metric):
                raise UsageError(METRICS.unknown_message(self.metric) + ", or give package.module:function")

    @classmethod
    def from_args(cls, args: Any, base: FallbackConfig | None = None) -> FallbackConfig:
        cfg = from_args(
            base or cls(),
            args,
            {"max_drop": "max_drop", "metric": "metric", "workers": "workers", "rank_by": "rank_by",
             "rank_top_k": "top_k", "alone_int8": "alone_int8"},
        )  # fmt: skip
        if hasattr(args, "fallback"):
            text = str(args.fallback).strip()
            layers: int | tuple[str, ...] = (
                int(text) if text.isdigit() else tuple(v.strip() for v in text.split(",") if v.strip())
            )
            cfg = replace(cfg, layers=layers)
        return cfg


#: Evaluation samples `trtq build` validates the typed graph on (`--typed-samples`).
DEFAULT_TYPED_SAMPLES = 128


@dataclass(frozen=True)
class TypingConfig:
    """The strongly typed graph (`model.trt.onnx`).

    Attributes:
        enabled: write it (`--no-typed` turns it off).
        keep_fp32_nodes: node names / full-match regexes kept FP32.
        keep_fp32_op_types: op types kept FP32.
        data_max: nodes whose inputs/outputs reach this magnitude on calibration data stay FP32.
        samples: evaluation samples `trtq build` validates it on (`--typed-samples N`; 0 = all): a reproducible
            subset, with the seed and count of `--choose-samples` the same samples as the `--calib all` method
            choice. Its INT8 layers are model.int8.onnx's; what it adds is FP16 rounding of the rest, which ONNX
            Runtime's CPU emulates with a Cast around every FP16 node (on efficientnet_b0 1.7x the INT8 graph's
            time), and an FP16 overflow shows on any sample. Detection data always uses every sample (mAP).
    """

    enabled: bool = True
    keep_fp32_nodes: tuple[str, ...] = ()
    keep_fp32_op_types: tuple[str, ...] = ()
    data_max: float | None = None
    samples: int = DEFAULT_TYPED_SAMPLES

    def validate(self) -> None:
        if self.data_max is not None and not self.data_max > 0:
            raise UsageError(f"data_max {self.data_max}: must be positive")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 0:
            raise UsageError(f"--typed-samples must be a whole number >= 0 (0 = all), not {self.samples!r}")

    @classmethod
    def from_args(cls, args: Any, base: TypingConfig | None = None) -> TypingConfig:
        cfg = base or cls()
        if hasattr(args, "no_typed"):
            cfg = replace(cfg, enabled=not args.no_typed)
        if hasattr(args, "typed_samples"):
            cfg = replace(cfg, samples=args.typed_samples)
        for dest, fld in (("keep_fp32", "keep_fp32_nodes"), ("keep_fp32_op_type", "keep_fp32_op_types")):
            if hasattr(args, dest):
                cfg = replace(cfg, **{fld: tuple(names_of(getattr(args, dest)))})
        return cfg


def names_of(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for group in values or [] for v in str(group).split(",") if v.strip()]


@dataclass(frozen=True)
class ValidationConfig:
    """How artifacts are compared with FP32.

    Attributes:
        metrics: extra metrics to report (registered names); every built-in metric that applies is reported.
        rtol, atol, check_error_stat: Polygraphy SimpleCompareFunc settings for the pass/fail verdict.
    """

    metrics: tuple[str, ...] = ()
    rtol: float = 5e-2
    atol: float = 5e-2
    check_error_stat: str = "median"

    def validate(self) -> None:
        from trtq.metrics import METRICS, is_known_metric

        for m in self.metrics:
            if not is_known_metric(m):
                raise UsageError(METRICS.unknown_message(m))
        if self.rtol < 0 or self.atol < 0:
            raise UsageError("--rtol and --atol must be >= 0")
        stats = ("elemwise", "max", "mean", "median", "quantile")
        if self.check_error_stat not in stats:
            raise UsageError(f"--check-error-stat {self.check_error_stat!r}: choose from {', '.join(stats)}")

    @classmethod
    def from_args(cls, args: Any, base: ValidationConfig | None = None) -> ValidationConfig:
        cfg = from_args(
            base or cls(), args, {"rtol": "rtol", "atol": "atol", "check_error_stat": "check_error_stat"}
        )
        if hasattr(args, "report_metric"):
            cfg = replace(cfg, metrics=tuple(names_of(args.report_metric)))
        return cfg
