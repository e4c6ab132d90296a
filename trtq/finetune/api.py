"""`trtq.qat(...)`: calibrate, fine-tune with fake quantization, export the Q/DQ graph, hand off to the build path.

The settings are a `trtq.finetune.QATConfig` (`config=`), with keyword overrides on top (`OVERRIDES`); the run
itself is `trtq.finetune.run.run_qat` (see it for the output folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from trtq.finetune.config import QATConfig
from trtq.finetune.result import QATResult
from trtq.finetune.steps import TrainContext, TrainFn

__all__ = ["qat", "QATResult", "TrainContext"]


def qat(
    model: Any,
    train_data: Any,
    val_data: Any,
    out: str | os.PathLike,
    *,
    config: QATConfig | None = None,
    train_fn: TrainFn | None = None,
    progress: Callable[[str], None] | None = None,
    **overrides: Any,
) -> QATResult:
    """Quantization-aware training with trtq's placement and scales, exported to the build path.

    Args:
        model: an `nn.Module`, a torchvision name or a `package.module:factory` (with `checkpoint`);
            TorchScript and ONNX cannot be fine-tuned.
        train_data: labelled training data (class sub-folders, .npz with y, arrays; see `trtq.data`). With
            `train_fn` it may be None (then `calib_data` is required). None = `config.data.train_data`.
        val_data: labelled validation data (best-epoch selection and the FP32/PTQ/QAT comparison).
            None = `config.data.val_data`.
        out: output folder (refused if not empty, unless `force`); see `trtq.finetune.run`.
        config: the settings (default: `QATConfig()`); `overrides` apply on top.
        train_fn: your own training: called as `train_fn(model, TrainContext)` with the fake-quant model
            (train it in place); may return a dict of metrics for metrics.json. Replaces the built-in loop.
        progress: receives one line per epoch.
        **overrides: settings by keyword (`trtq.finetune.OVERRIDES`), as before the configuration existed:
            `calib` (calibration method), `percentile`, `calib_data`, `calib_samples` (default 512),
            `train_samples`, `val_samples`, `preprocess`; the built-in loop's `epochs`, `lr`, `fp32_lr`,
            `optimizer`, `momentum`, `weight_decay`, `label_smoothing`, `warmup_epochs`, `freeze_bn_epoch`,
            `quant_delay_epochs`, `grad_clip`, `batch_size`, `amp`, `workers` and `seed` (see
            `trtq.finetune.TrainConfig`); `placement` (a `PlacementConfig`) and `exclude` (node names or
            regexes kept FP16, added to it); `opset`, `weights`, `checkpoint`, `trust_pickle` (see
            `trtq.export.resolve_model`); `handoff`, `typed_graph`, `build_engine`, `engine` (the build
            path); `device` ("auto", "cpu", "cuda"), `threads` (PyTorch CPU threads; a run is bitwise
            reproducible for a seed and a thread count), `force`; or a whole section by name
            (`calibration=`, `data=`, `train=`, `placement=`, `export=`, `handoff=`).

    Returns:
        The typed result; `result.to_json()` is metrics.json, `result.build` the hand-off's BuildResult.

    Raises:
        UsageError: a setting, the model or the data cannot work (the message names the option).
        TrtqError: the exported graph's Q/DQ placement differs from PTQ's.
    """
    from trtq.finetune.run import run_qat

    cfg = (config or QATConfig()).with_overrides(**overrides)
    data = cfg.data
    data = replace(data, train_data=data.train_data if train_data is None else train_data,
                   val_data=data.val_data if val_data is None else val_data)  # fmt: skip
    cfg = replace(cfg, data=data).validate(built_in_loop=train_fn is None)
    return run_qat(model, out, cfg, train_fn=train_fn, progress=progress)
