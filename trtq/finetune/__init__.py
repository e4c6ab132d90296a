"""Quantization-aware fine-tuning: fake quantization where trtq's PTQ puts Q/DQ, export, hand-off to the build.

`trtq.qat(model, train_data, val_data, out, ...)` wraps the model with ModelOpt INT8 quantizers (per-channel
weights, per-tensor activations, symmetric) on exactly the layers `trtq.placement.plan_qdq` quantizes, sets the
activation ranges with a trtq calibrator, fine-tunes (built-in classification loop or your own `train_fn`),
exports `model.qat.onnx` with the legacy exporter, folds BatchNorm so the graph's Q/DQ match the PTQ graph's,
checks that they do, and continues into the build path (`trtq.build_from_qat`).

Modules: `quantize` (plan -> quantizers, calibration), `train` (the loop), `graph` (ONNX passes, placement
check), `export` (torch -> Q/DQ ONNX, torch-vs-ONNX check), `report` (the report section), `api` (`qat`).
The package is named for what it does (fine-tuning) so that `trtq.qat`, the function, is never shadowed by it.
"""

from __future__ import annotations

from trtq.finetune.api import QATResult, TrainContext, qat
from trtq.finetune.export import QATExport, export_qat_onnx, torch_vs_onnx
from trtq.finetune.graph import PlacementCheck, check_placement, fold_batchnorm, qdq_layout
from trtq.finetune.quantize import QATModel, QuantTarget, calibrate_inputs, quantize_model
from trtq.finetune.train import TrainConfig
from trtq.pipeline.stages.qat import QAT_METADATA_KEY, read_qat_metadata

__all__ = [
    "qat",
    "QATResult",
    "TrainContext",
    "TrainConfig",
    "read_qat_metadata",
    "QAT_METADATA_KEY",
    "quantize_model",
    "calibrate_inputs",
    "QATModel",
    "QuantTarget",
    "export_qat_onnx",
    "QATExport",
    "torch_vs_onnx",
    "check_placement",
    "PlacementCheck",
    "qdq_layout",
    "fold_batchnorm",
]
