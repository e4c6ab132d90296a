"""`trtq.qat(...)`: calibrate, fine-tune with fake quantization, export the Q/DQ graph, hand off to the build path.

Output folder (`out`):

| file | what |
|---|---|
| `model.onnx` | FP32 export (BatchNorm folded): the placement plan's graph and the accuracy reference |
| `model.ptq.onnx` | the calibrated model exported untrained through the same path: the PTQ baseline |
| `model.qat.onnx` | the fine-tuned Q/DQ graph (PTQ's placement; settings in its metadata) |
| `metrics.json` | configuration, calibration, per-epoch metrics, FP32/PTQ/QAT accuracy, export checks |
| `training_curves.png` | loss and validation top-1 per epoch, FP32 and PTQ as reference lines |
| `checkpoints/last.pt`, `best.pt` | state dicts of the quantized model (tensors only) |
| `run/` | `trtq build`'s run folder made from `model.qat.onnx` (`build_from_qat`), with report.md |
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trtq.errors import TrtqError, UsageError

__all__ = ["qat", "QATResult", "TrainContext"]


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


@dataclass
class QATResult:
    """What `trtq.qat` returns.

    Attributes:
        out_dir: the QAT output folder.
        artifacts: file name -> path.
        metrics: the content of metrics.json.
        timings: seconds per step (kept out of metrics.json's reproducible part).
        build: the `trtq.pipeline.BuildResult` of the hand-off (None with `handoff=False`).
    """

    out_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    build: Any = None

    @property
    def qat_onnx(self) -> Path:
        return self.artifacts["model.qat.onnx"]

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
            "accuracy": self.metrics.get("accuracy", {}),
            "export_check": self.metrics.get("export_check", {}),
            "placement_matches_ptq": self.metrics.get("export", {}).get("placement", {}).get("matches"),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "build": None if self.build is None else self.build.to_json(),
        }


def _device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device {device!r}: choose cpu, cuda or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu")
    return torch.device(device)


def _accuracy(
    fp32: Any, ptq: Any, qat_graph: Any, val: Any, input_name: str, batch_size: int
) -> dict[str, Any]:
    """FP32 / PTQ / QAT top-1 in ONNX Runtime (each graph runs once over the validation data)."""
    from trtq.metrics import get_metric
    from trtq.validate import evaluate_runs, run_models

    runs = run_models(
        {"fp32": fp32, "ptq": ptq, "qat": qat_graph}, val, input_name=input_name, batch_size=batch_size
    )
    names = ("top1_accuracy", "top1_agreement", "cosine")
    res = evaluate_runs(runs, "fp32", ["ptq", "qat"], targets=val.targets,
                        extra_metrics=[get_metric(n) for n in names])  # fmt: skip
    out: dict[str, Any] = {"samples": len(val), "fp32": {"top1": res.value("fp32", "top1_accuracy")}}
    for key in ("ptq", "qat"):
        out[key] = {
            "top1": res.value(key, "top1_accuracy"),
            "agreement_with_fp32": res.value(key, "top1_agreement"),
            "cosine_vs_fp32": res.value(key, "cosine"),
        }
    return out


@dataclass
class _Inputs:
    """Everything `qat` reads, resolved and checked before anything is written."""

    source: Any
    preprocess: Any
    placement: Any
    train: Any
    val: Any
    calib: Any
    sample: np.ndarray


def _load_inputs(
    model: Any, train_data: Any, val_data: Any, calib_data: Any, *, preprocess: Any, placement: Any,
    exclude: Sequence[str], train_samples: int | None, val_samples: int | None, calib_samples: int | None,
    built_in_loop: bool, weights: str | None, checkpoint: Any, trust_pickle: bool, seed: int,
) -> _Inputs:  # fmt: skip
    import torch

    from trtq.data import load_data, resolve_preprocess
    from trtq.export import input_channels, resolve_model
    from trtq.placement import PlacementConfig

    source = resolve_model(
        model, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle, seed=seed
    )
    if source.is_onnx or not isinstance(source.module, torch.nn.Module) or source.kind == "torchscript":
        raise UsageError(
            f"--model {source.spec}: QAT needs the PyTorch module (torchvision name, package.module:factory or "
            "nn.Module, with --checkpoint for trained weights); TorchScript and ONNX cannot be fine-tuned"
        )
    pre = resolve_preprocess(preprocess, input_channels(source))
    if train_data is None and built_in_loop:
        raise UsageError("--train-data is required (the built-in loop trains on it)")

    def load(src: Any, limit: int | None, what: str) -> Any:
        return None if src is None else load_data(src, pre, limit=limit, seed=seed, what=what)

    train = load(train_data, train_samples, "--train-data")
    val = load(val_data, val_samples, "--val-data")
    if built_in_loop:
        if val is None:
            raise UsageError("--val-data is required (best-epoch selection and the FP32/PTQ/QAT comparison)")
        for ds, opt in ((train, "--train-data"), (val, "--val-data")):
            if not ds.has_labels:
                raise UsageError(f"{opt} {ds.name} has no labels; use class sub-folders (or y in a .npz)")
    calib = load(calib_data if calib_data is not None else train_data, calib_samples, "--calib-data")
    if calib is None:
        raise UsageError("--calib-data is required when there is no --train-data")
    for ds, opt in ((train, "--train-data"), (val, "--val-data")):
        if ds is not None and ds.sample_shape != calib.sample_shape:
            raise UsageError(
                f"{opt} samples {ds.sample_shape} and --calib-data samples {calib.sample_shape} differ"
            )
    sample, _ = next(calib.iter_batches(min(2, len(calib))))
    config = placement or PlacementConfig()
    if exclude:
        config = replace(config, exclude_nodes=(*config.exclude_nodes, *exclude))
    return _Inputs(source, pre, config, train, val, calib, sample)


def qat(
    model: Any,
    train_data: Any,
    val_data: Any,
    out: str | os.PathLike,
    *,
    calib: str = "entropy",
    calib_data: Any = None,
    calib_samples: int | None = 512,
    percentile: float = 99.99,
    epochs: int = 2,
    lr: float | None = None,
    fp32_lr: float | None = None,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.1,
    warmup_epochs: float = 0.0,
    freeze_bn_epoch: int | None = None,
    quant_delay_epochs: int = 0,
    grad_clip: float | None = 5.0,
    batch_size: int = 32,
    amp: bool | None = None,
    workers: int = 0,
    train_samples: int | None = None,
    val_samples: int | None = None,
    preprocess: Any = None,
    placement: Any = None,
    exclude: Sequence[str] = (),
    train_fn: Callable[[Any, TrainContext], Mapping[str, Any] | None] | None = None,
    device: str = "auto",
    opset: int = 17,
    weights: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    handoff: bool = True,
    typed_graph: bool = True,
    build_engine: bool = True,
    engine: Any = None,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> QATResult:
    """Quantization-aware training with trtq's placement and scales, exported to the build path.

    Args:
        model: an `nn.Module`, a torchvision name or a `package.module:factory` (with `checkpoint`);
            TorchScript and ONNX cannot be fine-tuned.
        train_data: labelled training data (class sub-folders, .npz with y, arrays; see `trtq.data`). With
            `train_fn` it may be None (then `calib_data` is required).
        val_data: labelled validation data (best-epoch selection and the FP32/PTQ/QAT comparison).
        out: output folder (refused if not empty, unless `force`); see the module doc for its content.
        calib: trtq calibration method for the initial activation ranges.
        calib_data: calibration data (default: `train_data`); `calib_samples` of it are used.
        percentile: the percentile method's percentile.
        epochs, lr, fp32_lr, optimizer, momentum, weight_decay, label_smoothing, warmup_epochs,
            freeze_bn_epoch, quant_delay_epochs, grad_clip, batch_size, amp, workers: the built-in loop,
            see `trtq.qat.TrainConfig` (lr defaults to a tenth of the FP32 rate).
        train_samples, val_samples: reproducible subsets.
        preprocess: `trtq.data.Preprocess`, preset name or dict (image folders).
        placement: `trtq.placement.PlacementConfig`; `exclude` adds node names/regexes kept in FP16
            (for example the layers `trtq build --max-drop` put in FP16).
        train_fn: your own training: called as `train_fn(model, TrainContext)` with the fake-quant model
            (train it in place); may return a dict of metrics for metrics.json. Replaces the built-in loop.
        device: "auto" (CUDA when PyTorch sees a GPU), "cpu" or "cuda".
        opset: export opset (>= 13).
        weights, checkpoint, trust_pickle: see `trtq.export.resolve_model`.
        handoff: continue into `build_from_qat` (`out/run`: typed graph, engine, report.md).
        typed_graph, build_engine, engine: the hand-off's typed-graph and engine steps.
        seed: seeds model construction, shuffling and data subsets; the same seed reproduces the metrics.
        force: replace a non-empty `out`.
        progress: receives one line per epoch.
        threads: PyTorch CPU threads for the run (None = PyTorch's default). On a busy CPU, 1 is often
            much faster than several; a different count may change the last bits of the results.
    """
    import torch

    from trtq.calibrators import canonical_method, list_calibrators
    from trtq.export import export_onnx, onnx_input_shape
    from trtq.files import prepare_out_dir, save_onnx, write_json
    from trtq.finetune.export import export_qat_onnx, torch_vs_onnx
    from trtq.finetune.quantize import calibrate_inputs, quantize_model
    from trtq.finetune.train import TrainConfig, evaluate, fit, plot_curves
    from trtq.pipeline import build_from_qat
    from trtq.pipeline.stages.qat import QAT_METADATA_KEY
    from trtq.placement import plan_qdq
    from trtq.progress import status

    previous_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, not {threads}")
        torch.set_num_threads(threads)
    try:
        cfg = TrainConfig(
            epochs=epochs, lr=lr, fp32_lr=fp32_lr, optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
            label_smoothing=label_smoothing, warmup_epochs=warmup_epochs, freeze_bn_epoch=freeze_bn_epoch,
            quant_delay_epochs=quant_delay_epochs, grad_clip=grad_clip, batch_size=batch_size, amp=amp,
            workers=workers, seed=seed,
        )  # fmt: skip
        if train_fn is None:
            cfg.validate()
        method = canonical_method(calib)
        if method not in list_calibrators():
            raise UsageError(
                f"--calib {calib!r} is not a method; choose from {', '.join(list_calibrators())}"
            )
        if opset < 13:
            raise UsageError(f"--opset {opset}: per-channel Q/DQ needs opset >= 13")
        dev = _device(device)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()

        # inputs, checked before anything is written -------------------------------------------------
        inp = _load_inputs(
            model, train_data, val_data, calib_data, preprocess=preprocess, placement=placement, exclude=exclude,
            train_samples=train_samples, val_samples=val_samples, calib_samples=calib_samples,
            built_in_loop=train_fn is None, weights=weights, checkpoint=checkpoint, trust_pickle=trust_pickle,
            seed=seed,
        )  # fmt: skip
        source, pre, config, sample = inp.source, inp.preprocess, inp.placement, inp.sample
        train_ds, val_ds, calib_ds = inp.train, inp.val, inp.calib
        check_ds = val_ds or calib_ds

        root = prepare_out_dir(out, force)
        result = QATResult(out_dir=root, timings=timings)
        metrics: dict[str, Any] = {"seed": seed, "device": dev.type}

        # FP32 export, plan, quantizers, calibration -----------------------------------------------------
        with status("exporting the FP32 model"):
            exported = export_onnx(source, sample, root / "model.onnx", opset=opset)
        fp32 = exported.model
        input_name, _ = onnx_input_shape(fp32)
        result.artifacts["model.onnx"] = root / "model.onnx"
        plan = plan_qdq(fp32, config)
        qm = quantize_model(source.module, fp32, plan, sample)
        qm.model.to(dev)

        def calib_batches() -> Any:
            return (x for x, _ in calib_ds.iter_batches(batch_size))

        def recalibrate() -> None:
            calibrate_inputs(qm, calib_batches(), method, percentile=percentile, device=dev)

        with status(f"calibrating activation ranges ({method})"):
            recalibrate()
        metrics["calibration"] = {"method": method, "samples": len(calib_ds), "amax": dict(qm.amax)}
        metrics["quantized_modules"] = [asdict(t) for t in qm.targets]
        metrics["output_quantizers"] = [asdict(o) for o in qm.outputs]
        metrics["export_only"] = dict(qm.export_only)
        timings["prepare"] = time.perf_counter() - t0

        # PTQ baseline through the same export path ----------------------------------------------------
        t = time.perf_counter()
        export_kw = {
            "calib_batches": calib_batches,
            "method": method,
            "percentile": percentile,
            "opset": opset,
        }
        ptq = export_qat_onnx(qm, sample, fp32, **export_kw)
        save_onnx(ptq.model, root / "model.ptq.onnx")
        result.artifacts["model.ptq.onnx"] = root / "model.ptq.onnx"
        timings["ptq_export"] = time.perf_counter() - t

        # training ------------------------------------------------------------------------------------
        t = time.perf_counter()
        torch.manual_seed(seed)
        metrics["config"] = cfg.to_json()
        if train_fn is not None:
            ctx = TrainContext(device=dev, train_data=train_ds, val_data=val_ds, out_dir=root, seed=seed)
            user = train_fn(qm.model, ctx)
            qm.set_quantization(True)
            metrics["training"] = {
                "train_fn": getattr(train_fn, "__qualname__", repr(train_fn)),
                "user_metrics": dict(user or {}),
            }
            history = None
        else:
            history = fit(
                qm.model, train_ds, val_ds, cfg, device=dev, set_quantization=qm.set_quantization,
                recalibrate=recalibrate, checkpoint_dir=root / "checkpoints", progress=progress,
            )  # fmt: skip
            metrics["training"] = history.to_json()
            for name in ("last.pt", "best.pt"):
                if (root / "checkpoints" / name).is_file():
                    result.artifacts[f"checkpoints/{name}"] = root / "checkpoints" / name
        timings["train"] = time.perf_counter() - t

        # export and checks ---------------------------------------------------------------------------
        t = time.perf_counter()
        with status("exporting the QAT graph"):
            exp = export_qat_onnx(qm, sample, fp32, **export_kw)
        if not exp.check.matches:
            raise TrtqError(exp.check.summary())
        meta = {"placement": asdict(config), "preprocess": pre.to_json(), "calib": method, "seed": seed}
        exp.model.metadata_props.add(key=QAT_METADATA_KEY, value=json.dumps(meta, sort_keys=True))
        save_onnx(exp.model, root / "model.qat.onnx")
        result.artifacts["model.qat.onnx"] = root / "model.qat.onnx"
        metrics["export"] = exp.summary()
        metrics["export_ptq"] = {"added_at_export": ptq.added, "placement_matches": ptq.check.matches}
        metrics["export_check"] = torch_vs_onnx(
            qm.model, exp.model, ((x, y) for x, y in check_ds.iter_batches(batch_size)), device=dev
        )
        if val_ds is not None and val_ds.has_labels:
            with status("FP32 / PTQ / QAT accuracy (ONNX Runtime)"):
                metrics["accuracy"] = _accuracy(fp32, ptq.model, exp.model, val_ds, input_name, batch_size)
            if history is not None:
                fp32_dev = next(source.module.parameters()).device
                _, fp32_torch = evaluate(source.module, val_ds, fp32_dev)
                metrics["torch"] = {
                    "fp32_top1": fp32_torch,
                    "ptq_top1": history.records[0].val_top1 if history.records[0].quantized else None,
                    "qat_top1": history.best.val_top1,
                }
        timings["export_and_check"] = time.perf_counter() - t

        if history is not None:
            refs = {}
            acc = metrics.get("accuracy", {})
            if acc.get("fp32", {}).get("top1") is not None:
                refs["FP32 (ONNX Runtime)"] = acc["fp32"]["top1"]
                refs["PTQ (ONNX Runtime)"] = acc["ptq"]["top1"]
            plot_curves(history, root / "training_curves.png", refs)
            result.artifacts["training_curves.png"] = root / "training_curves.png"
        timings["total"] = time.perf_counter() - t0
        result.metrics = metrics
        write_json(
            root / "metrics.json", {**metrics, "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        )
        result.artifacts["metrics.json"] = root / "metrics.json"

        if handoff:
            result.build = build_from_qat(
                root / "model.qat.onnx", root / "model.onnx", val_ds or calib_ds, root / "run",
                batch_size=batch_size, placement=config, strict=True, qat_metrics=metrics, typed_graph=typed_graph,
                build_engine=build_engine, seed=seed, **({"engine": engine} if engine is not None else {}),
            )  # fmt: skip
            result.artifacts["run"] = root / "run"
            timings["handoff"] = result.build.timings.get("total", 0.0)
        return result
    finally:
        torch.set_num_threads(previous_threads)
