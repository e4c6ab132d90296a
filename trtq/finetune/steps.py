"""The steps of a QAT run, each reading and extending one `QATRun`.

In order (`trtq.finetune.run.run_qat`): `export_fp32` (in memory), `wrap_and_calibrate` (plan, quantizers,
initial ranges), `create_out_dir` (the folder and model.onnx, once every check passed), `export_ptq` (model.ptq.onnx: the calibrated model through the same export), `train` (the
built-in loop or the user's `train_fn`), `export_qat` (model.qat.onnx and the export check),
`measure_accuracy` (FP32 / PTQ / QAT through the metric registry), `plot_training`, `write_metrics`
(metrics.json) and `handoff` (the build path: OUT/run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtq import artifacts as A
from trtq.errors import TrtqError
from trtq.finetune.config import QATConfig
from trtq.finetune.export import QATExport, export_qat_onnx
from trtq.finetune.inputs import QATInputs
from trtq.finetune.quantize import QATModel
from trtq.finetune.result import (
    AccuracyRow,
    CalibrationRecord,
    QATAccuracy,
    QATResult,
    TorchAccuracy,
    UserTraining,
)

__all__ = [
    "TrainContext",
    "TrainFn",
    "QATRun",
    "export_fp32",
    "create_out_dir",
    "wrap_and_calibrate",
    "export_ptq",
    "train",
    "export_qat",
    "onnx_accuracy",
    "measure_accuracy",
    "plot_training",
    "write_metrics",
    "handoff",
]


@dataclass
class TrainContext:
    """What a user training function gets besides the model.

    Attributes:
        device: the torch device the model is on.
        train_data, val_data: the data sources given to `qat` (None when not given).
        out_dir: the QAT output folder (checkpoints may go under it).
        seed: the run's seed.
    """

    device: Any
    train_data: Any
    val_data: Any
    out_dir: Path
    seed: int


#: A user training function: trains the fake-quant model in place, may return metrics for metrics.json.
TrainFn = Callable[[Any, TrainContext], "Mapping[str, Any] | None"]


@dataclass
class QATRun:
    """The state the steps of one run share.

    Attributes:
        config: the resolved, validated configuration.
        inputs: the model and data.
        device: the torch device.
        root: the output folder (created by `create_out_dir`).
        result: what the run returns, filled in step by step.
        fp32, input_name: the FP32 export and its input name (`export_fp32`).
        qm: the wrapped model (`wrap_and_calibrate`).
        ptq, exported: the PTQ-baseline and the QAT export (`export_ptq`, `export_qat`).
    """

    config: QATConfig
    inputs: QATInputs
    device: Any
    root: Path
    result: QATResult
    fp32: onnx.ModelProto | None = None
    input_name: str = "input"
    qm: QATModel | None = None
    ptq: QATExport | None = None
    exported: QATExport | None = None

    def calib_batches(self) -> Iterator[np.ndarray]:
        """The calibration data's input batches."""
        return (x for x, _ in self.inputs.calib.iter_batches(self.config.batch_size))

    def recalibrate(self) -> None:
        """Set the activation ranges from the calibration data (`trtq.finetune.calibrate.calibrate_inputs`)."""
        from trtq.finetune.calibrate import calibrate_inputs

        cfg = self.config
        calibrate_inputs(
            self.qm, self.calib_batches(), cfg.method, params=cfg.calibrator_kwargs(), device=self.device
        )

    def export(self) -> QATExport:
        """The fake-quant model as a Q/DQ graph with PTQ's placement (`export_qat_onnx`)."""
        cfg = self.config
        return export_qat_onnx(self.qm, self.inputs.sample, self.fp32, calib_batches=self.calib_batches,
                               method=cfg.method, params=cfg.calibrator_kwargs(), opset=cfg.export.opset)  # fmt: skip

    def save(self, name: str, model: onnx.ModelProto) -> Path:
        """Write an ONNX artifact into the output folder and record it."""
        from trtq.files import save_onnx

        self.result.artifacts[name] = save_onnx(model, self.root / name)
        return self.root / name


