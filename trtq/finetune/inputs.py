"""What a QAT run reads, resolved and checked before anything is written: the model, the data, the device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtq.errors import UsageError
from trtq.finetune.config import QATConfig

__all__ = ["QATInputs", "load_inputs", "resolve_device", "check_out_dir"]


@dataclass
class QATInputs:
    """The resolved inputs of a run.

    Attributes:
        source: the model (`trtq.export.ModelSource` with its torch module).
        preprocess: the image preprocessing the data was read with.
        train, val: the training and validation data (None when not given).
        calib: the calibration data (the training data unless `calib_data` was given).
        sample: a batch of up to 2 calibration samples (fixes the export's non-batch dimensions).
    """

    source: Any
    preprocess: Any
    train: Any
    val: Any
    calib: Any
    sample: np.ndarray


def resolve_device(device: str) -> Any:
    """The torch device of `--device` ("auto" = CUDA when PyTorch sees a GPU).

    Raises:
        UsageError: an unknown device, or CUDA asked for where PyTorch sees none.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device {device!r}: choose cpu, cuda or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu")
    return torch.device(device)


def check_out_dir(out: str | os.PathLike, force: bool) -> None:
    """Refuse an output folder `trtq.files.prepare_out_dir` would refuse, before any work (nothing is created).

    Raises:
        UsageError: `out` is a file, or a non-empty folder without `force`.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file, not a folder; choose a folder path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UsageError(
            f"output folder {path} already exists and is not empty; pass --force to overwrite it"
        )


def _module_source(model: Any, config: QATConfig) -> Any:
    import torch

    from trtq.export import resolve_model

    exp = config.export
    source = resolve_model(
        model, weights=exp.weights, checkpoint=exp.checkpoint, trust_pickle=exp.trust_pickle, seed=config.seed
    )
    if source.is_onnx or not isinstance(source.module, torch.nn.Module) or source.kind == "torchscript":
        raise UsageError(
            f"--model {source.spec}: QAT needs the PyTorch module (torchvision name, package.module:factory or "
            "nn.Module, with --checkpoint for trained weights); TorchScript and ONNX cannot be fine-tuned"
        )
    return source


def load_inputs(model: Any, config: QATConfig, *, built_in_loop: bool) -> QATInputs:
    """Resolve the model and read the data of `config` (validated), checking labels and sample shapes.

    Args:
        model: an `nn.Module`, a torchvision name or a `package.module:factory`.
        config: the run's configuration.
        built_in_loop: the built-in loop trains (training and validation data need labels).

    Raises:
        UsageError: the model cannot be fine-tuned, data lacks labels, or sample shapes differ.
    """
    from trtq.data import load_data, resolve_preprocess
    from trtq.export import input_channels

    source = _module_source(model, config)
    data = config.data
    pre = resolve_preprocess(data.preprocess, input_channels(source))

    def load(src: Any, limit: int | None, what: str) -> Any:
        return None if src is None else load_data(src, pre, limit=limit, seed=config.seed, what=what)

    train = load(data.train_data, data.train_samples, "--train-data")
    val = load(data.val_data, data.val_samples, "--val-data")
    if built_in_loop:
        for ds, opt in ((train, "--train-data"), (val, "--val-data")):
            if not ds.has_labels:
                raise UsageError(f"{opt} {ds.name} has no labels; use class sub-folders (or y in a .npz)")
    calib_src = data.calib_data if data.calib_data is not None else data.train_data
    calib = load(calib_src, data.calib_samples, "--calib-data")
    for ds, opt in ((train, "--train-data"), (val, "--val-data")):
        if ds is not None and ds.sample_shape != calib.sample_shape:
            raise UsageError(
                f"{opt} samples {ds.sample_shape} and --calib-data samples {calib.sample_shape} differ"
            )
    sample, _ = next(calib.iter_batches(min(2, len(calib))))
    return QATInputs(source, pre, train, val, calib, sample)
