"""The engine stage: pick the graph, build, prove the precision, write model.plan and engine.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trtq.engines import compat
from trtq.engines.build import build_engine_info, choose_graph
from trtq.engines.inspect import inspect_plan
from trtq.engines.metadata import engine_metadata, gpu_info, sha256_file
from trtq.engines.options import EngineOptions
from trtq.engines.precision import check_precision, graph_expectations, precision_summary
from trtq.engines.profiles import opt_shapes
from trtq.errors import TensorRTUnavailable, TrtqError
from trtq.files import check_writable, write_bytes, write_json, write_text

__all__ = ["engine_stage", "build_engine_file"]


def engine_stage(
    run_dir: Path,
    trt_onnx: Path,
    int8_onnx: Path,
    options: EngineOptions,
    expected_int8_layers: int | None = None,
    handoff: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the run's engine: `model.plan`, `engine.json`, `engine.layers.json` in `run_dir`.

    TensorRT 11 and 10.12+ build strongly typed from `trt_onnx`; TensorRT 10 before 10.12 builds weakly
    typed (INT8 + FP16 flags) from `int8_onnx`. After the build the engine inspector's JSON is read and
    the layers are counted per precision; too few INT8 layers fails the stage.

    Args:
        run_dir: the run folder.
        trt_onnx: model.trt.onnx (Q/DQ, non-INT8 math typed FP16).
        int8_onnx: model.int8.onnx (FP32 graph with Q/DQ).
        options: build options.
        expected_int8_layers: how many weighted layers the graph quantized; None counts them in the graph.
        handoff: the trtexec / Polygraphy commands of the run (`trtq.engines.handoff`), kept in engine.json.

    Returns:
        A summary for report.json (paths, TensorRT version, typing, precision counts, warnings).

    Raises:
        TensorRTUnavailable: no TensorRT here (callers stop cleanly before this stage).
        TrtqError: parse/build failure, or the precision proof failed (engine.json is written with
            status "precision_check_failed" and no model.plan).
    """
    trt = compat.import_tensorrt()
    choice = choose_graph(compat.trt_version(trt), compat.has_weak_typing(trt), trt_onnx, int8_onnx)
    run_dir = Path(run_dir)
    return build_engine_file(
        choice.graph,
        run_dir / "model.plan",
        options,
        typed=choice.strongly_typed,
        expected_int8_layers=expected_int8_layers,
        reason=choice.reason,
        json_path=run_dir / "engine.json",
        layers_path=run_dir / "engine.layers.json",
        log_path=run_dir / "engine.log",
        force=True,
        handoff=handoff,
    )


def _failure(onnx: Path, options: EngineOptions, error: TrtqError, log_path: Path) -> dict[str, Any]:
    """engine.json of a build that failed before an engine existed (parser or builder error)."""
    from trtq import __version__
    from trtq.engines.metadata import ENGINE_JSON_VERSION

    return {
        "engine_json_version": ENGINE_JSON_VERSION,
        "status": "failed",
        "error": str(error),
        "trtq_version": __version__,
        "tensorrt_version": compat.version_string(),
        "gpu": gpu_info(),
        "input_onnx": {
            "path": str(onnx),
            "name": onnx.name,
            "sha256": sha256_file(onnx) if onnx.is_file() else None,
        },
        "build_options": options.to_json(),
        "log": log_path.name,
    }


def _check_implicit_int8(onnx_path: Path, typed: bool | None) -> None:
    """`--calib-cache` drives implicit INT8 of a graph without Q/DQ, weakly typed; refuse anything else."""
    import onnx

    from trtq.errors import UsageError

    if typed is True:
        raise UsageError(
            "--calib-cache needs a weakly typed build (--typed weak, TensorRT 10): strongly typed builds take INT8 "
            "scales from Q/DQ"
        )
    if not onnx_path.is_file():
        return  # the builder reports the missing file
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    if qdq:
        raise UsageError(
            f"--calib-cache calibrates a graph without Q/DQ, but {onnx_path} has {qdq} Q/DQ nodes; TensorRT would "
            "ignore the cache (explicit quantization wins). Build the Q/DQ graph without --calib-cache, or give the "
            "FP32 model.onnx with the cache"
        )


