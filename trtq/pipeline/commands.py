"""The stage commands as library calls: `trtq export`, `calibrate`, `quantize` and `sensitivity` from files.

Each loads what the command is given, checks it, and runs the same stage objects `trtq build` runs, with a sink
that writes only the files the command was asked for. So `trtq calibrate` + `trtq quantize --trt-out` on a
build's model.onnx give byte-identical calibration.json, model.int8.onnx and model.trt.onnx.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq import artifacts as A
from trtq.config import BuildConfig
from trtq.errors import UsageError
from trtq.files import check_writable
from trtq.pipeline.context import NamedFiles, RunContext, RunFolder
from trtq.pipeline.inputs import Inputs, load_inputs
from trtq.pipeline.results import BuildResult
from trtq.pipeline.stage import run_stages
from trtq.pipeline.stages import (
    CalibrateStage,
    ExportStage,
    FallbackStage,
    PlacementStage,
    QuantizeStage,
    TaskStage,
    TypingStage,
)
from trtq.rundir import check_out_folder, staged_dir

__all__ = ["export_file", "calibrate_files", "quantize_files", "sensitivity_folder", "load_fp32"]


def load_fp32(path: str | os.PathLike) -> Any:
    """The FP32 model a stage command starts from; refuses graphs that already have Q/DQ."""
    from trtq.calibration import load_model
    from trtq.export.onnx_model import check_onnxruntime_ops

    model = load_model(path)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise UsageError(f"{path} already has QuantizeLinear/DequantizeLinear nodes; pass the FP32 model")
    check_onnxruntime_ops(model, str(path))
    return model


def _outputs(named: dict[str, str | None], inputs: list[Any], force: bool) -> dict[str, str | None]:
    """Check the output files: distinct, not an input, writable (without force: not existing)."""
    given = [Path(p) for p in named.values() if p is not None]
    resolved = [p.resolve() for p in given]
    for p in given:
        if any(p.resolve() == Path(i).resolve() for i in inputs if isinstance(i, (str, os.PathLike))):
            raise UsageError(f"output {p} is one of the inputs; choose another path")
        check_writable(p, force)
    if len(set(resolved)) != len(resolved):
        raise UsageError("the output files must be different paths")
    return named


def _context(config: BuildConfig, sink: Any, inputs: Inputs, **state: Any) -> RunContext:
    return RunContext(
        config=config, sink=sink, result=BuildResult(out_dir=None, config=config), inputs=inputs, **state
    )


def export_file(
    config: BuildConfig, out: str | os.PathLike, *, shape: str | tuple[int, ...] | None = None
) -> BuildResult:
    """`trtq export`: the model to `out` (model.onnx), from a real sample (`config.data.calib_data`) or random input."""
    from trtq.export import input_channels, onnx_input_shape

    config.validate_sections()
    _outputs({A.MODEL_ONNX: str(out)}, [config.model], config.force)
    inputs = load_inputs(config)
    if inputs.sample is None:
        source = inputs.source
        if isinstance(shape, str):
            try:
                shape = tuple(int(v) for v in shape.split(","))
            except ValueError:
                raise UsageError(f"--shape expects C,H,W (e.g. 3,224,224), not {shape!r}") from None
        if shape is None:
            if source.is_onnx:
                shape = tuple(d if d else 224 for d in onnx_input_shape(source.onnx_model)[1][1:])
            else:
                shape = (input_channels(source) or 3, 224, 224)
        sample = np.random.default_rng(config.seed).standard_normal((2, *shape)).astype(np.float32)
        inputs = replace(inputs, sample=sample)
    ctx = _context(config, NamedFiles({A.MODEL_ONNX: str(out)}), inputs)
    run_stages([ExportStage()], ctx)
    return ctx.result


def calibrate_files(
    config: BuildConfig,
    out: str | os.PathLike,
    *,
    trt_cache: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    tensors: str = "auto",
) -> RunContext:
    """`trtq calibrate`: `config.model` (an FP32 .onnx) + its calibration data -> calibration.json (+ cache, plots).

    `tensors` is "auto" (the activations the Q/DQ placement quantizes) or comma-separated tensor names.
    """
    from trtq.export import resolve_model
    from trtq.placement import QDQPlan

    files = _outputs({A.CALIBRATION_JSON: str(out), A.CALIBRATION_CACHE: None if trt_cache is None else str(trt_cache)},
                     [config.model], config.force)  # fmt: skip
    if trt_cache is not None:  # the cache is written on request only; naming its file is the request
        config = replace(config, calibration=replace(config.calibration, trt_cache=True))
    config.validate_sections()
    if config.data.calib_data is None:
        raise UsageError("--calib-data is required: the data the model is calibrated on")
    fp32 = load_fp32(config.model)
    inputs = load_inputs(config, source=resolve_model(fp32))
    ctx = _context(
        config, NamedFiles(files, folder=None if plots is None else Path(plots)), inputs, fp32=fp32
    )
    if tensors != "auto":
        names = [t.strip() for t in tensors.split(",") if t.strip()]
        if not names:
            raise UsageError("--tensors names no tensor; give 'auto' or comma-separated tensor names")
        ctx.plan = QDQPlan(activations=names)
        if len(config.calibration.methods) > 1:
            ctx.config = replace(config, data=replace(config.data, eval_data=None))
        run_stages([CalibrateStage()], ctx)
    else:
        run_stages([PlacementStage(), CalibrateStage()], ctx)
    return ctx


def quantize_files(
    config: BuildConfig,
    calibration: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trt_out: str | os.PathLike | None = None,
    plan_out: str | os.PathLike | None = None,
    method: str | None = None,
) -> RunContext:
    """`trtq quantize`: FP32 .onnx + calibration.json -> model.int8.onnx (+ model.trt.onnx, placement.json)."""
    from trtq.quantization import load_calibration

    files = {A.INT8_ONNX: str(out), A.TYPED_ONNX: None if trt_out is None else str(trt_out),
             A.PLACEMENT_JSON: None if plan_out is None else str(plan_out)}  # fmt: skip
    config.validate_sections()
    _outputs(files, [config.model, calibration], config.force)
    fp32 = load_fp32(config.model)
    cal = load_calibration(calibration, method)
    config = replace(config, typing=replace(config.typing, enabled=trt_out is not None))
    ctx = _context(
        config, NamedFiles(files), Inputs(None, None, None, None, None), fp32=fp32, calibration=cal
    )
    run_stages([PlacementStage(), QuantizeStage(), TypingStage()], ctx)
    return ctx


def sensitivity_folder(
    config: BuildConfig, calibration: str | os.PathLike, *, method: str | None = None
) -> RunContext:
    """`trtq sensitivity`: rank the layers of an FP32 .onnx on the evaluation data; with a budget or a fallback
    set, also the mixed model (model.mixed.onnx) and its typed graph, in the run folder `config.out`."""
    from trtq.export import resolve_model
    from trtq.quantization import load_calibration

    config.validate_sections()
    if config.out is None:
        raise UsageError("--out is required: the run folder to create")
    inputs_paths = [*config.input_paths(), calibration]
    check_out_folder(config.out, config.force, inputs=inputs_paths)
    fp32 = load_fp32(config.model)
    cal = load_calibration(calibration, method)
    if config.data.eval_data is None:
        raise UsageError("--eval-data is required: the layers are ranked on it")
    inputs = load_inputs(config, source=resolve_model(fp32))
    mixed = A.TYPED_ONNX if config.typing.enabled else A.MIXED_ONNX
    stages: list[Any] = [TaskStage(), PlacementStage(), FallbackStage(always_rank=True, mixed_artifact=mixed)]
    if config.fallback.enabled:
        stages += [QuantizeStage(artifact=A.MIXED_ONNX), TypingStage()]
    with staged_dir(Path(config.out), config.force, command="sensitivity", inputs=inputs_paths) as staging:
        ctx = _context(config, RunFolder(staging, Path(config.out)), inputs, fp32=fp32, calibration=cal)
        run_stages(stages, ctx)
    return ctx


def _single_input(path: Path) -> tuple[str, int | None]:
    """The single input of an artifact and its channel count when static."""
    from trtq.runners import make_runner

    if path.suffix.lower() == ".onnx":
        from trtq.engines.profiles import onnx_input_shapes

        inputs = dict(onnx_input_shapes(path))
    else:
        with make_runner(path) as r:
            inputs = {k: list(shape) for k, (_, shape) in r.input_metadata().items()}
    if len(inputs) != 1:
        raise UsageError(f"{path} has {len(inputs)} inputs; trtq validate feeds models with one input")
    name, dims = next(iter(inputs.items()))
    channels = dims[1] if len(dims) == 4 and isinstance(dims[1], int) and dims[1] > 0 else None
    return name, channels


def _bind_task(config: BuildConfig, data: Any, reference: Path, input_name: str) -> Any:
    """The evaluation data with the task's decoder bound, checked on two samples of the reference's outputs."""
    from dataclasses import replace

    from trtq.pipeline.stages.task import task_binding
    from trtq.runners import make_runner

    with make_runner(reference) as runner:
        outputs = runner.infer(next(iter(data.subset(min(2, len(data)), config.seed).feeds(input_name, 2))))
    return replace(data, targets=task_binding(config.task, outputs, data, "--data")(data.targets))


def validate_files(
    config: BuildConfig, model: str | os.PathLike, reference: str | os.PathLike, *, out: str | None = None
) -> dict[str, Any]:
    """`trtq validate`: two artifacts (.onnx in ONNX Runtime, .plan in TensorRT) on `config.data.eval_data`.

    Returns the JSON document (also written to `out`); its "pass" is Polygraphy's verdict.
    """
    from trtq.data import resolve_preprocess
    from trtq.files import write_json
    from trtq.runners import make_runner
    from trtq.validate import compare

    config.validate_sections()
    if out is not None:
        check_writable(out, config.force)
    model, reference = Path(model), Path(reference)
    input_name, channels = _single_input(reference if reference.suffix.lower() == ".onnx" else model)
    from trtq.pipeline.inputs import load_dataset, task_preprocess

    pre = resolve_preprocess(task_preprocess(config, None), channels)
    data = load_dataset(config, "eval", pre)

    def side(path: Path) -> Any:
        return str(path) if path.suffix.lower() == ".onnx" else make_runner(path)

    if config.task.task != "classify":
        data = _bind_task(config, data, reference, input_name)

    v = config.validation
    result = compare(side(model), side(reference), data, input_name=input_name, batch_size=config.data.batch_size,
                     rtol=v.rtol, atol=v.atol, check_error_stat=v.check_error_stat)  # fmt: skip
    doc = {"model": str(model), "reference_artifact": str(reference), **result.to_json(),
           "pass": result.candidates["candidate"].polygraphy_pass}  # fmt: skip
    if out is not None:
        write_json(out, doc)
    return doc
