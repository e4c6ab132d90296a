"""`trtq.cli.main`: command discovery, exit codes and one-line errors, --debug, --version, --plugin anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import trtq
import trtq.cli as cli
from trtq.cli import build_parser, main
from trtq.errors import TrtqError, UsageError

COMMANDS = [
    "bench",
    "build",
    "calibrate",
    "demo",
    "engine",
    "export",
    "qat",
    "quantize",
    "sensitivity",
    "validate",
]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_module_is_discovered_with_the_common_options():
    assert sorted(_subcommands()) == COMMANDS
    for name, sub in _subcommands().items():
        dests = {a.dest for a in sub._actions}
        assert {"quiet", "json", "debug", "plugin"} <= dests, name  # the options every command takes


def test_version_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"trtq {trtq.__version__}"
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out  # the help text


def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["build", "--model", str(tmp_path / "nope.pt"), "--calib-data", ".", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main([*args, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UsageError" in err


@pytest.mark.parametrize(("error", "code", "kind"), [(UsageError, 2, "error"), (TrtqError, 1, "failed")])
def test_errors_are_one_line_with_the_command_and_their_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: type,
    code: int,
    kind: str,
    tmp_path: Path,
) -> None:
    import trtq.cli.bench as bench_cmd

    def fails(args: argparse.Namespace) -> int:
        raise error("the reason, naming --option")

    monkeypatch.setattr(bench_cmd, "run", fails)
    monkeypatch.chdir(tmp_path)
    Path("m.onnx").write_bytes(b"")  # exists, so the early missing-file check lets the command run
    assert main(["bench", "m.onnx"]) == code
    assert capsys.readouterr().err == f"trtq bench: {kind}: the reason, naming --option\n"


def test_a_plugin_is_read_before_the_parser_wherever_it_stands(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--plugin", "no_such_plugin_x", "bench", "m.onnx"],
        ["bench", "m.onnx", "--plugin=no_such_plugin_x"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith("trtq: error: plugin 'no_such_plugin_x' (--plugin) cannot be imported")
            and err.count("\n") == 1
        )


def test_help_and_version_do_not_load_plugins(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import trtq.plugins

    monkeypatch.setattr(
        trtq.plugins, "load_plugins", lambda *a, **k: pytest.fail("plugins loaded for --version")
    )
    with pytest.raises(SystemExit):
        main(["--version", "--plugin", "x"])


def test_dependency_warnings_are_silenced_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.onnx").write_bytes(b"")
    calls = []
    monkeypatch.setattr(cli, "_quiet_dependencies", lambda: calls.append("quiet"))
    import trtq.cli.bench as bench_cmd

    monkeypatch.setattr(bench_cmd, "run", lambda args: 0)
    assert main(["bench", "m.onnx"]) == 0 and calls == ["quiet"]
    assert main(["bench", "m.onnx", "--debug"]) == 0 and calls == ["quiet"]
