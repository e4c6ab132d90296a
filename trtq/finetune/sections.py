"""The sections of a `QATConfig` that are QAT's own: the training loop, the data, the hand-off.

`TrainConfig` (the built-in loop, with the batch size, data workers and the run's seed), `QATDataConfig`
(training, validation and calibration data, subsets, preprocessing) and `HandoffConfig` (the build path from
`model.qat.onnx`). The other sections are shared with `trtq build` (`trtq.config`). Each validates itself
(`validate()` raises a UsageError naming the option) and has `from_args(args, base)`: only options present in
the argparse namespace override `base`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from trtq.config.data import preprocess_from_args
from trtq.config.sections import from_args, section_to_dict
from trtq.errors import UsageError

__all__ = ["TrainConfig", "QATDataConfig", "HandoffConfig", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adamw")
#: FP32 learning rates the default QAT rate is a tenth of (SGD scaled linearly with batch size / 256).
_FP32_LR = {"sgd": 0.1, "adamw": 1e-3}


@dataclass
class TrainConfig:
    """Hyper-parameters of the built-in loop, and the run's batch size, data workers and seed.

    Attributes:
        epochs: QAT epochs (0 exports the calibrated model untrained, i.e. PTQ through the QAT path).
        lr: peak learning rate; None = `fp32_lr` / 10.
        fp32_lr: the FP32 training rate; None = 0.1 x batch/256 for SGD, 1e-3 for AdamW.
        optimizer: "sgd" (momentum, Nesterov) or "adamw".
        momentum: SGD momentum.
        weight_decay: applied to weights only (not to biases or normalisation parameters).
        label_smoothing: cross-entropy label smoothing.
        warmup_epochs: linear warm-up length (may be fractional).
        freeze_bn_epoch: epoch index from which BatchNorm running statistics are frozen (0 = from the
            start; >= epochs = never); None = epochs // 2.
        quant_delay_epochs: epochs trained in FP32 before quantizers switch on.
        grad_clip: max gradient norm (None = no clipping).
        batch_size: batch size of training, calibration and evaluation.
        amp: mixed precision (FP16 autocast + gradient scaling); None = on for CUDA, off on CPU.
        workers: DataLoader worker processes.
        seed: seeds the run: model construction, data subsets, shuffling; the same seed gives the same run.
    """

    epochs: int = 2
    lr: float | None = None
    fp32_lr: float | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.0
    freeze_bn_epoch: int | None = None
    quant_delay_epochs: int = 0
    grad_clip: float | None = 5.0
    batch_size: int = 32
    amp: bool | None = None
    workers: int = 0
    seed: int = 0

    def validate(self) -> None:
        """Raise UsageError for settings that cannot work, naming the option."""
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"--optimizer {self.optimizer!r} is not supported; choose from {', '.join(OPTIMIZERS)}"
            )
        if self.epochs < 0:
            raise UsageError(f"--epochs must be >= 0, not {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, not {self.batch_size}")
        for opt in ("lr", "fp32_lr"):
            v = getattr(self, opt)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise UsageError(f"--{opt.replace('_', '-')} must be a positive number, not {v}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        if self.warmup_epochs < 0 or self.quant_delay_epochs < 0:
            raise UsageError("--warmup-epochs and --quant-delay-epochs must be >= 0")
        if self.quant_delay_epochs and self.quant_delay_epochs >= self.epochs:
            raise UsageError(
                f"--quant-delay-epochs {self.quant_delay_epochs} leaves no quantized epoch out of --epochs {self.epochs}"
            )
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise UsageError(f"--grad-clip must be > 0, not {self.grad_clip}")
        if self.workers < 0:
            raise UsageError(f"--workers must be >= 0, not {self.workers}")

    def resolved_lr(self) -> float:
        """The peak learning rate: `lr`, else a tenth of the FP32 rate."""
        if self.lr is not None:
            return float(self.lr)
        fp32 = self.fp32_lr
        if fp32 is None:
            fp32 = _FP32_LR[self.optimizer] * (self.batch_size / 256 if self.optimizer == "sgd" else 1.0)
        return float(fp32) / 10.0

    def resolved_freeze_bn_epoch(self) -> int:
        """The epoch index BatchNorm statistics freeze from (`freeze_bn_epoch`, else epochs // 2)."""
        return self.epochs // 2 if self.freeze_bn_epoch is None else int(self.freeze_bn_epoch)

    def to_json(self) -> dict[str, Any]:
        """The settings with the resolved learning rate and BatchNorm freeze epoch (metrics.json's "config")."""
        d = asdict(self)
        d["resolved_lr"] = self.resolved_lr()
        d["resolved_freeze_bn_epoch"] = self.resolved_freeze_bn_epoch()
        return d

    @classmethod
    def from_args(cls, args: Any, base: TrainConfig | None = None) -> TrainConfig:
        """`base` with the training options present in `args` (`--grad-clip 0` = none, `--no-amp`)."""
        names = [f.name for f in fields(cls) if f.name != "amp"]
        cfg = from_args(base or cls(), args, {n: n for n in names})
        if hasattr(args, "grad_clip") and not args.grad_clip:
            cfg = replace(cfg, grad_clip=None)
        if getattr(args, "no_amp", False):
            cfg = replace(cfg, amp=False)
        return cfg


def _check_count(value: Any, option: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise UsageError(f"{option} must be a number of samples (0 or None = all), not {value!r}")


@dataclass(frozen=True)
class QATDataConfig:
    """The data a QAT run reads (image folders, .npy/.npz, arrays; see `trtq.data.load_data`).

    Attributes:
        train_data: labelled training data; may be None with a user `train_fn` (then `calib_data` is needed).
        val_data: labelled validation data (best epoch, FP32/PTQ/QAT comparison, the hand-off's evaluation).
        calib_data: calibration data for the initial ranges; None = `train_data`.
        calib_samples: reproducible calibration subset (None or 0 = all).
        train_samples: reproducible training subset (None or 0 = all).
        val_samples: reproducible validation subset (None or 0 = all).
        preprocess: image preprocessing (`trtq.data.Preprocess`, preset name or dict); None = ImageNet's
            preset adapted to the model's input channels.
    """

    train_data: Any = None
    val_data: Any = None
    calib_data: Any = None
    calib_samples: int | None = 512
    train_samples: int | None = None
    val_samples: int | None = None
    preprocess: Any = None

    def validate(self, built_in_loop: bool = True) -> None:
        """Raise UsageError for missing data the run needs or a bad subset size, naming the option."""
        for name in ("calib_samples", "train_samples", "val_samples"):
            _check_count(getattr(self, name), "--" + name.replace("_", "-"))
        if built_in_loop and self.train_data is None:
            raise UsageError("--train-data is required (the built-in loop trains on it)")
        if built_in_loop and self.val_data is None:
            raise UsageError("--val-data is required (best-epoch selection and the FP32/PTQ/QAT comparison)")
        if self.calib_data is None and self.train_data is None:
            raise UsageError("--calib-data is required when there is no --train-data")

    @classmethod
    def from_args(cls, args: Any, base: QATDataConfig | None = None) -> QATDataConfig:
        """`base` with the data and preprocessing options present in `args` (0 samples = all)."""
        names = ("train_data", "val_data", "calib_data", "calib_samples", "train_samples", "val_samples")
        cfg = from_args(base or cls(), args, {n: n for n in names})
        for name in names[3:]:
            if hasattr(args, name) and getattr(args, name) == 0:
                cfg = replace(cfg, **{name: None})
        pre = preprocess_from_args(args)
        return replace(cfg, preprocess=pre) if pre is not None else cfg


#: Engine options (argparse dests) `trtq.config.engine_from_args` reads, besides `--no-engine`.
_ENGINE_OPTIONS = ("batch", "shapes", "workspace_gb", "timing_cache", "opt_level", "hardware_compat",
                   "version_compat", "precision", "min_int8_fraction", "verbose", "engine_calib_cache")  # fmt: skip


@dataclass(frozen=True)
class HandoffConfig:
    """The hand-off into the build path (`trtq.build_from_qat`: OUT/run with the typed graph, engine, report).

    Attributes:
        enabled: continue into the build path (`--no-build` stops after model.qat.onnx).
        typed_graph: write the FP16-typed model.trt.onnx there (`--no-typed`).
        build_engine: try the engine step there (needs TensorRT and a GPU; `--no-engine`).
        engine: `trtq.engines.EngineOptions` for that step; None = the build path's defaults.
    """

    enabled: bool = True
    typed_graph: bool = True
    build_engine: bool = True
    engine: Any = None

    def validate(self) -> None:
        from trtq.engines import EngineOptions

        if self.engine is not None and not isinstance(self.engine, EngineOptions):
            raise UsageError(f"engine= must be a trtq.EngineOptions, not {type(self.engine).__name__}")

    @classmethod
    def from_args(cls, args: Any, base: HandoffConfig | None = None) -> HandoffConfig:
        """`base` with `--no-build`, `--no-typed`, `--no-engine` and the engine options present in `args`."""
        from trtq.config import EngineConfig, engine_from_args
        from trtq.engines import EngineOptions

        cfg = base or cls()
        for dest, fld in (
            ("no_build", "enabled"),
            ("no_typed", "typed_graph"),
            ("no_engine", "build_engine"),
        ):
            if hasattr(args, dest):
                cfg = replace(cfg, **{fld: not getattr(args, dest)})
        if any(hasattr(args, dest) for dest in _ENGINE_OPTIONS):
            eng = engine_from_args(args, EngineConfig(**asdict(cfg.engine)) if cfg.engine else EngineConfig())
            cfg = replace(
                cfg, engine=EngineOptions(**{f.name: getattr(eng, f.name) for f in fields(EngineOptions)})
            )
        return cfg

    def to_json(self) -> dict[str, Any]:
        d = section_to_dict(self)
        d["engine"] = None if self.engine is None else self.engine.to_json()
        return d
