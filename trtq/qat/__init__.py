"""Quantization-aware training: fine-tune with fake quantization where trtq's PTQ puts Q/DQ, export, build.

`trtq.qat(model, train_data, val_data, out, ...)` wraps the model with ModelOpt INT8 quantizers
(per-channel weights, per-tensor activations, symmetric) on exactly the layers `trtq.placement.plan_qdq`
quantizes, sets the activation ranges with a trtq calibrator, fine-tunes (built-in classification loop or
your own `train_fn`), exports `model.qat.onnx` with the legacy exporter, folds BatchNorm so the graph's Q/DQ
match the PTQ graph's, checks that they do, and continues into the build path (`build_from_qat`).

Modules: `quantize` (plan -> quantizers, calibration), `train` (the loop), `graph` (ONNX passes, placement
check), `export` (torch -> Q/DQ ONNX, torch-vs-ONNX check), `handoff` (`build_from_qat`), `api` (`qat`).

`trtq.qat` is this package and is also callable as the function `trtq.qat.qat`: importing a submodule
binds the package to the attribute `qat` of `trtq`, so the package forwards calls to the function.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from trtq.qat.api import QATResult, TrainContext, qat
from trtq.qat.export import QATExport, export_qat_onnx, torch_vs_onnx
from trtq.qat.graph import PlacementCheck, check_placement, fold_batchnorm, qdq_layout
from trtq.qat.handoff import build_from_qat, read_qat_metadata
from trtq.qat.quantize import QATModel, QuantTarget, calibrate_inputs, quantize_model
from trtq.qat.train import TrainConfig

__all__ = [
    "qat",
    "QATResult",
    "TrainContext",
    "TrainConfig",
    "build_from_qat",
    "read_qat_metadata",
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


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> QATResult:
        return qat(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
