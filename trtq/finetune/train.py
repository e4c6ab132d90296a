"""The built-in QAT loop for image classification.

Cross-entropy (optional label smoothing), SGD with Nesterov momentum or AdamW, cosine learning-rate
schedule with linear warm-up (per step), gradient clipping, mixed precision on CUDA. What the QAT
literature and TensorRT's guidance ask for on top of a plain fine-tune:

- learning rate about 10x below the FP32 one (`TrainConfig.resolved_lr`);
- BatchNorm statistics frozen from `freeze_bn_epoch` on (running mean/var stop moving; gamma/beta still
  train); BatchNorm is *not* folded in the training graph (TensorRT fuses it, TENSORRT.md rule 3);
- optional quantization delay: the first `quant_delay_epochs` train in FP32, then quantizers switch on and
  the activation ranges are recalibrated on the fine-tuned weights;
- validation after every epoch, best epoch kept (by top-1, ties to the earlier epoch), `last.pt` and
  `best.pt` state dicts (tensors only) in `checkpoints/`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtq.data import DataSource
from trtq.errors import UsageError
from trtq.finetune.sections import TrainConfig

__all__ = ["EpochRecord", "History", "fit", "evaluate"]


@dataclass
class EpochRecord:
    """What one epoch did (epoch 0 = the calibrated model before any training)."""

    epoch: int
    train_loss: float | None
    train_top1: float | None
    val_loss: float
    val_top1: float
    lr: float
    quantized: bool
    bn_frozen: bool


@dataclass
class History:
    """Per-epoch records, the best epoch, and the wall time (kept apart so metrics stay reproducible)."""

    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    @property
    def best(self) -> EpochRecord:
        return next(r for r in self.records if r.epoch == self.best_epoch)

    def to_json(self) -> dict[str, Any]:
        return {"epochs": [asdict(r) for r in self.records], "best_epoch": self.best_epoch}


class _Samples:
    """A DataSource as a torch map-style dataset (decodes one sample per index)."""

    def __init__(self, ds: DataSource) -> None:
        if ds.labels is None:
            raise UsageError(
                f"{ds.name} has no labels; the built-in QAT loop needs class sub-folders (or y in .npz)"
            )
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        from trtq.data import load_image

        ds = self.ds
        if ds.array is not None:
            x = np.ascontiguousarray(ds.array[i], dtype=np.float32)
        else:
            x = load_image(ds.files[i], ds.preprocess)
        return torch.from_numpy(x), int(ds.labels[i])


def _loader(ds: DataSource, cfg: TrainConfig, shuffle: bool, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        _Samples(ds), batch_size=cfg.batch_size, shuffle=shuffle, generator=g, num_workers=cfg.workers
    )


def evaluate(model: Any, ds: DataSource, device: Any, batch_size: int = 64) -> tuple[float, float]:
    """(mean cross-entropy, top-1) of a classifier on labelled data, in eval mode."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        with torch.no_grad():
            for x, y in ds.iter_batches(batch_size):
                if y is None:
                    raise UsageError(
                        f"{ds.name} has no labels; validation needs class sub-folders (or y in .npz)"
                    )
                logits = model(torch.from_numpy(x).to(device)).float()
                target = torch.from_numpy(np.asarray(y)).to(device)
                loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(1) == target).sum())
                n += len(y)
    finally:
        model.train(was_training)
    return loss_sum / max(n, 1), correct / max(n, 1)


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))

    return factor


def _set_bn_frozen(model: Any, frozen: bool) -> None:
    import torch.nn as nn

    if frozen:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@dataclass
class _Step:
    """The optimizer, learning-rate schedule and gradient scaler of one run of `fit`."""

    opt: Any
    sched: Any
    scaler: Any
    amp: bool
    steps_per_epoch: int


