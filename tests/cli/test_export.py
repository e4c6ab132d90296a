"""`trtq export`: the FP32 ONNX from a model and real (or random) sample data; refuses to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from trtq.cli import main


def test_export_command_writes_onnx_and_refuses_to_overwrite(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, data = untrained_digits
    out = tmp_path / "m.onnx"
    code = main(["export", "--model", str(ts), "--sample-data", str(data), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "max abs error" in stdout
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 1, 8, 8]
    before = out.read_bytes()
    code = main(["export", "--model", "resnet18", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(out) in lines[0] and "--force" in lines[0]
    assert out.read_bytes() == before
    code = main(["export", "--model", str(ts), "--shape", "1,16,16", "--out", str(out), "--force"])
    assert code == 0 and out.read_bytes() != before


def test_json_summary_names_the_inputs_and_the_file(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert (
        main(["export", "--model", str(untrained_digits[0]), "--shape", "1,8,8", "--out", str(out), "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["out"] == str(out) and doc["inputs"] == [
        {"name": "input", "dtype": "float32", "dims": [None, 1, 8, 8]}
    ]


def test_bad_shape_is_a_usage_error(untrained_digits: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "export",
                "--model",
                str(untrained_digits[0]),
                "--shape",
                "1x8x8",
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 2
    )
    assert "--shape expects C,H,W" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
