"""`BuildConfig`: everything one `trtq build` does, as typed sections, recorded in report.json.

`trtq build --config run/report.json` (or a hand-written recipe.json holding the same "config" object) repeats
a run; options given on the command line override what the file says. `trtq.build(model, calib_data, out,
**overrides)` takes the same settings by keyword (see `OVERRIDES`), or a whole `BuildConfig` as `config=`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trtq.config.calibration import CalibrationConfig
from trtq.config.data import DataConfig, with_preset
from trtq.config.sections import (
    ExportConfig,
    FallbackConfig,
    TypingConfig,
    ValidationConfig,
    section_from_dict,
    section_to_dict,
)
from trtq.config.task import TaskConfig
from trtq.config.weights import WeightsConfig
from trtq.engines.options import EngineOptions, parse_batch, parse_shapes
from trtq.errors import UsageError
from trtq.placement import PlacementConfig

__all__ = [
    "BuildConfig",
    "EngineConfig",
    "BenchConfig",
    "OVERRIDES",
    "CONFIG_FORMAT",
    "placement_from_args",
    "engine_from_args",
    "bench_from_args",
]

#: The `format` key of a recorded configuration.
CONFIG_FORMAT = "trtq.config/1"


@dataclass
class EngineConfig(EngineOptions):
    """The engine step: `trtq.engines.EngineOptions` plus whether to try it (needs TensorRT and a GPU)."""

    enabled: bool = True


def _bench_settings() -> type:
    from trtq.benchmark import BenchSettings

    return BenchSettings


def BenchConfig(**kwargs: Any) -> Any:  # noqa: N802  (a factory standing for the BenchSettings type)
    """The benchmark settings (`trtq.benchmark.BenchSettings`)."""
    return _bench_settings()(**kwargs)


def _default_bench() -> Any:
    return BenchConfig()


#: Section name -> its type (BenchSettings is imported lazily: it lives with the benchmark).
SECTIONS = (
    "task",
    "export",
    "data",
    "placement",
    "calibration",
    "weights",
    "fallback",
    "typing",
    "validation",
    "engine",
    "bench",
)


@dataclass
class BuildConfig:
    """A whole build, section by section.

    Attributes:
        model: what to export (torchvision name, package.module:factory, saved model file, .onnx, or in Python
            an nn.Module / ModelProto).
        out: the run folder.
        format: the quantization format (`trtq.formats`; "int8").
        seed: seeds model construction (random init) and data subsets.
        plugins: modules imported before the run (they register calibrators, rules, metrics).
        from_qat: continue from a QAT graph (`trtq qat`'s model.qat.onnx) instead of calibrating.
        fp32_onnx: with `from_qat`, the FP32 reference (default: model.onnx beside it).
        force: replace an existing run folder that trtq made (not recorded).
    """

    model: Any = None
    out: str | None = None
    format: str = "int8"
    seed: int = 0
    plugins: tuple[str, ...] = ()
    from_qat: str | None = None
    fp32_onnx: str | None = None
    task: TaskConfig = field(default_factory=TaskConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    data: DataConfig = field(default_factory=DataConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    typing: TypingConfig = field(default_factory=TypingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    bench: Any = field(default_factory=_default_bench)
    force: bool = False

    # checks -------------------------------------------------------------------------------------------------
    def validate_sections(self) -> BuildConfig:
        """Check every section and the format on their own (what every stage command needs); returns self."""
        from trtq.formats import FORMATS

        if self.format not in FORMATS:
            raise UsageError(FORMATS.unknown_message(self.format))
        for name in SECTIONS:
            section = getattr(self, name)
            if hasattr(section, "validate"):
                section.validate()
        return self

    def validate(self) -> BuildConfig:
        """Check every section and the combinations a build needs; returns self. Runs before any stage."""
        self.validate_sections()
        if self.out is None or str(self.out) == "":
            raise UsageError("--out is required: the run folder to create")
        if self.from_qat is None:
            if self.model is None:
                raise UsageError("--model is required (or --from-qat MODEL_QAT_ONNX)")
            if self.data.calib_data is None and self.calibration.cache is None:
                raise UsageError(
                    "--calib-data is required (or --calib-cache to take scales from a TensorRT cache)"
                )
            if (
                self.calibration.cache is not None
                and self.data.eval_data is None
                and self.data.calib_data is None
            ):
                raise UsageError(
                    "--eval-data is needed when scales come from --calib-cache (to export and validate)"
                )
        else:
            if self.data.eval_data is None:
                raise UsageError("--from-qat needs --eval-data to validate the QAT graph against FP32")
            if self.model is not None:
                raise UsageError("--from-qat continues from a QAT graph; it takes no --model")
        if self.engine.calib_cache is not None:
            raise UsageError(
                "the engine of a build is made from its Q/DQ graph, which takes no calibration cache (TensorRT would "
                "ignore it); use trtq engine --calib-cache with the FP32 model.onnx for implicit INT8"
            )
        if self.fp32_onnx is not None and self.from_qat is None:
            raise UsageError("--fp32-onnx only applies with --from-qat; remove it or add --from-qat")
        if isinstance(self.model, (str, os.PathLike)) and str(self.model).lower().endswith(".onnx"):
            for opt, value in (("--checkpoint", self.export.checkpoint), ("--weights", self.export.weights)):
                if value is not None:
                    raise UsageError(
                        f"{opt} loads PyTorch weights; it cannot apply to the ONNX model {self.model}"
                    )
        return self

    def input_paths(self) -> list[Any]:
        """Every file or folder the run reads (none may lie inside a run folder being replaced)."""
        return [self.model, self.data.calib_data, self.data.eval_data, self.task.labels, self.export.checkpoint, self.calibration.cache,
                self.from_qat, self.fp32_onnx, self.engine.timing_cache, self.engine.calib_cache]  # fmt: skip

    # serialisation ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON values (report.json's "config")."""
        out: dict[str, Any] = {"format_version": CONFIG_FORMAT}
        for f in fields(self):
            if f.name == "force":
                continue
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                out[f.name] = value.to_json() if hasattr(value, "to_json") else section_to_dict(value)
            elif f.name == "model" and value is not None and not isinstance(value, (str, os.PathLike)):
                out[f.name] = f"<{type(value).__name__}>"
            else:
                out[f.name] = (
                    list(value)
                    if isinstance(value, tuple)
                    else (str(value) if isinstance(value, Path) else value)
                )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "the configuration") -> BuildConfig:
        """Rebuild a configuration from `to_dict` output (the "config" of a report.json, or a recipe.json)."""
        if "config" in data and isinstance(data["config"], Mapping):
            data = data["config"]
        data = dict(data)
        version = data.pop("format_version", CONFIG_FORMAT)
        if version != CONFIG_FORMAT:
            raise UsageError(f"{source} is a {version!r} configuration; this trtq reads {CONFIG_FORMAT!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{source} has unknown keys {', '.join(unknown)}")
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key == "task":
                kw[key] = section_from_dict(TaskConfig, value, key)
            elif key == "export":
                kw[key] = section_from_dict(ExportConfig, value, key)
            elif key == "data":
                kw[key] = section_from_dict(DataConfig, value, key)
            elif key == "calibration":
                cal = section_from_dict(CalibrationConfig, value, key)
                kw[key] = replace(cal, params=dict(value.get("params") or {}))
            elif key == "weights":
                kw[key] = section_from_dict(WeightsConfig, value, key)
            elif key == "fallback":
                kw[key] = section_from_dict(FallbackConfig, value, key)
            elif key == "typing":
                kw[key] = section_from_dict(TypingConfig, value, key)
            elif key == "validation":
                kw[key] = section_from_dict(ValidationConfig, value, key)
            elif key == "placement":
                kw[key] = section_from_dict(PlacementConfig, value, key)
            elif key == "engine":
                eng = dict(value or {})
                if eng.get("shapes"):
                    eng["shapes"] = {n: tuple(tuple(s) for s in r) for n, r in eng["shapes"].items()}
                kw[key] = section_from_dict(EngineConfig, eng, key)
            elif key == "bench":
                kw[key] = section_from_dict(_bench_settings(), value, key)
            elif key == "plugins":
                kw[key] = tuple(value or ())
            else:
                kw[key] = value
        if isinstance(kw.get("model"), str) and kw["model"].startswith("<"):
            raise UsageError(f"{source} was made from an in-memory model ({kw['model']}); pass --model")
        return cls(**kw)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BuildConfig:
        """Read a report.json (its "config") or a recipe.json."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"--config {p} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"--config {p} is not a JSON file ({e})") from None
        if not isinstance(doc, Mapping):
            raise UsageError(f"--config {p} holds no configuration object")
        return cls.from_dict(doc, source=f"--config {p}")

    def with_overrides(self, **overrides: Any) -> BuildConfig:
        """A copy with keyword settings applied (the names of `OVERRIDES`, or whole sections by name)."""
        cfg = self
        overrides = with_preset(overrides)
        for key, value in overrides.items():
            if key == "engine" and isinstance(value, EngineOptions) and not isinstance(value, EngineConfig):
                value = EngineConfig(**{f.name: getattr(value, f.name) for f in fields(EngineOptions)},
                                     enabled=cfg.engine.enabled)  # fmt: skip
            is_section = key in SECTIONS and type(value) is type(getattr(cfg, key))
            if is_section or (
                key not in SECTIONS and key not in OVERRIDES and key in {f.name for f in fields(cfg)}
            ):
                cfg = replace(cfg, **{key: value})
                continue
            if key not in OVERRIDES:
                raise UsageError(
                    f"trtq.build() got an unknown setting {key!r}; valid settings: {', '.join(sorted(OVERRIDES))} "
                    f"and the sections {', '.join(SECTIONS)}"
                )
            section, fld = OVERRIDES[key]
            if key == "percentile":
                sec = cfg.calibration
                cfg = replace(cfg, calibration=replace(sec, params={**sec.params, "percentile": value}))
                continue
            if key == "fallback" and value is not None and not isinstance(value, int):
                value = tuple(value)
            if key == "weight_ptq":
                from trtq.weights import resolve_weight_methods

                value = tuple(resolve_weight_methods(value or ()))
            cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{fld: value})})
        return cfg


#: keyword of `trtq.build()` -> (section, field).
OVERRIDES: dict[str, tuple[str, str]] = {
    "task": ("task", "task"),
    "decoder": ("task", "decoder"),
    "num_classes": ("task", "num_classes"),
    "conf_threshold": ("task", "conf_threshold"),
    "iou_threshold": ("task", "iou_threshold"),
    "max_det": ("task", "max_det"),
    "reference_conf": ("task", "reference_conf"),
    "labels": ("task", "labels"),
    "calib": ("calibration", "method"),
    "percentile": ("calibration", "params"),
    "calib_cache": ("calibration", "cache"),
    "trt_cache_version": ("calibration", "cache_version"),
    "trt_cache": ("calibration", "trt_cache"),
    "choose_metric": ("calibration", "choose_metric"),
    "choose_samples": ("calibration", "choose_samples"),
    "smoothquant": ("calibration", "smoothquant"),
    "eval_data": ("data", "eval_data"),
    "preprocess": ("data", "preprocess"),
    "calib_samples": ("data", "calib_samples"),
    "eval_samples": ("data", "eval_samples"),
    "batch_size": ("data", "batch_size"),
    "opset": ("export", "opset"),
    "weights": ("export", "weights"),
    "checkpoint": ("export", "checkpoint"),
    "trust_pickle": ("export", "trust_pickle"),
    "exporter": ("export", "exporter"),
    "typed_graph": ("typing", "enabled"),
    "typed_samples": ("typing", "samples"),
    "weight_ptq": ("weights", "methods"),
    "weight_storage": ("weights", "storage"),
    "max_drop": ("fallback", "max_drop"),
    "fallback": ("fallback", "layers"),
    "metric": ("fallback", "metric"),
    "rank_by": ("fallback", "rank_by"),
    "alone_int8": ("fallback", "alone_int8"),
    "build_engine": ("engine", "enabled"),
}


def placement_from_args(args: Any, base: PlacementConfig | None = None) -> PlacementConfig:
    """PlacementConfig from the placement options given (`--exclude`, `--enable-rule`, `--quantize-small`, ...)."""
    from trtq.config.sections import names_of

    cfg = base or PlacementConfig()
    changes: dict[str, Any] = {}
    if hasattr(args, "exclude"):
        changes["exclude_nodes"] = tuple(names_of(args.exclude))
    if hasattr(args, "exclude_op_type"):
        changes["exclude_op_types"] = tuple(names_of(args.exclude_op_type))
    if hasattr(args, "keep_first_last"):
        changes["keep_first_last"] = bool(args.keep_first_last)
    enable = list(cfg.enable_rules) + names_of(getattr(args, "enable_rule", None))
    disable = list(cfg.disable_rules) + names_of(getattr(args, "disable_rule", None))
    if getattr(args, "quantize_small", False):
        disable += [r for r in ("SmallConv", "SmallOrGemv") if r not in disable]
    if enable != list(cfg.enable_rules) or disable != list(cfg.disable_rules):
        changes["enable_rules"] = tuple(dict.fromkeys(enable))
        changes["disable_rules"] = tuple(dict.fromkeys(disable))
    return replace(cfg, **changes) if changes else cfg


def engine_from_args(args: Any, base: EngineConfig | None = None) -> EngineConfig:
    """EngineConfig from the engine options given (`--batch`, `--shapes`, `--workspace-gb`, `--no-engine`, ...)."""
    cfg = base or EngineConfig()
    changes: dict[str, Any] = {}
    if hasattr(args, "batch"):
        changes["batch"] = parse_batch(args.batch)
    if hasattr(args, "shapes"):
        changes["shapes"] = parse_shapes(args.shapes)
    for dest in ("workspace_gb", "timing_cache", "opt_level", "hardware_compat", "version_compat", "precision",
                 "min_int8_fraction", "verbose"):  # fmt: skip
        if hasattr(args, dest):
            changes[dest] = getattr(args, dest)
    if hasattr(args, "engine_calib_cache"):
        changes["calib_cache"] = args.engine_calib_cache
    if hasattr(args, "no_engine"):
        changes["enabled"] = not args.no_engine
    return replace(cfg, **changes) if changes else cfg


def bench_from_args(args: Any, base: Any = None) -> Any:
    """BenchSettings from the benchmark options given."""
    from trtq.benchmark import parse_batches

    cfg = base or BenchConfig()
    changes: dict[str, Any] = {}
    if hasattr(args, "bench_batch"):
        changes["batches"] = parse_batches(args.bench_batch)
    for dest in ("warmup", "iterations", "max_seconds", "threads", "seed"):
        if hasattr(args, dest):
            changes[dest] = getattr(args, dest)
    if hasattr(args, "cuda_graph"):
        changes["cuda_graph"] = bool(args.cuda_graph)
    if hasattr(args, "no_copies"):
        changes["include_copies"] = not args.no_copies
    return replace(cfg, **changes) if changes else cfg
