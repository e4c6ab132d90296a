"""`trtq demo`: its options reach `run_demo`, and it prints the build command to repeat by hand (or the JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trtq.demo
from trtq.cli import main
from trtq.demo import DemoFiles, DemoResult
from trtq.pipeline.results import BuildResult


@pytest.fixture
def fake_demo(monkeypatch, tmp_path):
    """`run_demo` replaced by a recorder returning a DemoResult (no training, no build)."""
    calls = []

    def run_demo(out, *, calib, force, seed):
        calls.append((out, calib, force, seed))
        root = Path(out)
        files = DemoFiles(
            root, root / "m.ts", root / "m.pt", root / "calib", root / "val", root / "train", 2.5, 0.97
        )
        return DemoResult(files, BuildResult(out_dir=root / "run"), ["trtq", "build", "--model", "m.ts"])

    monkeypatch.setattr(trtq.demo, "run_demo", run_demo)
    return calls


def test_options_reach_run_demo_and_the_command_is_printed(fake_demo, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--calib", "mse", "--force", "--seed", "4"]) == 0
    assert fake_demo == [(str(tmp_path / "d"), "mse", True, 4)]
    out = capsys.readouterr().out
    assert out.startswith("demo model trained in 2.5 s; same build by hand:\n  trtq build --model m.ts\n")
    assert f"run folder: {tmp_path / 'd' / 'run'} (report.md)" in out


def test_defaults_and_json(fake_demo, capsys):
    assert main(["demo", "--json"]) == 0
    assert fake_demo == [("runs/demo", "entropy", False, 0)]
    doc = json.loads(capsys.readouterr().out)
    assert doc["demo"] == {
        "train_seconds": 2.5,
        "torch_fp32_val_accuracy": 0.97,
        "command": ["trtq", "build", "--model", "m.ts"],
    }
    assert doc["format"] == "trtq.report/2"
