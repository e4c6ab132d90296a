"""One QAT run from a validated `QATConfig`: the steps of `trtq.finetune.steps` in order, timed, reproducibly.

Output folder:

| file | what |
|---|---|
| `model.onnx` | FP32 export (BatchNorm folded): the placement plan's graph and the accuracy reference |
| `model.ptq.onnx` | the calibrated model exported untrained through the same path: the PTQ baseline |
| `model.qat.onnx` | the fine-tuned Q/DQ graph (PTQ's placement; settings in its metadata) |
| `metrics.json` | `QATResult.to_json()`: calibration, per-epoch metrics, FP32/PTQ/QAT accuracy, export checks |
| `training_curves.png` | loss and validation top-1 per epoch, FP32 and PTQ as reference lines |
| `checkpoints/last.pt`, `best.pt` | state dicts of the quantized model (tensors only) |
| `run/` | `trtq build`'s run folder made from `model.qat.onnx` (`build_from_qat`), with report.md |
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from trtq.finetune import steps
from trtq.finetune.config import QATConfig
from trtq.finetune.determinism import reproducible
from trtq.finetune.result import QATResult
from trtq.rundir import finish_in_place

__all__ = ["run_qat"]


def run_qat(
    model: Any,
    out: str | os.PathLike,
    config: QATConfig,
    *,
    train_fn: steps.TrainFn | None = None,
    progress: Callable[[str], None] | None = None,
) -> QATResult:
    """Run QAT with a validated configuration (`trtq.qat` validates and calls this).

    Args:
        model: an `nn.Module`, a torchvision name or a `package.module:factory`.
        out: the output folder (see the module doc).
        config: the configuration, `validate()`d.
        train_fn: the user's training function (None = the built-in loop).
        progress: receives one line per epoch.

    Returns:
        The typed result; metrics.json holds `result.to_json()`.
    """
    from pathlib import Path

    from trtq.finetune.inputs import check_out_dir, load_inputs, resolve_device

    with reproducible(config.seed, config.threads):
        t0 = time.perf_counter()
        check_out_dir(out, config.force)
        device = resolve_device(config.device)
        inputs = load_inputs(model, config, built_in_loop=train_fn is None)
        root = Path(out)
        result = QATResult(out_dir=root, config=config, device=device.type)
        run = steps.QATRun(config, inputs, device, root, result)
        timings = result.timings
        steps.export_fp32(run)
        steps.wrap_and_calibrate(run)  # the last check: every quantized layer maps to a module
        steps.create_out_dir(run)
        timings["prepare"] = time.perf_counter() - t0
        with _timed(timings, "ptq_export"):
            steps.export_ptq(run)
        with _timed(timings, "train"):
            steps.train(run, train_fn, progress)
        with _timed(timings, "export_and_check"):
            steps.export_qat(run)
            steps.measure_accuracy(run)
        steps.plot_training(run)
        timings["total"] = time.perf_counter() - t0
        steps.write_metrics(run)
        if config.handoff.enabled:
            steps.handoff(run)
        finish_in_place(run.root)
        return run.result


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the block's wall time as `timings[name]`."""
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - t
