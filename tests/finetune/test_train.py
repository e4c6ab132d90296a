"""`trtq.finetune.train`: the built-in loop's BatchNorm freeze, quantization delay, default learning rate, best
epoch."""

from __future__ import annotations

import pytest
import torch


def test_bn_freeze_quant_delay_and_default_lr(digits: dict) -> None:
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model
    from trtq.finetune import TrainConfig, calibrate_inputs, quantize_model
    from trtq.finetune.train import fit
    from trtq.placement import plan_qdq

    assert TrainConfig().resolved_lr() == pytest.approx(0.1 * 32 / 256 / 10)
    assert TrainConfig(optimizer="adamw").resolved_lr() == pytest.approx(1e-4)
    assert TrainConfig(fp32_lr=0.5, lr=None).resolved_lr() == pytest.approx(0.05)
    ds = load_data(str(digits["val"]), limit=96, seed=0)
    fp32 = export_onnx(resolve_model(digits["model"]), next(ds.iter_batches(2))[0]).model
    qm = quantize_model(digits["model"], fp32, plan_qdq(fp32))
    calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")
    bn = dict(qm.model.named_modules())["stem.1"]
    states, recal = [], []

    def set_q(on: bool) -> None:
        states.append(on)
        qm.set_quantization(on)

    means = {}
    cfg = TrainConfig(epochs=3, freeze_bn_epoch=1, quant_delay_epochs=1, lr=0.01, batch_size=32)

    class Spy:
        def __call__(self) -> None:
            recal.append(True)
            means["after_epoch_1"] = bn.running_mean.clone()
            calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")

    hist = fit(qm.model, ds, ds, cfg, device="cpu", set_quantization=set_q, recalibrate=Spy())
    assert [r.quantized for r in hist.records] == [False, False, True, True]
    assert [r.bn_frozen for r in hist.records[1:]] == [False, True, True]
    assert recal == [True] and states[0] is False and states[-1] is True
    assert hist.best_epoch >= 2  # an FP32 epoch is never the one exported
    torch.testing.assert_close(bn.running_mean, means["after_epoch_1"])  # frozen from epoch index 1


def test_checkpoints_hold_tensors_only_and_best_is_loaded(digits: dict, tmp_path) -> None:
    from trtq.data import load_data
    from trtq.export import export_onnx, resolve_model
    from trtq.finetune import TrainConfig, calibrate_inputs, quantize_model
    from trtq.finetune.train import evaluate, fit
    from trtq.placement import plan_qdq

    ds = load_data(str(digits["val"]), limit=64, seed=0)
    fp32 = export_onnx(resolve_model(digits["model"]), next(ds.iter_batches(2))[0]).model
    qm = quantize_model(digits["model"], fp32, plan_qdq(fp32))
    calibrate_inputs(qm, (x for x, _ in ds.iter_batches(32)), "minmax")
    lines = []
    hist = fit(qm.model, ds, ds, TrainConfig(epochs=1, lr=0.01), device="cpu", set_quantization=qm.set_quantization,
               recalibrate=lambda: None, checkpoint_dir=tmp_path, progress=lines.append)  # fmt: skip
    best = torch.load(str(tmp_path / "best.pt"), weights_only=True)
    assert (tmp_path / "last.pt").is_file() and all(isinstance(v, torch.Tensor) for v in best.values())
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1: train loss")
    # the model holds the best epoch's weights, whose validation top-1 the history recorded
    assert evaluate(qm.model, ds, "cpu")[1] == hist.best.val_top1
