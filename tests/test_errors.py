"""The exceptions a user can cause: UsageError exits 2, TrtqError and TensorRTUnavailable exit 1."""

from __future__ import annotations

import pytest

from trtq.errors import TensorRTUnavailable, TrtqError, UsageError


def test_exit_codes_and_hierarchy():
    assert (TrtqError.exit_code, UsageError.exit_code, TensorRTUnavailable.exit_code) == (1, 2, 1)
    assert issubclass(UsageError, TrtqError) and issubclass(TensorRTUnavailable, TrtqError)
    assert not issubclass(TensorRTUnavailable, UsageError)  # a missing TensorRT is not a mistake in the call


@pytest.mark.parametrize(("error", "code"), [(UsageError, 2), (TrtqError, 1), (TensorRTUnavailable, 1)])
def test_the_cli_exits_with_the_errors_code(error, code, monkeypatch, capsys, tmp_path):
    import trtq.cli.bench as bench_cmd
    from trtq.cli import main

    def fails(args):
        raise error("one line")

    monkeypatch.setattr(bench_cmd, "run", fails)
    (tmp_path / "m.onnx").write_bytes(b"")  # exists: the early missing-file check lets the command run
    assert main(["bench", str(tmp_path / "m.onnx")]) == code
    assert capsys.readouterr().err.strip().endswith(": one line")
