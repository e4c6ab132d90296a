"""`QATConfig`: everything one `trtq qat` run does, as typed sections.

Sections: `calibration` (the initial ranges: `trtq.config.CalibrationConfig`, one method and its parameters),
`data` (`QATDataConfig`), `train` (`TrainConfig`: the built-in loop, with the batch size, data workers and
the run's seed), `placement` (`trtq.placement.PlacementConfig`), `export` (`trtq.config.ExportConfig`) and
`handoff` (`HandoffConfig`: the build path from `model.qat.onnx`), plus `device`, `threads` and `force`.

Each section has its defaults and `from_args(args, base)`: only options present in the argparse namespace
override `base` (the CLI gives every option `default=argparse.SUPPRESS`). `trtq.qat(..., **overrides)` takes
the same settings by keyword (`OVERRIDES`), or whole sections by name, applied by `QATConfig.with_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from trtq.config import CalibrationConfig, ExportConfig, placement_from_args
from trtq.config.calibration import DEFAULT_METHOD
from trtq.config.sections import from_args, section_to_dict
from trtq.errors import UsageError
from trtq.finetune.sections import HandoffConfig, QATDataConfig, TrainConfig
from trtq.placement import PlacementConfig

__all__ = ["QATConfig", "OVERRIDES", "SECTIONS"]

#: Sections of a `QATConfig` by name, with their types (what `with_overrides` accepts as a whole).
SECTIONS: dict[str, type] = {
    "calibration": CalibrationConfig,
    "data": QATDataConfig,
    "train": TrainConfig,
    "placement": PlacementConfig,
    "export": ExportConfig,
    "handoff": HandoffConfig,
}

#: keyword of `trtq.qat()` -> (section, field); "percentile" goes into the calibration parameters and
#: "exclude" is added to the placement's `exclude_nodes`.
OVERRIDES: dict[str, tuple[str, str]] = {
    "calib": ("calibration", "method"),
    "percentile": ("calibration", "params"),
    **{k: ("data", k) for k in ("calib_data", "calib_samples", "train_samples", "val_samples", "preprocess")},
    **{f.name: ("train", f.name) for f in fields(TrainConfig)},
    "exclude": ("placement", "exclude_nodes"),
    **{k: ("export", k) for k in ("opset", "weights", "checkpoint", "trust_pickle")},
    "handoff": ("handoff", "enabled"),
    "typed_graph": ("handoff", "typed_graph"),
    "build_engine": ("handoff", "build_engine"),
    "engine": ("handoff", "engine"),
}

#: Settings that are fields of `QATConfig` itself.
_TOP = ("device", "threads", "force")


@dataclass
class QATConfig:
    """A whole QAT run, section by section (see the module doc).

    Attributes:
        calibration: the method (one registered method or alias) and parameters of the initial ranges.
        data: training, validation and calibration data, subsets, preprocessing.
        train: the built-in loop's hyper-parameters, batch size, data workers and the seed.
        placement: where Q/DQ go, as for PTQ (put the layers `trtq build --max-drop` kept FP16 in
            `exclude_nodes`).
        export: ONNX opset and how the model's weights are loaded.
        handoff: the build path from model.qat.onnx.
        device: "auto" (CUDA when PyTorch sees a GPU), "cpu", "cuda" or "cuda:N".
        threads: PyTorch CPU threads for the run (None = PyTorch's default). A run is bitwise reproducible
            for a seed and a thread count; another count may change the last bits.
        force: replace a non-empty output folder that trtq made.
    """

    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    data: QATDataConfig = field(default_factory=QATDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    device: str = "auto"
    threads: int | None = None
    force: bool = False

    @property
    def seed(self) -> int:
        """The run's seed (`train.seed`)."""
        return self.train.seed

    @property
    def batch_size(self) -> int:
        """The batch size of every pass (`train.batch_size`)."""
        return self.train.batch_size

    @property
    def method(self) -> str:
        """The registered calibration method of the initial ranges (aliases resolved)."""
        from trtq.calibrators import canonical_method, list_calibrators

        method = str(self.calibration.method or DEFAULT_METHOD).strip()
        name = canonical_method(method)
        if name not in list_calibrators():
            if method == "all" or "," in method:
                raise UsageError(
                    f"--calib {method}: QAT starts from one method's ranges; choose one of "
                    f"{', '.join(list_calibrators())}"
                )
            raise UsageError(
                f"--calib {method!r} is not a method; choose from {', '.join(list_calibrators())}"
            )
        return name

    def calibrator_kwargs(self) -> dict[str, Any]:
        """The parameters of `method` given in `calibration.params`, converted and checked."""
        return self.calibration.method_kwargs(self.method)

    def validate(self, *, built_in_loop: bool = True) -> QATConfig:
        """Check every section and their combinations before anything runs; returns self.

        Args:
            built_in_loop: the built-in loop trains (no user `train_fn`): its settings and labelled
                training and validation data are required.

        Raises:
            UsageError: naming the option to change.
        """
        method = self.method
        # the --percentile shortcut applies to --calib percentile only, as before; other parameters must fit
        params = {
            k: v for k, v in self.calibration.params.items() if k != "percentile" or method == "percentile"
        }
        replace(self.calibration, method=method, params=params).validate()
        if self.calibration.cache is not None:
            raise UsageError("--calib-cache: QAT calibrates its initial ranges itself; remove the option")
        if built_in_loop:
            self.train.validate()
        self.data.validate(built_in_loop)
        self.export.validate()
        self.placement.validate()
        self.handoff.validate()
        device = str(self.device)
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise UsageError(f"--device {device!r}: choose cpu, cuda or auto")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise UsageError(f"--threads must be >= 1, not {self.threads}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON values (in-memory data and models appear as `<TypeName>`)."""
        return {
            "calibration": section_to_dict(self.calibration),
            "data": section_to_dict(self.data),
            "train": self.train.to_json(),
            "placement": section_to_dict(self.placement),
            "export": section_to_dict(self.export),
            "handoff": self.handoff.to_json(),
            "device": self.device,
            "threads": self.threads,
        }

    @classmethod
    def from_args(cls, args: Any, base: QATConfig | None = None) -> QATConfig:
        """`base` (default: the defaults) with every option present in the argparse namespace `args`."""
        cfg = base or cls()
        return replace(
            from_args(cfg, args, {k: k for k in _TOP}),
            calibration=CalibrationConfig.from_args(args, cfg.calibration),
            data=QATDataConfig.from_args(args, cfg.data),
            train=TrainConfig.from_args(args, cfg.train),
            placement=placement_from_args(args, cfg.placement),
            export=ExportConfig.from_args(args, cfg.export),
            handoff=HandoffConfig.from_args(args, cfg.handoff),
        )

    def with_overrides(self, **overrides: Any) -> QATConfig:
        """A copy with keyword settings applied: `OVERRIDES` names, `device`/`threads`/`force`, or sections.

        Whole sections apply first and `exclude` last, whatever the keyword order; None for `placement` or
        `engine` keeps the default.

        Raises:
            UsageError: an unknown keyword, or a section of the wrong type.
        """
        cfg = self
        for key in sorted(overrides, key=lambda k: (k not in SECTIONS, k == "exclude")):
            value = overrides[key]
            if key in SECTIONS and (key not in OVERRIDES or isinstance(value, SECTIONS[key])):
                if value is None and key == "placement":
                    continue
                if not isinstance(value, SECTIONS[key]):
                    raise UsageError(
                        f"trtq.qat() {key}= must be a {SECTIONS[key].__name__}, not {type(value).__name__}"
                    )
                cfg = replace(cfg, **{key: value})
            elif key in _TOP:
                cfg = replace(cfg, **{key: value})
            elif key == "percentile":
                params = {**cfg.calibration.params, "percentile": value}
                cfg = replace(cfg, calibration=replace(cfg.calibration, params=params))
            elif key == "exclude":
                names = (value,) if isinstance(value, str) else tuple(value or ())
                placement = replace(cfg.placement, exclude_nodes=(*cfg.placement.exclude_nodes, *names))
                cfg = replace(cfg, placement=placement)
            elif key in OVERRIDES:
                section, name = OVERRIDES[key]
                cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{name: value})})
            else:
                valid = ", ".join(sorted([*OVERRIDES, *_TOP]))
                raise UsageError(
                    f"trtq.qat() got an unknown setting {key!r}; valid settings: {valid} and the sections "
                    f"{', '.join(SECTIONS)}"
                )
        return cfg
