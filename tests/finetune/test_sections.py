"""`trtq.finetune.sections`: the training, data and hand-off sections, and their command-line options."""

from __future__ import annotations

import argparse

import pytest

from trtq.errors import UsageError
from trtq.finetune import HandoffConfig, QATDataConfig, TrainConfig


def test_train_config_resolves_its_defaults_and_records_them() -> None:
    cfg = TrainConfig(epochs=5, batch_size=64)
    assert cfg.resolved_lr() == pytest.approx(0.1 * 64 / 256 / 10) and cfg.resolved_freeze_bn_epoch() == 2
    d = cfg.to_json()
    assert d["resolved_lr"] == cfg.resolved_lr() and d["resolved_freeze_bn_epoch"] == 2 and d["epochs"] == 5
    with pytest.raises(UsageError, match="--label-smoothing"):
        TrainConfig(label_smoothing=1.0).validate()
    with pytest.raises(UsageError, match="--lr must be a positive number"):
        TrainConfig(lr=float("nan")).validate()


def test_only_given_options_override_the_base() -> None:
    base = TrainConfig(epochs=9, lr=0.3)
    assert TrainConfig.from_args(argparse.Namespace(), base) == base
    cfg = TrainConfig.from_args(argparse.Namespace(epochs=1, grad_clip=0.0, no_amp=True), base)
    assert (cfg.epochs, cfg.lr, cfg.grad_clip, cfg.amp) == (1, 0.3, None, False)
    data = QATDataConfig.from_args(
        argparse.Namespace(val_samples=0, calib_data="c/"), QATDataConfig(val_samples=5)
    )
    assert data.val_samples is None and data.calib_data == "c/" and data.calib_samples == 512
    assert QATDataConfig.from_args(argparse.Namespace(size=16)).preprocess.size == 16


def test_data_config_names_what_is_missing() -> None:
    with pytest.raises(UsageError, match="--val-data is required"):
        QATDataConfig(train_data="t/").validate()
    QATDataConfig(calib_data="c/").validate(built_in_loop=False)


def test_handoff_options_and_engine_settings() -> None:
    from trtq.engines import EngineOptions

    cfg = HandoffConfig.from_args(argparse.Namespace(no_typed=True, workspace_gb=2.0))
    assert cfg.enabled and not cfg.typed_graph and cfg.build_engine
    assert isinstance(cfg.engine, EngineOptions) and cfg.engine.workspace_gb == 2.0
    assert HandoffConfig.from_args(argparse.Namespace()) == HandoffConfig()
    assert HandoffConfig().to_json() == {
        "enabled": True,
        "typed_graph": True,
        "build_engine": True,
        "engine": None,
    }
