"""Quantization-aware fine-tuning: fake quantization where trtq's PTQ puts Q/DQ, export, hand-off to the build.

`trtq.qat(model, train_data, val_data, out, config=QATConfig(...), **overrides)` wraps the model with ModelOpt
INT8 quantizers (per-channel weights, per-tensor activations, symmetric) on exactly the layers
`trtq.placement.plan_qdq` quantizes, sets the activation ranges with a trtq calibrator, fine-tunes (built-in
classification loop or your own `train_fn`), exports `model.qat.onnx` with the legacy exporter, folds
BatchNorm so the graph's Q/DQ match the PTQ graph's, checks that they do, and continues into the build path
(`trtq.build_from_qat`). Runs are bitwise reproducible for a seed and a CPU thread count.

Modules:

- configuration and result: `config` (`QATConfig`, `OVERRIDES`), `sections` (`TrainConfig`, `QATDataConfig`,
  `HandoffConfig`), `result` (`QATResult` and its typed records);
- the run: `api` (`qat`), `run` (the steps in order), `steps` (each step), `inputs` (model, data, device),
  `determinism` (seeds, deterministic kernels, threads);
- the model: `targets` (plan nodes -> torch modules), `outputs` (output quantizers), `quantize` (`QATModel`,
  `quantize_model`), `calibrate` (initial ranges), `train` (the loop), `curves` (training_curves.png);
- the graph: `graph` (an index and shared edits), `fold` (BatchNorm folding), `passes` (clean-up and plan
  alignment), `layout` (where Q/DQ are, the placement check), `export` (torch -> Q/DQ ONNX), `check`
  (fake-quant torch vs ONNX Runtime), `report` (report.md's QAT section).

The package is named for what it does (fine-tuning) so that `trtq.qat`, the function, is never shadowed by it.
"""

from __future__ import annotations

from trtq.finetune.api import qat
from trtq.finetune.calibrate import calibrate_inputs
from trtq.finetune.check import ExportCheck, torch_vs_onnx
from trtq.finetune.config import OVERRIDES, QATConfig
from trtq.finetune.export import QATExport, export_qat_onnx
from trtq.finetune.fold import fold_batchnorm
from trtq.finetune.layout import PlacementCheck, check_placement, qdq_layout
from trtq.finetune.quantize import QATModel, quantize_model
from trtq.finetune.result import QATResult
from trtq.finetune.sections import HandoffConfig, QATDataConfig, TrainConfig
from trtq.finetune.steps import TrainContext
from trtq.finetune.targets import QuantTarget
from trtq.pipeline.stages.qat import QAT_METADATA_KEY, read_qat_metadata

__all__ = [
    "qat",
    "QATConfig",
    "QATDataConfig",
    "HandoffConfig",
    "TrainConfig",
    "OVERRIDES",
    "QATResult",
    "TrainContext",
    "read_qat_metadata",
    "QAT_METADATA_KEY",
    "quantize_model",
    "calibrate_inputs",
    "QATModel",
    "QuantTarget",
    "export_qat_onnx",
    "QATExport",
    "torch_vs_onnx",
    "ExportCheck",
    "check_placement",
    "PlacementCheck",
    "qdq_layout",
    "fold_batchnorm",
]
