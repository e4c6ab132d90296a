"""Build a serialized TensorRT engine from an ONNX graph.

The version decisions live in `trtq.engines.compat`; this module is the build recipe:

1. parse the ONNX with OnnxParser (errors reported with node names),
2. strongly typed network (TensorRT 11, and 10.12+) or weakly typed with INT8/FP16 flags (10 < 10.12),
3. optimisation profile from the network's dynamic axes and `--batch` / `--shapes`,
4. workspace limit, builder optimisation level, hardware/version compatibility, detailed profiling
   verbosity (needed for the precision proof), timing cache load and save,
5. `build_serialized_network`.

`choose_graph` picks which of trtq's graphs to build for the running version.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from trtq.engines import compat
from trtq.engines.options import EngineOptions, ShapeRange
from trtq.engines.profiles import compute_profile, needs_profile
from trtq.errors import TrtqError, UsageError
from trtq.files import write_bytes

__all__ = [
    "EngineBuild",
    "GraphChoice",
    "build_engine",
    "build_engine_info",
    "choose_graph",
    "read_timing_cache",
]


@dataclass
class EngineBuild:
    """A built engine and how it was built."""

    plan: bytes
    strongly_typed: bool
    flags: list[str]
    inputs: dict[str, list[int]]
    profile: dict[str, ShapeRange]
    trt_version: str
    seconds: float
    timing_cache: dict[str, Any] = field(default_factory=dict)
    calibrator: str | None = None


@dataclass(frozen=True)
class GraphChoice:
    """Which graph to build and how, for one TensorRT version."""

    graph: Path
    strongly_typed: bool
    reason: str


def choose_graph(
    version: tuple[int, int, int],
    has_weak_typing: bool,
    trt_onnx: Path | None,
    int8_onnx: Path | None,
    typed: bool | None = None,
) -> GraphChoice:
    """Pick the graph and typing for a TensorRT version.

    TensorRT 11 and 10.12+ build strongly typed from `model.trt.onnx` (non-INT8 math typed FP16 in the
    graph). TensorRT 10 before 10.12 builds weakly typed with INT8 + FP16 flags from `model.int8.onnx`.

    Args:
        version: the running TensorRT (major, minor, patch).
        has_weak_typing: whether builder precision flags exist (`compat.has_weak_typing`).
        trt_onnx: the strongly typed graph (may be None when absent).
        int8_onnx: the FP32 Q/DQ graph (may be None when absent).
        typed: force strong (True) or weak (False) typing; None chooses by version.
    """
    if typed is None:
        strong = compat.strong_typing_default(version, has_weak_typing)
        why = (
            f"TensorRT {version[0]}.{version[1]} builds strongly typed"
            if strong
            else f"TensorRT {version[0]}.{version[1]} (< {'.'.join(map(str, compat.STRONG_TYPING_DEFAULT_FROM))}) "
            "builds weakly typed with INT8+FP16 flags"
        )
    else:
        strong = bool(typed)
        why = f"{'strong' if strong else 'weak'} typing requested"
        if not strong and not has_weak_typing:
            raise UsageError(
                f"weakly typed builds are not available on TensorRT {version[0]}.{version[1]}; "
                "build strongly typed from model.trt.onnx"
            )
    first, second = (trt_onnx, int8_onnx) if strong else (int8_onnx, trt_onnx)
    graph = first if first is not None and Path(first).is_file() else None
    if graph is None:
        if second is not None and Path(second).is_file():
            graph = Path(second)
            why += f"; {Path(first).name if first else 'the preferred graph'} is missing, using {graph.name}"
        else:
            raise UsageError(
                f"no graph to build: neither {trt_onnx} nor {int8_onnx} exists; run the quantize/precision stages first"
            )
    return GraphChoice(Path(graph), strong, why)


def read_timing_cache(path: Path | None) -> bytes:
    """Bytes of a timing cache file, b"" when there is none yet (a new cache is created then)."""
    if path is None:
        return b""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--timing-cache {path} is a folder; give a file path")
    return path.read_bytes() if path.is_file() else b""


def _attach_timing_cache(config: Any, path: Path | None) -> dict[str, Any]:
    data = read_timing_cache(path)
    info: dict[str, Any] = {"path": str(path) if path else None, "loaded": False, "loaded_bytes": 0}
    timing_cache = None
    if data:
        try:
            timing_cache = config.create_timing_cache(data)
        except Exception:  # a corrupt file: TensorRT raises or returns None
            timing_cache = None
        if timing_cache is not None and config.set_timing_cache(timing_cache, ignore_mismatch=False):
            info.update(loaded=True, loaded_bytes=len(data))
            return info
        info["note"] = (
            f"timing cache {path} was not usable here (other TensorRT or GPU, or corrupt); started a new one"
        )
    timing_cache = config.create_timing_cache(b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    return info


def _save_timing_cache(config: Any, path: Path | None, info: dict[str, Any]) -> None:
    if path is None:
        return
    timing_cache = config.get_timing_cache()
    if timing_cache is None:
        return
    data = bytes(timing_cache.serialize())
    write_bytes(path, data)
    info["saved_bytes"] = len(data)


def _parse(trt: ModuleType, parser: Any, onnx: str | Path | bytes) -> str:
    if isinstance(onnx, (bytes, bytearray)):
        label = "the ONNX bytes"
        ok = parser.parse(bytes(onnx))
    else:
        path = Path(onnx)
        label = str(path)
        if not path.is_file():
            raise UsageError(f"--onnx {path} does not exist")
        ok = parser.parse_from_file(str(path))
    if ok:
        return label
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    if not errors:
        raise TrtqError(f"TensorRT could not parse {label} (no parser error was reported)")
    error = errors[0]
    where = error.node_name() or f"#{error.node()}"
    more = f" (+{len(errors) - 1} more parser errors)" if len(errors) > 1 else ""
    raise TrtqError(
        f"TensorRT could not parse {label}: node {where} ({error.node_operator()}): {error.desc().strip()}{more}"
    )


def _builder(trt: ModuleType, logger: Any) -> Any:
    """`trt.Builder(logger)`, or `TensorRTUnavailable` where TensorRT cannot start one (no usable GPU)."""
    from trtq.errors import TensorRTUnavailable

    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as e:  # "pybind11::init(): factory function returned nullptr"
        builder, error = (
            None,
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
        )
    else:
        error = "it returned None"
    if builder is None:
        raise TensorRTUnavailable(
            f"TensorRT {trt.__version__} could not create a builder ({error}); it needs an NVIDIA GPU and a driver "
            "for its CUDA version"
        )
    return builder


def _logger(trt: ModuleType, verbose: bool, lines: list[str] | None) -> Any:
    """A TensorRT logger; with `lines`, one that also records every message of INFO and above (VERBOSE too when
    `verbose`) there, for the run's engine.log, and prints WARNING and above (INFO with `verbose`) on stderr."""
    if lines is None:
        return trt.Logger(trt.Logger.INFO if verbose else trt.Logger.WARNING)
    shown = int(trt.ILogger.INFO if verbose else trt.ILogger.WARNING)
    kept = int(trt.ILogger.VERBOSE if verbose else trt.ILogger.INFO)

    class _Recorder(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level <= kept:
                lines.append(f"[{getattr(severity, 'name', level)}] {msg}")
            if level <= shown:
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return _Recorder()


def build_engine_info(
    onnx: str | Path | bytes,
    options: EngineOptions | None = None,
    *,
    typed: bool | None = None,
    log: list[str] | None = None,
) -> EngineBuild:
    """Build an engine; returns the plan and the facts engine.json records.

    Args:
        onnx: path to (or bytes of) the graph to build.
        options: build options (defaults: `EngineOptions()`).
        typed: True strongly typed, False weakly typed, None by version (`compat.prefers_strong_typing`).
        log: a list TensorRT's log messages are appended to (kept even when the build fails).

    Raises:
        TensorRTUnavailable: TensorRT is not installed.
        UsageError: an option the running TensorRT lacks, a bad shape range, a missing file.
        TrtqError: the parser or the builder failed.
    """
    trt = compat.import_tensorrt()
    options = options or EngineOptions()
    strongly = compat.prefers_strong_typing(trt) if typed is None else bool(typed)
    if options.calib_cache is not None and strongly:
        raise UsageError(
            "--calib-cache needs a weakly typed build (TensorRT 10, --typed weak) of the graph without Q/DQ; "
            "strongly typed builds take INT8 scales from Q/DQ"
        )
    compat.require_gpu(trt)
    logger = _logger(trt, bool(options.verbose), log)
    trt.init_libnvinfer_plugins(logger, "")
    builder = _builder(trt, logger)
    network = builder.create_network(compat.network_flags(strongly, trt))
    parser = trt.OnnxParser(network, logger)
    _parse(trt, parser, onnx)

    inputs: dict[str, list[int]] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        inputs[tensor.name] = [int(d) for d in tensor.shape]
    shape_range = compute_profile(inputs, options.batch, options.shapes)

    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.builder_optimization_level = int(options.opt_level)
    if options.workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    if options.hardware_compat:
        config.hardware_compatibility_level = compat.hardware_compat_level(options.hardware_compat, trt)
    flags: list[str] = []
    if options.version_compat:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        flags.append("VERSION_COMPATIBLE")
    if not strongly:
        int8 = options.precision == "int8" or options.calib_cache is not None
        fp16 = options.precision in ("fp16", "int8")
        flags += compat.set_weak_precision(config, int8=int8, fp16=fp16, trt=trt)

    profile = None
    if needs_profile(inputs) or options.shapes:
        profile = builder.create_optimization_profile()
        for name, (mn, opt, mx) in shape_range.items():
            profile.set_shape(name, mn, opt, mx)
        config.add_optimization_profile(profile)

    calibrator_name = None
    if options.calib_cache is not None:
        from trtq.engines.calib_cache import make_cache_calibrator

        calibrator = make_cache_calibrator(Path(options.calib_cache), trt)
        compat.set_legacy_calibrator(config, calibrator, profile, trt)
        calibrator_name = type(calibrator).__mro__[1].__name__

    cache_info = _attach_timing_cache(config, options.timing_cache)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise TrtqError(
            "TensorRT could not build an engine (build_serialized_network returned nothing); read the TensorRT "
            "log above, or rerun with --verbose"
        )
    _save_timing_cache(config, options.timing_cache, cache_info)
    return EngineBuild(
        plan=bytes(plan),
        strongly_typed=strongly,
        flags=flags,
        inputs=inputs,
        profile=shape_range,
        trt_version=compat.version_string(trt),
        seconds=round(seconds, 3),
        timing_cache=cache_info,
        calibrator=calibrator_name,
    )


def build_engine(
    onnx: str | Path | bytes, options: EngineOptions | None = None, *, typed: bool | None = None
) -> bytes:
    """Build a TensorRT engine from an ONNX graph and return the serialized plan.

    See `build_engine_info` for the arguments; this returns only `EngineBuild.plan`.
    """
    return build_engine_info(onnx, options, typed=typed).plan
