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

import importlib
from typing import Any

# public name -> module that defines it (imported on first use, so the CLI's parser stays light)
_API = {
    "qat": "trtq.finetune.api",
    "calibrate_inputs": "trtq.finetune.calibrate",
    "ExportCheck": "trtq.finetune.check",
    "torch_vs_onnx": "trtq.finetune.check",
    "OVERRIDES": "trtq.finetune.config",
    "QATConfig": "trtq.finetune.config",
    "QATExport": "trtq.finetune.export",
    "export_qat_onnx": "trtq.finetune.export",
    "fold_batchnorm": "trtq.finetune.fold",
    "PlacementCheck": "trtq.finetune.layout",
    "check_placement": "trtq.finetune.layout",
    "qdq_layout": "trtq.finetune.layout",
    "QATModel": "trtq.finetune.quantize",
    "quantize_model": "trtq.finetune.quantize",
    "QATResult": "trtq.finetune.result",
    "HandoffConfig": "trtq.finetune.sections",
    "QATDataConfig": "trtq.finetune.sections",
    "TrainConfig": "trtq.finetune.sections",
    "TrainContext": "trtq.finetune.steps",
    "QuantTarget": "trtq.finetune.targets",
    "QAT_METADATA_KEY": "trtq.pipeline.stages.qat",
    "read_qat_metadata": "trtq.pipeline.stages.qat",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'trtq.finetune' has no attribute {name!r}")
