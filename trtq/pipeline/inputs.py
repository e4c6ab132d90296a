"""Resolving and checking what a run reads (model, preprocessing, data) before anything is written."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq.config import BuildConfig
from trtq.data import DataSource, Preprocess, load_data, resolve_preprocess
from trtq.errors import UsageError

__all__ = ["Inputs", "load_inputs", "load_dataset", "task_preprocess"]


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
        """Which data validation runs on, as report.json records it."""
        return "eval" if self.eval is not None else "calibration (no --eval-data)"

    @property
    def validation_phrase(self) -> str:
        """The same, for a sentence: "the evaluation data" or "the calibration data (no --eval-data given)"."""
        return (
            "the evaluation data" if self.eval is not None else "the calibration data (no --eval-data given)"
        )


def load_dataset(
    config: BuildConfig,
    which: str,
    preprocess: Preprocess,
    model_inputs: list[Any] | None = None,
    source: Any = None,
) -> DataSource | None:
    """The calibration ("calib") or evaluation ("eval") data of `config`, subset and seeded.

    With the model's inputs known (an ONNX model), the data is checked against them and named integer inputs are
    given the model's integer type; for a PyTorch model, inputs that will share the sequence axis must agree in
    shape; with the model's limits known (`source.limits`), sequences and token ids must fit its tables.
    """
    from trtq.data import check_fits, check_limits, check_sequences, conform
    from trtq.export import sequence_inputs

    d = config.data
    src = d.calib_data if which == "calib" else d.eval_data
    if src is None:
        return None
    limit = d.calib_samples if which == "calib" else d.eval_samples
    what = f"--{which}-data"
    task = config.task.task
    if isinstance(src, DataSource):
        ds = src.subset(limit, config.seed)
        if task != "classify":
            ds = _unlabelled_task_targets(ds, task)
    elif (
        task != "classify"
        and isinstance(src, (str, os.PathLike))
        and Path(src).is_dir()
        and not _npz_folder(src)
    ):
        from trtq.data.detection import task_source

        ds = task_source(task, src, preprocess, config.task.labels, which == "eval", what).subset(
            limit, config.seed
        )
    else:
        names = None if model_inputs is None else [i.name for i in model_inputs]
        if names is None and source is not None and source.kind == "huggingface":
            names = source.module.input_names  # the inputs its forward takes
        ds = load_data(src, preprocess, limit=limit, seed=config.seed, what=what, input_names=names)
    if (
        task != "classify"
        and not isinstance(src, DataSource)
        and (ds.targets is None or ds.targets.kind == "class")
    ):
        ds = _unlabelled_task_targets(ds, task)
    if model_inputs is not None:
        check_fits(ds, model_inputs, what)
        ds = conform(ds, model_inputs)
    elif source is not None and ds.is_named:
        if source.kind == "huggingface":
            source.module.check_dtypes(ds.inputs, what)
            source.module.bind(ds.input_names, what)
        check_sequences(ds, sequence_inputs(ds.sample(1)), what)
    if source is not None:
        check_limits(ds, source.limits, what)
    return ds


def _npz_folder(path: Any) -> bool:
    files = [p for p in Path(path).iterdir() if not p.name.startswith(".")]
    return bool(files) and all(p.suffix.lower() == ".npz" for p in files)


def _unlabelled_task_targets(ds: DataSource, task: str) -> DataSource:
    """Detection or segmentation targets without labels for data that has none (arrays: taken as preprocessed,
    so boxes are in input pixels): FP32's predictions are the reference."""
    from trtq.data.targets import DetectionTargets, SegmentationTargets

    if ds.targets is not None and ds.targets.kind in ("detection", "segmentation"):
        return ds
    if ds.is_named:
        raise UsageError(f"--task {task} takes image data with one input; {ds.name} holds named inputs")
    n = len(ds)
    c, h, w = ds.sample_shape
    if task == "detect":
        targets: Any = DetectionTargets(
            boxes=(np.zeros((0, 4)),) * n, classes=(np.zeros(0, np.int64),) * n, sizes=np.tile([h, w], (n, 1)),
            transforms=np.tile([1.0, 1.0, 0.0, 0.0], (n, 1)), labelled=False,
        )  # fmt: skip
    else:
        targets = SegmentationTargets(np.zeros((n, h, w), np.uint8), labelled=False)
    return replace(ds, targets=targets)


def task_preprocess(config: BuildConfig, own: Any) -> Any:
    """The preprocessing a run asks for: the configuration's, else the model's own, else `yolo` for detection."""
    if config.data.preprocess is not None:
        return config.data.preprocess
    if own is None and config.task.task == "detect":
        return "yolo"
    return own


def load_inputs(config: BuildConfig, *, source: Any = None) -> Inputs:
    """Resolve the model (unless `source` is given), the preprocessing and the data; check they fit.

    Raises:
        UsageError: a missing or unreadable model or data set, or data that cannot feed the model.
    """
    from trtq.export import check_input_shape, input_channels, onnx_inputs, resolve_model

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
    own = getattr(source, "preprocess", None)  # the source's own default (timm's data config)
    pre = resolve_preprocess(task_preprocess(config, own), channels)
    model_inputs = onnx_inputs(source.onnx_model) if source is not None and source.is_onnx else None
    calib = load_dataset(config, "calib", pre, model_inputs, source)
    evaluation = load_dataset(config, "eval", pre, model_inputs, source)
    first = calib if calib is not None else evaluation
    sample = None
    if first is not None:
        sample = first.sample(2)
        if model_inputs is not None and not first.is_named:
            what = "--calib-data" if calib else "--eval-data"
            check_input_shape(source.onnx_model, sample.shape, what=what, images=first.array is None)
    if calib is not None and evaluation is not None:
        if calib.is_named != evaluation.is_named:
            raise UsageError(
                "--calib-data and --eval-data must both hold named inputs (.npz) or both one input"
            )
        if calib.is_named and calib.input_names != evaluation.input_names:
            raise UsageError(
                f"--eval-data has arrays {evaluation.input_names} but --calib-data has {calib.input_names}; "
                "give both the same model inputs"
            )
        if not calib.is_named and calib.sample_shape != evaluation.sample_shape:
            raise UsageError(
                f"--eval-data samples have shape {evaluation.sample_shape} but --calib-data samples "
                f"{calib.sample_shape}"
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