def _step_setup(model: Any, loader: Any, cfg: TrainConfig, device: Any) -> _Step:
    import torch

    amp = bool(cfg.amp if cfg.amp is not None else device.type == "cuda")
    if amp and device.type != "cuda":
        raise UsageError("mixed precision (--amp) needs --device cuda")
    lr = cfg.resolved_lr()
    steps_per_epoch = max(len(loader), 1)
    total = steps_per_epoch * max(cfg.epochs, 1)
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        opt: Any = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    else:
        opt = torch.optim.AdamW(groups, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _schedule(total, round(cfg.warmup_epochs * steps_per_epoch))
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    return _Step(opt, sched, scaler, amp, steps_per_epoch)


def _train_epoch(
    model: Any, loader: Any, step: _Step, cfg: TrainConfig, device: Any, epoch: int
) -> tuple[float, float]:
    """One epoch over `loader`; returns (mean training loss, training top-1)."""
    import torch
    import torch.nn.functional as F

    from trtq.progress import track

    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in track(loader, f"QAT epoch {epoch}/{cfg.epochs}", total=step.steps_per_epoch):
        x, y = x.to(device), y.to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=step.amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise UsageError(f"QAT loss became {float(loss)} in epoch {epoch}; lower --lr")
        step.opt.zero_grad(set_to_none=True)
        step.scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            step.scaler.unscale_(step.opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        step.scaler.step(step.opt)
        step.scaler.update()
        step.sched.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def fit(
    model: Any,
    train: DataSource,
    val: DataSource,
    cfg: TrainConfig,
    *,
    device: Any,
    set_quantization: Callable[[bool], None],
    recalibrate: Callable[[], None],
    checkpoint_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> History:
    """Fine-tune `model` (already wrapped with fake quantizers) and load the best epoch's weights into it.

    Args:
        model: the quantized model, on `device`.
        train, val: labelled data sources.
        cfg: hyper-parameters.
        device: torch device.
        set_quantization: turns the model's quantizers on/off (quantization delay).
        recalibrate: recalibrates activation ranges (called when quantization switches on after a delay).
        checkpoint_dir: where `last.pt` / `best.pt` go (None = no files).
        progress: receives one line per epoch.

    Returns:
        The per-epoch records and the best epoch (an epoch with quantizers on; epoch 0 is the calibrated,
        untrained model).
    """
    import torch

    from trtq.files import atomic_path

    device = torch.device(device)
    loader = _loader(train, cfg, shuffle=True, seed=cfg.seed)
    step = _step_setup(model, loader, cfg, device)
    freeze_at = cfg.resolved_freeze_bn_epoch()

    def save(name: str, state: dict[str, Any]) -> None:
        if checkpoint_dir is not None:
            with atomic_path(checkpoint_dir / name) as tmp:
                torch.save(state, str(tmp))

    history = History()
    start = time.perf_counter()
    quantized = cfg.quant_delay_epochs == 0
    set_quantization(quantized)
    val_loss, val_top1 = evaluate(model, val, device)
    history.records.append(EpochRecord(0, None, None, val_loss, val_top1, 0.0, quantized, freeze_at <= 0))
    best_state = copy.deepcopy(model.state_dict())
    best_top1 = val_top1
    for epoch in range(1, cfg.epochs + 1):
        if not quantized and epoch > cfg.quant_delay_epochs:
            set_quantization(True)
            recalibrate()
            quantized = True
        bn_frozen = epoch - 1 >= freeze_at
        model.train()
        _set_bn_frozen(model, bn_frozen)
        train_loss, train_top1 = _train_epoch(model, loader, step, cfg, device, epoch)
        val_loss, val_top1 = evaluate(model, val, device)
        lr = float(step.opt.param_groups[0]["lr"])
        record = EpochRecord(epoch, train_loss, train_top1, val_loss, val_top1, lr, quantized, bn_frozen)
        history.records.append(record)
        state = model.state_dict()
        save("last.pt", state)
        if quantized and (val_top1 > best_top1 or not history.records[history.best_epoch].quantized):
            best_top1, history.best_epoch = val_top1, epoch
            best_state = copy.deepcopy(state)
            save("best.pt", state)
        if progress:
            progress(
                f"epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                f"val top-1 {100 * val_top1:.2f}%{' (best)' if history.best_epoch == epoch else ''}"
            )
    if history.best_epoch == 0:
        save("best.pt", best_state)
    model.load_state_dict(best_state)
    set_quantization(True)
    history.seconds = time.perf_counter() - start
    return history
