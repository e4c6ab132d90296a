"""`trtq qat` (`trtq/cli/qat.py`): the command line is the API with the same configuration.

These tests live with the QAT tests because they compare against the package's shared QAT run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _qat_parser() -> argparse.ArgumentParser:
    from trtq.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["qat"]


def test_cli_reproduces_the_api_run_with_the_same_seed(digits: dict, outlier_run, tmp_path: Path) -> None:
    from trtq.cli import main

    out = tmp_path / "cli"
    argv = [
        "qat", "--model", "trtq.demo:DigitsNet", "--checkpoint", str(digits["outlier_sd"]),
        "--train-data", str(digits["train"]), "--val-data", str(digits["val"]), "--out", str(out),
        "--calib", "minmax", "--epochs", "2", "--lr", "0.01", "--train-samples", "800", "--calib-samples", "256",
        "--threads", "1", "--no-build", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    mine = json.loads((out / "metrics.json").read_text())
    ref = json.loads((outlier_run.out_dir / "metrics.json").read_text())
    for m in (mine, ref):
        m.pop("timings_s")
    assert mine == ref  # bitwise: a run repeats exactly for a seed and a thread count
    assert (out / "model.qat.onnx").read_bytes() == (outlier_run.out_dir / "model.qat.onnx").read_bytes()
    assert not (out / "run").exists()


def test_cli_build_from_qat_hands_the_qat_graph_to_the_build_path(
    outlier_run, digits, tmp_path: Path
) -> None:
    from trtq.cli import main

    qat_path = outlier_run.artifacts["model.qat.onnx"]
    code = main(["build", "--from-qat", str(qat_path), "--eval-data", str(digits["val"]), "--out",
                 str(tmp_path / "run"), "--no-typed", "--quiet"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "run" / "model.int8.onnx").read_bytes() == Path(qat_path).read_bytes()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["qat"]["accuracy"] == outlier_run.metrics["accuracy"]
    assert main(["build", "--from-qat", str(qat_path), "--out", str(tmp_path / "r2"), "--quiet"]) == 2


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
                       ("calib", f"default {base.calibration.method}"), ("batch_size", "default 32"),
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
