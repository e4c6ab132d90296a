"""`trtq --version`, `trtq COMMAND --help` and a missing input file answer before torch, onnx or onnxruntime load.

Each check runs in a fresh interpreter and looks at `sys.modules` afterwards (what `python -X importtime` shows),
so it pins what is imported, not how long it takes on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trtq.cli import build_parser

HEAVY = ("torch", "onnx", "onnxruntime", "polygraphy", "matplotlib", "timm", "tensorrt")

_PROBE = r"""
import contextlib, io, json, sys
from trtq.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            codes.append([main(argv), err.getvalue()])
        except SystemExit as e:
            codes.append([e.code, err.getvalue()])
print(json.dumps({"codes": codes, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _probe(argvs: list[list[str]], cwd=None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argvs), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _commands() -> list[str]:
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_version_and_every_help_import_nothing_heavy():
    commands = _commands()
    assert {"build", "export", "bench", "qat", "engine"} <= set(commands)
    got = _probe([["--version"], ["--help"]] + [[c, "--help"] for c in commands])
    assert all(code == 0 for code, _ in got["codes"])
    assert got["heavy"] == []


def test_help_still_lists_registry_names(capsys):
    """The names come from the registries when help is shown (they used to be read at parser build)."""
    from trtq.calibrators import CALIBRATORS
    from trtq.cli import main
    from trtq.placement.rules import RULES

    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in CALIBRATORS.names())
    assert all(name in text for name in RULES.names())
    assert "top1_agreement" in text and "imagenet" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["build", "--model", "missing.pt", "--calib-data", ".", "--out", "r"],
            "model file missing.pt does not exist",
        ),
        (
            ["build", "--model", "resnet18", "--calib-data", "nope/", "--out", "r"],
            "--calib-data nope/ does not exist",
        ),
        (["export", "--model", "m/x.onnx", "--out", "x.onnx"], "model file m/x.onnx does not exist"),
        (["validate", "--model", "a.onnx", "--reference", "a.onnx", "--data", "."], "model file a.onnx"),
        (["bench", "nothing.onnx"], "nothing.onnx does not exist"),
    ],
)
def test_missing_input_is_refused_before_heavy_imports(argv, message, tmp_path):
    got = _probe([argv], cwd=tmp_path)
    ((code, err),) = got["codes"]
    assert code == 2 and message in err and "Traceback" not in err
    assert got["heavy"] == []