def build_engine_file(
    onnx: str | Path,
    out: str | Path,
    options: EngineOptions | None = None,
    *,
    typed: bool | None = None,
    expected_int8_layers: int | None = None,
    reason: str | None = None,
    json_path: Path | None = None,
    layers_path: Path | None = None,
    log_path: Path | None = None,
    force: bool = False,
    handoff: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build `onnx` into the plan file `out`, prove its precision, write its engine.json.

    Args:
        onnx: graph to build.
        out: plan path (e.g. model.plan). engine.json goes to `json_path` (default `<out stem>.engine.json`)
            and the inspector's layer JSON to `layers_path` (default `<out stem>.layers.json`).
        options: build options.
        typed: True/False forces strong/weak typing; None decides by TensorRT version.
        expected_int8_layers: weighted layers the graph quantized (None: counted in `onnx`).
        reason: why this graph was chosen (recorded in engine.json).
        log_path: TensorRT's log of the build (default `<out stem>.build.log`), written whether or not the build
            succeeds; a failed parse or build also writes engine.json with status "failed" and the error.
        force: overwrite an existing `out`.
        handoff: the trtexec / Polygraphy commands that build and check the same engine (engine.json "handoff").
    """
    options = options or EngineOptions()
    onnx, out = Path(onnx), Path(out)
    json_path = json_path or out.with_name(out.stem + ".engine.json")
    layers_path = layers_path or out.with_name(out.stem + ".layers.json")
    log_path = log_path or out.with_name(out.stem + ".build.log")
    check_writable(out, force)
    if options.calib_cache is not None:
        _check_implicit_int8(onnx, typed)
    compat.import_tensorrt()  # fail before reading the graph when TensorRT is absent

    expectations = graph_expectations(onnx)
    expected = expectations["int8_layers"] if expected_int8_layers is None else int(expected_int8_layers)
    log: list[str] = []
    try:
        build = build_engine_info(onnx, options, typed=typed, log=log)
    except TensorRTUnavailable:
        raise
    except TrtqError as e:
        write_json(json_path, _failure(onnx, options, e, log_path))
        raise
    finally:
        write_text(log_path, "".join(line + "\n" for line in log))
    info, io = inspect_plan(build.plan, opt_shapes(build.profile), host_code_allowed=options.version_compat)
    summary = precision_summary(info)
    if build.strongly_typed:
        expect_fp16 = bool(expectations["fp16"])
    else:
        expect_fp16 = options.precision in ("fp16", "int8")
    status, error, warnings = "ok", None, []
    try:
        if build.calibrator is not None:  # implicit INT8: the graph has no Q/DQ to count
            if not summary["by_precision"].get("int8"):
                raise TrtqError(
                    "the engine has no INT8 layers although it was calibrated from "
                    f"{options.calib_cache}; TensorRT ignored the cache (version or algorithm mismatch?)"
                )
            warnings = check_precision(summary, expect_fp16=expect_fp16, strongly_typed=False)
        else:
            warnings = check_precision(
                summary,
                expected_int8_layers=expected,
                expect_fp16=expect_fp16,
                strongly_typed=build.strongly_typed,
                min_int8_fraction=options.min_int8_fraction,
            )
    except TrtqError as e:
        status, error = "precision_check_failed", str(e)

    precision = {
        **summary,
        "expected_int8_layers": expected,
        "expect_fp16": expect_fp16,
        "warnings": warnings,
    }
    if error:
        precision["error"] = error
    meta = engine_metadata(
        trt_version=build.trt_version,
        gpu=gpu_info(),
        graph=onnx,
        graph_sha256=sha256_file(onnx),
        plan=build.plan,
        strongly_typed=build.strongly_typed,
        flags=build.flags,
        shape_ranges=build.profile,
        io_tensors=io,
        options=options,
        precision=precision,
        build_seconds=build.seconds,
        timing_cache=build.timing_cache,
        reason=reason or ("strongly typed" if build.strongly_typed else "weakly typed"),
        status=status,
    )
    if handoff is not None:
        meta["handoff"] = handoff
    write_json(layers_path, info)
    write_json(json_path, meta)
    if error:
        raise TrtqError(f"{error} (no plan written; see {json_path} and {layers_path})")
    write_bytes(out, build.plan)
    return {
        "plan": str(out),
        "engine_json": str(json_path),
        "layers_json": str(layers_path),
        "tensorrt_version": build.trt_version,
        "typing": meta["typing"],
        "graph": onnx.name,
        "graph_choice": meta["graph_choice"],
        "builder_flags": build.flags,
        "profile": meta["profiles"][0],
        "precision": precision,
        "build_seconds": build.seconds,
        "plan_bytes": len(build.plan),
        "gpu": meta["gpu"],
    }
