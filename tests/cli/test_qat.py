"""`trtq.cli.qat`: the options of `trtq qat` map onto `QATConfig` (no argparse defaults), and what it prints.

The command run end to end, against the shared QAT run of the API, is in tests/finetune/test_cli.py.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest


def _qat_parser() -> argparse.ArgumentParser:
    from trtq.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["qat"]


def test_options_have_no_argparse_defaults_and_the_help_says_the_configs() -> None:
    from trtq.finetune import QATConfig

    parser = _qat_parser()
    args = parser.parse_args(["--model", "m", "--out", "o", "--train-data", "t", "--val-data", "v"])
    shared = {"_run", "_option_names", "quiet", "json", "debug", "plugin"}  # what every command carries
    assert set(vars(args)) - shared == {
        "model",
        "out",
        "train_data",
        "val_data",
    }  # nothing but what was typed
    cfg = QATConfig.from_args(args)
    assert cfg.train == QATConfig().train and cfg.calibration == QATConfig().calibration
    helps = {a.dest: a.help for a in parser._actions}
    base = QATConfig()
    for dest, text in (("epochs", f"default {base.train.epochs}"), ("calib_samples", "default 512"),
                       ("calib", f"default {base.method}"), ("batch_size", "default 32"),
                       ("grad_clip", "default 5.0"), ("label_smoothing", "default 0.1"),
                       ("opset", "default 17"), ("device", "default auto")):  # fmt: skip
        assert text in helps[dest], dest


def test_options_map_onto_the_configuration() -> None:
    from trtq.finetune import QATConfig
    from trtq.finetune.sections import TrainConfig

    argv = ["--model", "m", "--out", "o", "--train-data", "t", "--val-data", "v", "--calib", "percentile",
            "--percentile", "99.9", "--calib-samples", "0", "--grad-clip", "0", "--no-amp", "--freeze-bn-epoch",
            "never", "--exclude", "a,b", "--no-build", "--no-engine", "--batch", "1,4,8", "--threads", "2",
            "--seed", "3", "--epochs", "4"]  # fmt: skip
    cfg = QATConfig.from_args(_qat_parser().parse_args(argv))
    assert cfg.method == "percentile" and cfg.calibrator_kwargs() == {"percentile": 99.9}
    assert cfg.data.calib_samples is None and cfg.data.train_data == "t" and cfg.data.val_data == "v"
    assert cfg.train == TrainConfig(epochs=4, grad_clip=None, amp=False, freeze_bn_epoch=1 << 30, seed=3)
    assert cfg.placement.exclude_nodes == ("a", "b") and cfg.threads == 2 and cfg.seed == 3
    assert not cfg.handoff.enabled and not cfg.handoff.build_engine and cfg.handoff.engine.batch == (1, 4, 8)


def test_no_calib_option_means_the_default_method() -> None:
    from trtq.config.calibration import DEFAULT_METHOD
    from trtq.finetune import QATConfig, QATDataConfig

    args = _qat_parser().parse_args(["--model", "m", "--out", "o", "--train-data", "t", "--val-data", "v"])
    cfg = QATConfig.from_args(args)
    assert cfg.method == DEFAULT_METHOD
    assert cfg.validate().data == QATDataConfig(train_data="t", val_data="v")


def test_freeze_bn_epoch_takes_a_number_or_never() -> None:
    from trtq.cli.qat import NEVER, _epoch_or_never

    assert _epoch_or_never("3") == 3 and _epoch_or_never("Never") == NEVER
    with pytest.raises(argparse.ArgumentTypeError, match="'soon'"):
        _epoch_or_never("soon")


def test_summary_names_each_accuracy_the_checks_and_where_the_results_are() -> None:
    from trtq.cli.qat import summary_text

    row = lambda top1, agree=None: SimpleNamespace(top1=top1, agreement_with_fp32=agree)  # noqa: E731
    result = SimpleNamespace(
        accuracy=SimpleNamespace(fp32=row(0.99), ptq=row(0.5, 0.51), qat=row(0.98, 0.97)),
        export_check=SimpleNamespace(top1_agreement=1.0, max_abs_logit_error=0.0123),
        export=SimpleNamespace(placement=SimpleNamespace(matches=True)),
        artifacts={"model.qat.onnx": "out/model.qat.onnx"},
        build=None,
    )
    text = summary_text(result).splitlines()
    assert text[0].startswith("FP32 ") and text[0].endswith("top-1  99.00%")
    assert "PTQ (calibrated, untrained)  top-1  50.00%  agreement with FP32  51.00%" in text
    assert "top-1 agreement 100.00%, max |logit error| 0.0123" in text[3]
    assert "Q/DQ placement matches PTQ: yes" in text
    assert text[-1] == "next: trtq build --from-qat out/model.qat.onnx --eval-data ..."
    built = SimpleNamespace(
        **{**vars(result), "build": SimpleNamespace(engine_status="skipped", out_dir="out/run")}
    )
    assert summary_text(built).splitlines()[-2:] == ["engine: skipped", "run folder: out/run (report.md)"]
