"""Typed results of a run: each stage records one, `trtq.report` renders them, report.json holds them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtq import artifacts as A

__all__ = [
    "BuildResult",
    "PlacementSummary",
    "CalibrationSummary",
    "TypingSummary",
    "SensitivitySummary",
    "EngineSummary",
    "ReportSection",
    "REPORT_FORMAT",
]

#: The `format` of report.json.
REPORT_FORMAT = "trtq.report/2"


@dataclass
class PlacementSummary:
    """Where Q/DQ went: counts, the candidate nodes left in high precision and why, the rules that ran."""

    quantized_nodes: int
    activation_qdq: int
    weight_qdq: int
    scale_groups: int
    skipped: list[dict[str, str]]
    rules: list[str] = field(default_factory=list)
    qat_check: dict[str, Any] | None = None

    @classmethod
    def from_plan(cls, plan: Any) -> PlacementSummary:
        return cls(
            quantized_nodes=len(plan.quantized_nodes),
            activation_qdq=len(plan.activations),
            weight_qdq=len(plan.weights),
            scale_groups=len(plan.scale_groups),
            skipped=[
                {"node": d.node, "op_type": d.op_type, "rule": d.rule, "reason": d.reason}
                for d in plan.decisions
                if not d.quantized
            ],
            rules=list(plan.enabled_rules or []),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CalibrationSummary:
    """Which thresholds the graph got and where from ("data", "cache" or "qat")."""

    method: str
    methods: list[str]
    tensors: int
    source: str = "data"
    samples: int | None = None
    cache: str | None = None
    choose_metric: str | None = None
    scores: dict[str, dict[str, float]] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TypingSummary:
    """What the strongly typed graph keeps in FP32, and what the FP16-overflow ranges were measured on."""

    fp32_nodes: list[dict[str, str]]
    ranges_from: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SensitivitySummary:
    """The ranking (when measured) and the FP16 fallback choice."""

    sensitivity: Any = None  # trtq.sensitivity.SensitivityResult
    fallback: Any = None  # trtq.sensitivity.FallbackResult

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        s = self.sensitivity
        if s is not None:
            out.update(
                metric=s.metric,
                samples=s.samples,
                fp32_metric=s.fp32_metric,
                int8_metric=s.int8_metric,
                layers=len(s.layers),
                ranked=s.ranked_nodes[:10],
                analysis_s=round(s.timings.get("total", 0.0), 3),
            )
        if self.fallback is not None:
            fb = {k: v for k, v in self.fallback.to_json().items() if k != "evaluations"}
            fb["evaluations"] = len(self.fallback.evaluations)
            out["fallback"] = fb
        return out


@dataclass
class EngineSummary:
    """The engine step: whether it ran, what was built, its validation against FP32 and its latency."""

    status: str = "not attempted"
    built: bool = False
    info: dict[str, Any] | None = None
    skipped_reason: str | None = None
    validation: Any = None  # trtq.validate.ValidationResult
    bench: list[dict[str, Any]] = field(default_factory=list)
    handoff: list[dict[str, Any]] = field(
        default_factory=list
    )  # trtexec / polygraphy commands (engines.handoff)
    handoff_note: str | None = None  # why there are none
    error: str | None = None  # the engine step failed (the CPU artifacts are kept)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "handoff": self.handoff,
            "handoff_note": self.handoff_note,
            "built": self.built,
            "info": self.info,
            "skipped_reason": self.skipped_reason,
            "error": self.error,
            "validation": None if self.validation is None else self.validation.to_json(),
            "bench": self.bench,
        }


@dataclass
class ReportSection:
    """An extra section of report.md (and, with `key`, of report.json), e.g. the QAT comparison."""

    title: str
    markdown: str
    key: str | None = None
    data: Any = None


@dataclass
class BuildResult:
    """What `trtq.build` returns: where everything went, each stage's typed result, the engine when built.

    Attributes:
        out_dir: the run folder.
        config: the configuration the run used (recorded in report.json).
        artifacts: artifact name -> path.
        export: `trtq.export.ExportResult`.
        placement, calibration, sensitivity, typing: the stages' summaries.
        validation: FP32 vs INT8 (and the typed graph) on the evaluation data (`trtq.validate.ValidationResult`).
        engine_info: the engine step.
        engine: the serialized engine where TensorRT built one.
        timings: seconds per stage.
        memory_mb: peak resident memory (MiB) per stage, where /proc says (`trtq.pipeline.memory`).
        warnings: what a careful user should read (also in report.md).
        sections: extra report sections.
    """

    out_dir: Path
    config: Any = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    export: Any = None
    placement: PlacementSummary | None = None
    calibration: CalibrationSummary | None = None
    sensitivity: SensitivitySummary | None = None
    typing: TypingSummary | None = None
    validation: Any = None
    engine_info: EngineSummary = field(default_factory=EngineSummary)
    engine: bytes | None = None
    timings: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sections: list[ReportSection] = field(default_factory=list)

    @property
    def int8_onnx(self) -> Path:
        """The TensorRT-ready Q/DQ ONNX (FP32 typed)."""
        return self.artifacts[A.INT8_ONNX]

    @property
    def engine_status(self) -> str:
        return self.engine_info.status

    @property
    def calib_method(self) -> str:
        return self.calibration.method if self.calibration is not None else ""

    def to_json(self) -> dict[str, Any]:
        """report.json."""
        from trtq.plugins import loaded_plugins

        def j(x: Any) -> Any:
            return None if x is None else x.to_json() if hasattr(x, "to_json") else x

        doc: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "out_dir": str(self.out_dir),
            "config": None if self.config is None else self.config.to_dict(),
            "plugins": loaded_plugins(),
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
            "export": None if self.export is None else self.export.summary(),
            "placement": j(self.placement),
            "calibration": j(self.calibration),
            "sensitivity": j(self.sensitivity),
            "typing": j(self.typing),
            "validation": j(self.validation),
            "engine": self.engine_info.to_json(),
            "engine_status": self.engine_status,
            "warnings": list(self.warnings),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "memory_mb": {k: round(v, 1) for k, v in self.memory_mb.items()},
        }
        for s in self.sections:
            if s.key is not None:
                doc[s.key] = s.data
        return doc
