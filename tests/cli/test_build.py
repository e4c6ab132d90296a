"""`trtq build` from the command line: exit codes, one-line errors, --json, --quiet, --force, Ctrl-C, options."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.placement.checks import dq_fed
from trtq.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_json_and_quiet(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, data = untrained_digits
    code, out, err = _run(["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "r"),
                           "--calib", "minmax", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    assert Path(payload["artifacts"]["model.int8.onnx"]).is_file()
    assert "TensorRT" in payload["engine_status"]
    code, out, err = _run(["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "r"),
                           "--calib", "minmax", "--quiet", "--force", "--no-typed"], capsys)  # fmt: skip
    assert code == 0 and err == "" and out == ""


def test_summary_lines_name_each_model_and_the_run_folder(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, data = untrained_digits
    code, out, err = _run(["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "r"),
                           "--calib", "minmax", "--no-typed"], capsys)  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("FP32 (model.onnx)") and lines[1].startswith("INT8 (model.int8.onnx)")
    assert "top-1 agreement with FP32 100.00%" in lines[0]  # the reference against itself
    assert "calibration: minmax" in out and f"run folder: {tmp_path / 'r'} (report.md)" in out


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["build", "--model", str(tmp_path / "nope.pt"), "--calib-data", str(tmp_path),
                         "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2
    _one_line_error(err, "nope.pt", "does not exist")


def test_empty_calibration_folder(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _run(["build", "--model", str(untrained_digits[0]), "--calib-data", str(tmp_path / "empty"),
                         "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2
    _one_line_error(err, "empty", "no images")
    assert not (tmp_path / "r").exists()


def test_existing_output_folder_needs_force(untrained_digits: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "r"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    code, _, err = _run(
        [
            "build",
            "--model",
            str(untrained_digits[0]),
            "--calib-data",
            str(untrained_digits[1]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2
    _one_line_error(err, str(out), "--force")
    assert (out / "mine.txt").read_text() == "user data"


def test_input_shape_mismatch(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "big.npy", np.zeros((4, 1, 16, 16), np.float32))
    onnx_path = tmp_path / "m.onnx"
    from trtq.export import export_onnx

    export_onnx(str(untrained_digits[0]), np.zeros((1, 1, 8, 8), np.float32), onnx_path)
    code, _, err = _run(["build", "--model", str(onnx_path), "--calib-data", str(tmp_path / "big.npy"),
                         "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2
    _one_line_error(err, "(1, 16, 16)", "expects", "(1, 8, 8)")


def test_nan_activation_names_the_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "nanmodel.py").write_text(
        textwrap.dedent("""
        import torch
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = torch.nn.Conv2d(1, 32, 3, padding=1)
                self.b = torch.nn.Conv2d(32, 32, 3, padding=1)
                self.fc = torch.nn.Linear(32, 4)
            def forward(self, x):
                y = self.b(torch.sqrt(self.a(x)))  # NaN wherever conv a is negative
                return self.fc(y.mean((2, 3)))
        def make():
            return Net()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.save(tmp_path / "d.npy", np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32))
    code, _, err = _run(["build", "--model", "nanmodel:make", "--calib-data", str(tmp_path / "d.npy"),
                         "--out", str(tmp_path / "r"), "--calib", "minmax"], capsys)  # fmt: skip
    assert code == 1
    _one_line_error(err, "NaN")
    assert "Sqrt" in err or "/Sqrt_output_0" in err
    assert not (tmp_path / "r").exists()


def test_ctrl_c_leaves_no_half_written_run(untrained_digits: tuple[Path, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import trtq.qdq

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trtq.qdq, "insert_qdq", interrupted)
    code, _, err = _run(["build", "--model", str(untrained_digits[0]), "--calib-data", str(untrained_digits[1]),
                         "--out", str(tmp_path / "r"), "--calib", "minmax"], capsys)  # fmt: skip
    assert code == 130 and "interrupted" in err
    assert not (tmp_path / "r").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_bad_option_values_exit_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the method is checked against the registry before the model is even resolved ("x" names no model)
    assert (
        main(["build", "--model", "x", "--calib-data", ".", "--out", str(tmp_path / "y"), "--calib", "kl"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--calib 'kl' is not a registered calibration method" in err
    assert "entropy, minmax, percentile, mse" in err and not (tmp_path / "y").exists()


def test_quantize_small_puts_every_conv_and_gemm_on_dq_inputs(tmp_path: Path, image_folder) -> None:
    imgs = image_folder("imgs", classes=1, per_class=4, size=72)
    code = main(["build", "--model", "resnet18", "--calib-data", str(imgs), "--size", "64",
                 "--resize", "72", "--out", str(tmp_path / "r"), "--no-typed", "--quantize-small", "--quiet"])  # fmt: skip
    assert code == 0
    int8 = onnx.load(str(tmp_path / "r" / "model.int8.onnx"))
    weighted = {n.name for n in int8.graph.node if n.op_type in ("Conv", "Gemm")}
    assert len(weighted) == 21 and dq_fed(int8) == weighted


def test_config_repeats_a_recorded_run_and_options_override_it(
    untrained_digits: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts, data = untrained_digits
    first = ["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "a"), "--calib",
             "minmax", "--calib-samples", "8", "--no-typed", "--no-engine", "-q"]  # fmt: skip
    assert main(first) == 0
    recorded = tmp_path / "a" / "report.json"
    assert main(["build", "--config", str(recorded), "--out", str(tmp_path / "b"), "-q"]) == 0
    for name in ("model.onnx", "model.int8.onnx", "calibration.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (
        main(["build", "--config", str(recorded), "--out", str(tmp_path / "c"), "--calib", "mse", "-q"]) == 0
    )
    config = json.loads((tmp_path / "c" / "report.json").read_text())["config"]
    assert config["calibration"]["method"] == "mse" and config["data"]["calib_samples"] == 8
    assert config["typing"]["enabled"] is False  # kept from the recorded run
