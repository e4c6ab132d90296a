"""Resolving and checking what a run reads (model, preprocessing, data) before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtq.config import BuildConfig
from trtq.data import DataSource, Preprocess, load_data, resolve_preprocess
from trtq.errors import UsageError

__all__ = ["Inputs", "load_inputs", "load_dataset"]


@dataclass
class Inputs:
    """The model source and the data of a run, checked against each other.

    Attributes:
        source: the resolved model (`trtq.export.ModelSource`), None for runs that start from ONNX files only.
        preprocess: the preprocessing image folders get.
        calib: the calibration data (None when scales come from elsewhere).
        eval: the evaluation data (None: the calibration data is used, and the report says so).
        sample: two samples of real data, the export's example input.
        warnings: what a careful user should know about these inputs (random weights, raw uint8 arrays, ...).
    """

    source: Any
    preprocess: Preprocess
    calib: DataSource | None
    eval: DataSource | None
    sample: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    @property
    def validation(self) -> DataSource | None:
        """The data validation, method choice and sensitivity run on."""
        return self.eval if self.eval is not None else self.calib

    @property
    def validation_label(self) -> str:
        return "eval" if self.eval is not None else "calibration (no --eval-data)"


def load_dataset(config: BuildConfig, which: str, preprocess: Preprocess) -> DataSource | None:
    """The calibration ("calib") or evaluation ("eval") data of `config`, subset and seeded."""
    d = config.data
    src = d.calib_data if which == "calib" else d.eval_data
    if src is None:
        return None
    limit = d.calib_samples if which == "calib" else d.eval_samples
    if isinstance(src, DataSource):
        return src.subset(limit, config.seed)
    return load_data(src, preprocess, limit=limit, seed=config.seed, what=f"--{which}-data")


def load_inputs(config: BuildConfig, *, source: Any = None) -> Inputs:
    """Resolve the model (unless `source` is given), the preprocessing and the data; check they fit.

    Raises:
        UsageError: a missing or unreadable model or data set, or data that cannot feed the model.
    """
    from trtq.export import check_input_shape, input_channels, resolve_model

    if source is None and config.model is not None:
        e = config.export
        source = resolve_model(
            config.model,
            weights=e.weights,
            checkpoint=e.checkpoint,
            trust_pickle=e.trust_pickle,
            seed=config.seed,
        )
    if source is not None and source.is_onnx:
        from trtq.export.onnx_model import check_onnxruntime_ops

        check_onnxruntime_ops(source.onnx_model, str(source.spec))
    channels = input_channels(source) if source is not None else None
    pre = resolve_preprocess(config.data.preprocess, channels)
    calib = load_dataset(config, "calib", pre)
    evaluation = load_dataset(config, "eval", pre)
    first = calib if calib is not None else evaluation
    sample = None
    if first is not None:
        sample, _ = next(first.iter_batches(min(2, len(first))))
        if source is not None and source.is_onnx:
            check_input_shape(
                source.onnx_model, sample.shape, what="--calib-data" if calib else "--eval-data",
                images=first.array is None,
            )  # fmt: skip
    if calib is not None and evaluation is not None and calib.sample_shape != evaluation.sample_shape:
        raise UsageError(
            f"--eval-data samples have shape {evaluation.sample_shape} but --calib-data samples {calib.sample_shape}"
        )
    warnings = list(getattr(source, "warnings", None) or [])
    model_dtype = _input_dtype(source)
    for ds, option in ((calib, "--calib-data"), (evaluation, "--eval-data")):
        raw = getattr(ds, "raw_dtype", None)
        if raw is not None and np.issubdtype(raw, np.integer) and not np.issubdtype(model_dtype, np.integer):
            warnings.append(
                f"{option} {ds.name} holds {raw} values, fed to the model as they are (arrays are taken as "  # type: ignore[union-attr]
                "preprocessed); if they are raw pixels, save them normalised as float32 (e.g. (x / 255 - mean) / std), "
                "or give an image folder, which gets --preset/--mean/--std"
            )
    return Inputs(
        source=source, preprocess=pre, calib=calib, eval=evaluation, sample=sample, warnings=warnings
    )


def _input_dtype(source: Any) -> np.dtype:
    """The dtype of the model's first input (float32 for PyTorch models)."""
    if source is not None and source.is_onnx:
        from trtq.export.onnx_model import onnx_inputs

        inputs = onnx_inputs(source.onnx_model)
        if inputs:
            return inputs[0].dtype
    return np.dtype(np.float32)