def export_fp32(run: QATRun) -> None:
    """The FP32 export (BatchNorm folded), in memory: the plan's graph and the accuracy reference."""
    from trtq.export import export_onnx, onnx_input_shape
    from trtq.progress import status

    with status("exporting the FP32 model"):
        run.fp32 = export_onnx(run.inputs.source, run.inputs.sample, opset=run.config.export.opset).model
    run.input_name, _ = onnx_input_shape(run.fp32)


def create_out_dir(run: QATRun) -> None:
    """The output folder (refused when it holds files, unless `force`), with model.onnx in it."""
    from trtq.files import prepare_out_dir

    run.root = run.result.out_dir = prepare_out_dir(run.root, run.config.force)
    run.save(A.MODEL_ONNX, run.fp32)


def wrap_and_calibrate(run: QATRun) -> None:
    """Plan Q/DQ as PTQ does, put quantizers on those layers, and calibrate their initial ranges."""
    from trtq.finetune.quantize import quantize_model
    from trtq.placement import plan_qdq
    from trtq.progress import status

    plan = plan_qdq(run.fp32, run.config.placement)
    run.qm = quantize_model(run.inputs.source.module, run.fp32, plan, run.inputs.sample)
    run.qm.model.to(run.device)
    method = run.config.method
    with status(f"calibrating activation ranges ({method})"):
        run.recalibrate()
    res = run.result
    res.calibration = CalibrationRecord(method, len(run.inputs.calib), dict(run.qm.amax))
    res.quantized_modules = list(run.qm.targets)
    res.output_quantizers = list(run.qm.outputs)
    res.export_only = dict(run.qm.export_only)


def export_ptq(run: QATRun) -> None:
    """model.ptq.onnx: the calibrated, untrained model through the QAT export (the PTQ baseline)."""
    from trtq.finetune.export import ExportSummary

    run.ptq = run.export()
    run.save(A.PTQ_ONNX, run.ptq.model)
    run.result.ptq_export = ExportSummary.of(run.ptq)


def train(run: QATRun, train_fn: TrainFn | None, progress: Callable[[str], None] | None) -> None:
    """Fine-tune the wrapped model: the built-in loop, or `train_fn(model, TrainContext)`."""
    import torch

    from trtq.finetune.train import fit

    cfg, inp, res = run.config, run.inputs, run.result
    torch.manual_seed(cfg.seed)
    if train_fn is not None:
        ctx = TrainContext(device=run.device, train_data=inp.train, val_data=inp.val, out_dir=run.root,
                           seed=cfg.seed)  # fmt: skip
        user = train_fn(run.qm.model, ctx)
        run.qm.set_quantization(True)
        res.training = UserTraining(getattr(train_fn, "__qualname__", repr(train_fn)), dict(user or {}))
        return
    checkpoints = run.root / A.CHECKPOINTS_DIR
    res.training = fit(run.qm.model, inp.train, inp.val, cfg.train, device=run.device,
                       set_quantization=run.qm.set_quantization, recalibrate=run.recalibrate,
                       checkpoint_dir=checkpoints, progress=progress)  # fmt: skip
    for name in ("last.pt", "best.pt"):
        if (checkpoints / name).is_file():
            res.artifacts[f"{A.CHECKPOINTS_DIR}/{name}"] = checkpoints / name


def export_qat(run: QATRun) -> None:
    """model.qat.onnx (refused when its placement differs from PTQ's) and the fake-quant vs ONNX check."""
    from trtq.finetune.check import torch_vs_onnx
    from trtq.finetune.export import ExportSummary
    from trtq.pipeline.stages.qat import QAT_METADATA_KEY
    from trtq.progress import status

    cfg, inp = run.config, run.inputs
    with status("exporting the QAT graph"):
        run.exported = exp = run.export()
    if not exp.check.matches:
        raise TrtqError(exp.check.summary())
    meta = {"placement": asdict(cfg.placement), "preprocess": inp.preprocess.to_json(), "calib": cfg.method,
            "seed": cfg.seed}  # fmt: skip
    exp.model.metadata_props.add(key=QAT_METADATA_KEY, value=json.dumps(meta, sort_keys=True))
    run.save(A.QAT_ONNX, exp.model)
    run.result.export = ExportSummary.of(exp)
    check_ds = inp.val or inp.calib
    run.result.export_check = torch_vs_onnx(
        run.qm.model, exp.model, check_ds.iter_batches(cfg.batch_size), device=run.device
    )


