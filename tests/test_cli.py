"""The command line: exit codes, one-line errors without tracebacks, --json, --quiet, --force, Ctrl-C."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained DigitsNet as TorchScript and 16 random samples."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    from trtq.demo import DigitsNet

    ts = root / "net.ts"
    torch.jit.save(torch.jit.trace(DigitsNet().eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    data = root / "data.npy"
    np.save(data, np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32))
    return ts, data


def _one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_json_and_quiet(tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ts, data = tiny
    code, out, err = _run(["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "r"),
                           "--calib", "minmax", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    assert Path(payload["artifacts"]["model.int8.onnx"]).is_file()
    assert "TensorRT" in payload["engine_status"]
    code, out, err = _run(["build", "--model", str(ts), "--calib-data", str(data), "--out", str(tmp_path / "r"),
                           "--calib", "minmax", "--quiet", "--force", "--no-typed"], capsys)  # fmt: skip
    assert code == 0 and err == "" and out == ""


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["build", "--model", str(tmp_path / "nope.pt"), "--calib-data", str(tmp_path),
                         "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2
    _one_line_error(err, "nope.pt", "does not exist")


def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["build", "--model", str(tmp_path / "nope.pt"), "--calib-data", ".", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main([*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UsageError" in err


def test_empty_calibration_folder(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _run(["build", "--model", str(tiny[0]), "--calib-data", str(tmp_path / "empty"),
                         "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 2
    _one_line_error(err, "empty", "no images")
    assert not (tmp_path / "r").exists()


def test_existing_output_folder_needs_force(tiny: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "r"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    code, _, err = _run(
        ["build", "--model", str(tiny[0]), "--calib-data", str(tiny[1]), "--out", str(out)], capsys
    )
    assert code == 2
    _one_line_error(err, str(out), "--force")
    assert (out / "mine.txt").read_text() == "user data"


def test_input_shape_mismatch(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "big.npy", np.zeros((4, 1, 16, 16), np.float32))
    onnx_path = tmp_path / "m.onnx"
    from trtq.export import export_onnx

    export_onnx(str(tiny[0]), np.zeros((1, 1, 8, 8), np.float32), onnx_path)
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


def test_ctrl_c_leaves_no_half_written_run(tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import trtq.qdq

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trtq.qdq, "insert_qdq", interrupted)
    code, _, err = _run(["build", "--model", str(tiny[0]), "--calib-data", str(tiny[1]), "--out",
                         str(tmp_path / "r"), "--calib", "minmax"], capsys)  # fmt: skip
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


def test_export_command_writes_onnx_and_refuses_to_overwrite(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    out = tmp_path / "m.onnx"
    code, stdout, err = _run(["export", "--model", str(tiny[0]), "--sample-data", str(tiny[1]), "--out", str(out)],
                             capsys)  # fmt: skip
    assert code == 0, err
    assert "max abs error" in stdout
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 1, 8, 8]
    before = out.read_bytes()
    code, _, err = _run(["export", "--model", "resnet18", "--out", str(out)], capsys)
    assert code == 2
    _one_line_error(err, str(out), "--force")
    assert out.read_bytes() == before
    code, _, _ = _run(["export", "--model", str(tiny[0]), "--shape", "1,16,16", "--out", str(out), "--force"],
                      capsys)  # fmt: skip
    assert code == 0 and out.read_bytes() != before
