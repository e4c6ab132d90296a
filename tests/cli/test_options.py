"""Shared option groups: no argparse defaults (only what is typed reaches the config), and the config they build."""

from __future__ import annotations

import argparse
import json

import pytest

from trtq.cli import build_parser
from trtq.cli._options import S, config_from_args, floats, version_triple
from trtq.config import BuildConfig, CalibrationConfig

#: Options that keep an argparse default on purpose (the command's own file names and switches).
OWN_DEFAULTS = {
    "bench": {"artifacts", "force"}, "calibrate": {"tensors", "out", "trt_cache", "plots"}, "demo": {"task", "out", "calib", "force", "seed", "epochs", "train_scenes", "disable_rule"},
    "engine": {"onnx", "plan_out", "typed"}, "export": {"out", "shape"},
    "quantize": {"calibration", "out", "trt_out", "plan_out", "method"}, "sensitivity": {"calibration", "method"},
    "validate": {"candidate", "reference", "batch_size", "result_out"},
}  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(set(_subparsers()) - {"qat"}))
def test_options_have_no_argparse_default_so_the_config_holds_the_defaults(command):
    sub = _subparsers()[command]
    common = {"help", "quiet", "json", "debug", "_run", "command"}
    defaulted = {a.dest for a in sub._actions if a.default is not S and a.dest not in common}
    assert defaulted == OWN_DEFAULTS.get(command, set()), command


def test_a_parsed_command_line_holds_only_what_was_typed():
    args = build_parser().parse_args(["build", "--model", "m", "--out", "o", "--calib", "mse"])
    given = {k for k in vars(args) if k not in ("quiet", "json", "debug", "_run", "command")}
    assert given - {"_option_names"} == {"model", "out", "calib"}


def test_config_from_args_starts_from_the_recorded_config_and_applies_what_was_given(tmp_path):
    recorded = BuildConfig(model="m", out="o", calibration=CalibrationConfig(method="minmax"), plugins=("a",))
    (tmp_path / "report.json").write_text(json.dumps({"config": recorded.to_dict()}))
    args = build_parser().parse_args(["build", "--config", str(tmp_path / "report.json"), "--out", "o2", "--seed", "3",
                                      "--plugin", "a", "--plugin", "b", "--max-drop", "1"])  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.model, cfg.out, cfg.seed, cfg.plugins) == ("m", "o2", 3, ("a", "b"))
    assert cfg.calibration.method == "minmax" and cfg.fallback.max_drop == 1.0
    base = BuildConfig(seed=9)
    assert config_from_args(argparse.Namespace(), base) == base


def test_value_parsers():
    assert floats("0.5,1,2e-1") == (0.5, 1.0, 0.2)
    assert version_triple("10.13.3") == (10, 13, 3)
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated numbers, got 'a,b'"):
        floats("a,b")
    for bad in ("10.13", "10.x.3", "10.13.3.1"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected MAJOR.MINOR.PATCH"):
            version_triple(bad)
