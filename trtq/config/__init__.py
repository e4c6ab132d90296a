"""Typed configuration: `BuildConfig` and its sections (task, export, data, placement, calibration, weights, fallback, typing,
validation, engine, bench). See `trtq.config.build` for how a run is recorded and repeated."""

from trtq.config.build import (
    CONFIG_FORMAT,
    OVERRIDES,
    SECTIONS,
    BenchConfig,
    BuildConfig,
    EngineConfig,
    bench_from_args,
    engine_from_args,
    placement_from_args,
)
from trtq.config.calibration import CalibrationConfig
from trtq.config.data import DataConfig, preprocess_from_args
from trtq.config.sections import (
    ExportConfig,
    FallbackConfig,
    TypingConfig,
    ValidationConfig,
)
from trtq.config.task import TASKS, TaskConfig
from trtq.config.weights import WeightsConfig

__all__ = [
    "BuildConfig",
    "TaskConfig",
    "TASKS",
    "ExportConfig",
    "DataConfig",
    "CalibrationConfig",
    "FallbackConfig",
    "WeightsConfig",
    "TypingConfig",
    "ValidationConfig",
    "EngineConfig",
    "BenchConfig",
    "OVERRIDES",
    "SECTIONS",
    "CONFIG_FORMAT",
    "placement_from_args",
    "engine_from_args",
    "bench_from_args",
    "preprocess_from_args",
]
