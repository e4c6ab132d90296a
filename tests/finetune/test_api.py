"""`trtq.qat` (`trtq.finetune.api`): a model PTQ breaks and QAT repairs, a user training function, the
configuration as keywords or as a `QATConfig`, and bad input refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trtq.errors import UsageError


def test_ptq_loses_accuracy_and_qat_recovers_it(digits: dict, outlier_run) -> None:
    acc = outlier_run.metrics["accuracy"]
    assert acc["fp32"]["top1"] == pytest.approx(digits["fp32_acc"], abs=0.01) and acc["fp32"]["top1"] > 0.97
    # Measured over 40 runs (QAT seeds 0-9 on this model and on three FP32 models trained with other seeds;
    # bitwise the same under two busy CPU loops): PTQ 0.089-0.131 (minmax per-tensor range: 30 of 32 channels
    # round to zero), QAT 0.923-0.983 (this run 0.936), QAT - PTQ >= 0.83. The bounds leave >= 0.04 margin.
    assert acc["ptq"]["top1"] < 0.3
    assert acc["qat"]["top1"] > 0.88 and acc["qat"]["top1"] - acc["ptq"]["top1"] > 0.6
    epochs = outlier_run.metrics["training"]["epochs"]
    assert epochs[0]["val_top1"] < 0.3 and outlier_run.metrics["training"]["best_epoch"] >= 1
    # the typed fields say the same as metrics.json
    assert outlier_run.accuracy.qat.top1 == acc["qat"]["top1"] and outlier_run.history.best_epoch >= 1


def test_user_train_fn_gets_the_fake_quant_model(digits: dict, tmp_path: Path) -> None:
    import trtq

    calls = []

    def train_fn(model, ctx):
        quantizers = [m for n, m in model.named_modules() if n.endswith("input_quantizer") and m.is_enabled]
        calls.append((len(quantizers), ctx.device.type, ctx.out_dir))
        return {"my_metric": 1.5}

    res = trtq.qat(
        digits["model"], None, None, tmp_path / "fn", calib_data=str(digits["val"]), calib_samples=128,
        train_fn=train_fn, handoff=False, threads=1,
    )  # fmt: skip
    assert calls == [(4, "cpu", tmp_path / "fn")]
    assert res.metrics["training"]["user_metrics"] == {"my_metric": 1.5}
    # nothing trained: the QAT graph is the PTQ graph
    qat_graph, ptq_graph = (
        onnx.load(res.artifacts["model.qat.onnx"]),
        onnx.load(res.artifacts["model.ptq.onnx"]),
    )
    del qat_graph.metadata_props[:]
    assert qat_graph.SerializeToString(deterministic=True) == ptq_graph.SerializeToString(deterministic=True)


def test_a_config_and_the_same_keywords_make_the_same_run(digits: dict, tmp_path: Path) -> None:
    """`config=QATConfig(...)` and the keywords of earlier versions are one configuration."""
    import trtq
    from trtq.config import CalibrationConfig
    from trtq.finetune import QATConfig, QATDataConfig, TrainConfig

    common = {"handoff": False, "threads": 1}
    by_kw = trtq.qat(digits["model"], str(digits["train"]), str(digits["val"]), tmp_path / "kw", epochs=0,
                     calib="percentile", percentile=99.9, calib_samples=64, val_samples=64, **common)  # fmt: skip
    config = QATConfig(
        calibration=CalibrationConfig(method="percentile", params={"percentile": 99.9}),
        data=QATDataConfig(
            train_data=str(digits["train"]), val_data=str(digits["val"]), calib_samples=64, val_samples=64
        ),  # fmt: skip
        train=TrainConfig(epochs=0),
    )
    by_cfg = trtq.qat(digits["model"], None, None, tmp_path / "cfg", config=config, **common)
    a, b = (json.loads((r.out_dir / "metrics.json").read_text()) for r in (by_kw, by_cfg))
    for m in (a, b):
        m.pop("timings_s")
    assert a == b and a["calibration"]["method"] == "percentile"
    assert by_kw.config.calibrator_kwargs() == {"percentile": 99.9}


def test_bad_input_is_refused_with_a_clear_message(digits: dict, tmp_path: Path) -> None:
    import trtq

    ts = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(digits["model"].eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    unlabeled = tmp_path / "x.npy"
    np.save(unlabeled, np.zeros((8, 1, 8, 8), np.float32))
    train, val = str(digits["train"]), str(digits["val"])
    cases = [
        ((str(ts), train, val), {}, "TorchScript"),
        ((digits["model"], str(unlabeled), val), {}, "no labels"),
        ((digits["model"], train, val), {"optimizer": "lion"}, "--optimizer"),
        ((digits["model"], train, val), {"epochs": 2, "quant_delay_epochs": 2}, "--quant-delay-epochs"),
        ((digits["model"], train, val), {"calib": "kl"}, "--calib"),
        ((digits["model"], train, val), {"exclude": [".*"]}, "nothing to train"),
        ((digits["model"], None, val), {}, "--train-data is required"),
        ((digits["model"], train, val), {"calib": "all"}, "one method"),
        ((digits["model"], train, val), {"threads": 0}, "--threads"),
        ((digits["model"], train, val), {"epochs_": 1}, "unknown setting 'epochs_'"),
    ]
    for i, (args, kw, match) in enumerate(cases):
        with pytest.raises(UsageError, match=match):
            trtq.qat(*args, tmp_path / f"out{i}", handoff=False, threads=kw.pop("threads", 1), **kw)
        assert not (tmp_path / f"out{i}").exists()  # refused before anything was written
