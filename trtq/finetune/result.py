"""What a QAT run returns: `QATResult`, whose typed fields are the content of metrics.json.

`QATResult.to_json()` is metrics.json (the keys `trtq build --from-qat`, the report's QAT section and users
read: `seed`, `device`, `calibration`, `quantized_modules`, `output_quantizers`, `export_only`, `config`,
`training`, `export`, `export_ptq`, `export_check`, `accuracy`, `torch`, `timings_s`); `QATResult.metrics`
is the same without the timings, read-only; `summary_json()` is what `trtq qat --json` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtq.finetune.check import ExportCheck
from trtq.finetune.config import QATConfig
from trtq.finetune.export import ExportSummary
from trtq.finetune.outputs import OutputTarget
from trtq.finetune.targets import QuantTarget
from trtq.finetune.train import History

__all__ = [
    "QATResult",
    "AccuracyRow",
    "QATAccuracy",
    "TorchAccuracy",
    "CalibrationRecord",
    "UserTraining",
]


@dataclass
class AccuracyRow:
    """One model's accuracy in ONNX Runtime (metric registry: top1_accuracy, top1_agreement, cosine).

    Attributes:
        top1: top-1 accuracy on the validation labels.
        agreement_with_fp32: share of samples with FP32's top-1 class (None for FP32 itself).
        cosine_vs_fp32: mean cosine similarity of the outputs to FP32's (None for FP32 itself).
    """

    top1: float
    agreement_with_fp32: float | None = None
    cosine_vs_fp32: float | None = None

    def to_json(self) -> dict[str, Any]:
        if self.agreement_with_fp32 is None and self.cosine_vs_fp32 is None:
            return {"top1": self.top1}
        return asdict(self)


@dataclass
class QATAccuracy:
    """FP32 (model.onnx), PTQ (model.ptq.onnx) and QAT (model.qat.onnx) on the validation data."""

    samples: int
    fp32: AccuracyRow
    ptq: AccuracyRow
    qat: AccuracyRow

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, **{k: getattr(self, k).to_json() for k in ("fp32", "ptq", "qat")}}


@dataclass
class TorchAccuracy:
    """Validation top-1 in PyTorch: the FP32 module, the calibrated (epoch 0) and the best QAT model.

    Attributes:
        fp32_top1: the user's FP32 module.
        ptq_top1: epoch 0 with quantizers on (None when a quantization delay kept epoch 0 in FP32).
        qat_top1: the best epoch.
    """

    fp32_top1: float
    ptq_top1: float | None
    qat_top1: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CalibrationRecord:
    """The initial ranges: method, samples, amax per activation tensor."""

    method: str
    samples: int
    amax: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "samples": self.samples, "amax": dict(self.amax)}


@dataclass
class UserTraining:
    """Training by a user `train_fn`: its name and the metrics it returned."""

    train_fn: str
    user_metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"train_fn": self.train_fn, "user_metrics": dict(self.user_metrics)}


@dataclass
class QATResult:
    """What `trtq.qat` returns (see the module doc).

    Attributes:
        out_dir: the QAT output folder.
        config: the resolved configuration of the run.
        device: "cpu" or "cuda": where the model trained.
        artifacts: file name -> path.
        timings: seconds per step (kept out of metrics.json's reproducible part).
        calibration: the initial ranges.
        quantized_modules: the torch modules with input and weight quantizers.
        output_quantizers: the module calls with output quantizers.
        export_only: plan tensors quantized at export only -> why.
        training: the built-in loop's `History`, or the user function's `UserTraining`.
        export: what the export did to model.qat.onnx (its placement check included).
        ptq_export: the same for model.ptq.onnx.
        export_check: the fake-quant PyTorch model against model.qat.onnx.
        accuracy: FP32 / PTQ / QAT in ONNX Runtime (None without labelled validation data).
        torch_accuracy: FP32 / calibrated / best epoch in PyTorch (built-in loop only).
        build: the `trtq.pipeline.BuildResult` of the hand-off (None when it is off).
    """

    out_dir: Path
    config: QATConfig = field(default_factory=QATConfig)
    device: str = "cpu"
    artifacts: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    calibration: CalibrationRecord | None = None
    quantized_modules: list[QuantTarget] = field(default_factory=list)
    output_quantizers: list[OutputTarget] = field(default_factory=list)
    export_only: dict[str, str] = field(default_factory=dict)
    training: History | UserTraining | None = None
    export: ExportSummary | None = None
    ptq_export: ExportSummary | None = None
    export_check: ExportCheck | None = None
    accuracy: QATAccuracy | None = None
    torch_accuracy: TorchAccuracy | None = None
    build: Any = None

    @property
    def qat_onnx(self) -> Path:
        """model.qat.onnx."""
        return self.artifacts["model.qat.onnx"]

    @property
    def history(self) -> History | None:
        """The built-in loop's per-epoch records (None with a user `train_fn`)."""
        return self.training if isinstance(self.training, History) else None

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json without the timings (a new dict each time: edit the typed fields, not this)."""
        out = self.to_json()
        out.pop("timings_s")
        return out

    def to_json(self) -> dict[str, Any]:
        """The content of metrics.json."""
        out: dict[str, Any] = {"seed": self.config.seed, "device": self.device}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_json()
        out["quantized_modules"] = [asdict(t) for t in self.quantized_modules]
        out["output_quantizers"] = [asdict(o) for o in self.output_quantizers]
        out["export_only"] = dict(self.export_only)
        out["config"] = self.config.train.to_json()
        for key, value in (("training", self.training), ("export", self.export)):
            if value is not None:
                out[key] = value.to_json()
        if self.ptq_export is not None:
            out["export_ptq"] = {
                "added_at_export": dict(self.ptq_export.added_at_export),
                "placement_matches": self.ptq_export.placement.matches,
            }
        for key, value in (("export_check", self.export_check), ("accuracy", self.accuracy),
                           ("torch", self.torch_accuracy)):  # fmt: skip
            if value is not None:
                out[key] = value.to_json()
        out["timings_s"] = {k: round(v, 3) for k, v in self.timings.items()}
        return out

    def summary_json(self) -> dict[str, Any]:
        """What `trtq qat --json` prints: folders, accuracy, checks, timings, the resolved configuration."""
        metrics = self.to_json()
        return {
            "out_dir": str(self.out_dir),
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
            "accuracy": metrics.get("accuracy", {}),
            "export_check": metrics.get("export_check", {}),
            "placement_matches_ptq": None if self.export is None else self.export.placement.matches,
            "timings_s": metrics["timings_s"],
            "config": self.config.to_dict(),
            "build": None if self.build is None else self.build.to_json(),
        }