def onnx_accuracy(
    fp32: Any, ptq: Any, qat_graph: Any, val: Any, input_name: str, batch_size: int
) -> QATAccuracy:
    """FP32 / PTQ / QAT in ONNX Runtime (each graph runs once over `val`), scored by the metric registry."""
    from trtq.metrics import get_metric
    from trtq.validate import evaluate_runs, run_models

    runs = run_models(
        {"fp32": fp32, "ptq": ptq, "qat": qat_graph}, val, input_name=input_name, batch_size=batch_size
    )
    names = ("top1_accuracy", "top1_agreement", "cosine")
    res = evaluate_runs(runs, "fp32", ["ptq", "qat"], targets=val.targets,
                        extra_metrics=[get_metric(n) for n in names])  # fmt: skip

    def row(key: str) -> AccuracyRow:
        return AccuracyRow(res.value(key, "top1_accuracy"), res.value(key, "top1_agreement"),
                           res.value(key, "cosine"))  # fmt: skip

    return QATAccuracy(len(val), AccuracyRow(res.value("fp32", "top1_accuracy")), row("ptq"), row("qat"))


def measure_accuracy(run: QATRun) -> None:
    """FP32 / PTQ / QAT top-1, agreement and cosine on labelled validation data; PyTorch top-1 too."""
    from trtq.finetune.train import evaluate
    from trtq.progress import status

    val, res = run.inputs.val, run.result
    if val is None or not val.has_labels:
        return
    with status("FP32 / PTQ / QAT accuracy (ONNX Runtime)"):
        res.accuracy = onnx_accuracy(run.fp32, run.ptq.model, run.exported.model, val, run.input_name,
                                     run.config.batch_size)  # fmt: skip
    history = res.history
    if history is not None:
        module = run.inputs.source.module
        _, fp32_torch = evaluate(module, val, next(module.parameters()).device)
        first = history.records[0]
        res.torch_accuracy = TorchAccuracy(fp32_torch, first.val_top1 if first.quantized else None,
                                           history.best.val_top1)  # fmt: skip


def plot_training(run: QATRun) -> None:
    """training_curves.png of the built-in loop, with FP32 and PTQ (ONNX Runtime) as reference lines."""
    from trtq.finetune.curves import plot_curves

    res = run.result
    if res.history is None:
        return
    refs = {}
    if res.accuracy is not None:
        refs["FP32 (ONNX Runtime)"] = res.accuracy.fp32.top1
        refs["PTQ (ONNX Runtime)"] = res.accuracy.ptq.top1
    res.artifacts[A.TRAINING_CURVES_PNG] = plot_curves(res.history, run.root / A.TRAINING_CURVES_PNG, refs)


def write_metrics(run: QATRun) -> None:
    """metrics.json: `QATResult.to_json()`."""
    from trtq.files import write_json

    run.result.artifacts[A.QAT_METRICS_JSON] = write_json(run.root / A.QAT_METRICS_JSON, run.result.to_json())


def handoff(run: QATRun) -> None:
    """OUT/run: `trtq.build_from_qat` on model.qat.onnx (typed graph, engine, report.md with a QAT section)."""
    from trtq.pipeline import build_from_qat

    cfg, inp, res = run.config, run.inputs, run.result
    h = cfg.handoff
    res.build = build_from_qat(
        run.root / A.QAT_ONNX, run.root / A.MODEL_ONNX, inp.val or inp.calib, run.root / A.QAT_RUN_DIR,
        batch_size=cfg.batch_size, placement=cfg.placement, strict=True, qat_metrics=res.metrics,
        typed_graph=h.typed_graph, build_engine=h.build_engine, seed=cfg.seed,
        **({"engine": h.engine} if h.engine is not None else {}),
    )  # fmt: skip
    res.artifacts[A.QAT_RUN_DIR] = run.root / A.QAT_RUN_DIR
    res.timings["handoff"] = res.build.timings.get("total", 0.0)
