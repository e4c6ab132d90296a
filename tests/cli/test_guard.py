"""What every command runs inside (trtq.cli._guard): SIGTERM/SIGHUP like Ctrl-C, swallowed signals delivered
again, --json stdout holding JSON only; and the run-folder cases of the command line (--force, SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.cli import main

TRTQ = [sys.executable, "-c", "import sys; from trtq.cli import main; sys.exit(main())"]
SLOW_PLUGIN = """
import os, time
from pathlib import Path
from trtq.calibrators import CollectorCalibrator, register_calibrator

@register_calibrator("slowmax")
class SlowMax(CollectorCalibrator):
    needs_histogram = False

    def amax_from(self, rec):
        Path(os.environ["TRTQ_TEST_READY"]).write_text("calibrating")
        time.sleep(120)
        return rec.absmax
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    from trtq.demo import DigitsNet

    ts = root / "net.ts"
    torch.jit.save(torch.jit.trace(DigitsNet().eval(), torch.zeros(1, 1, 8, 8)), str(ts))
    data = root / "data.npy"
    np.save(data, np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32))
    (root / "slowplugin.py").write_text(SLOW_PLUGIN)
    return ts, data


def _argv(tiny: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    return ["build", "--model", str(tiny[0]), "--calib-data", str(tiny[1]), "--out", str(out), "--calib", "minmax",
            "--no-typed", "--no-engine", *extra]  # fmt: skip


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def _start_slow(tiny: tuple[Path, Path], out: Path, ready: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{tiny[0].parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TRTQ_TEST_READY": str(ready)}  # fmt: skip
    argv = [*TRTQ, "--plugin", "slowplugin", *_argv(tiny, out)]
    argv[argv.index("minmax")] = "slowmax"
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen[str], limit: float = 240.0) -> None:
    start = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"trtq ended early: {proc.communicate()}")
        if time.monotonic() - start > limit:
            proc.kill()
            raise AssertionError("trtq never reached calibration")
        time.sleep(0.1)


def test_sigterm_cleans_up_like_ctrl_c_and_exits_143(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    out, ready = tmp_path / "r", tmp_path / "ready"
    proc = _start_slow(tiny, out, ready)
    _wait_for(ready, proc)
    assert len(list(tmp_path.glob(".r.partial-*"))) == 1  # the run is being staged
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert _lines(err) == ["trtq: terminated (SIGTERM); no partial artifacts were left behind"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next_run(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    out, ready = tmp_path / "r", tmp_path / "ready"
    proc = _start_slow(tiny, out, ready)
    _wait_for(ready, proc)
    proc.kill()
    proc.communicate(timeout=60)
    (left,) = tmp_path.glob(".r.partial-*")
    assert (left / ".trtq-run").is_file()  # marked from its first moment, named by pid and start time
    env = {**os.environ, "PYTHONPATH": str(tiny[0].parent)}
    done = subprocess.run([*TRTQ, *_argv(tiny, out)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"removed {left}, the staging folder of an interrupted run" in done.stderr
    assert not left.exists() and (out / "model.int8.onnx").is_file()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_signal_during_a_stage_exits_128_plus_signal_and_removes_the_staging_folder(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    signum: int, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    import trtq.qdq

    # The default disposition, whatever the test runner inherited (nohup ignores SIGHUP; see the next test).
    inherited = signal.signal(signum, signal.SIG_DFL)
    request.addfinalizer(lambda: signal.signal(signum, inherited))

    def signalled(*a: object, **k: object) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises during the sleep
        raise AssertionError("the signal was not handled")

    monkeypatch.setattr(trtq.qdq, "insert_qdq", signalled)
    code = main(_argv(tiny, tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert _lines(err) == [f"trtq: terminated ({name}); no partial artifacts were left behind"]
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signum) is signal.SIG_DFL  # handlers are restored afterwards


def test_a_signal_the_process_ignores_stays_ignored() -> None:
    """`nohup trtq build ...`: SIGHUP is SIG_IGN on entry, and a hangup must not stop the run."""
    from trtq.cli._guard import termination_signals

    inherited = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with termination_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is still handled
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing is raised
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, inherited)


def test_a_signal_swallowed_by_a_weakref_callback_is_delivered_again(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import trtq.qdq

    class SignalsOnDelete:
        def __del__(self) -> None:  # Python ignores exceptions raised here
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)

    def signalled(*a: object, **k: object) -> None:
        SignalsOnDelete()  # deleted at once: the handler's exception is raised inside __del__
        time.sleep(5)
        raise AssertionError("the swallowed signal was not delivered again")

    monkeypatch.setattr(trtq.qdq, "insert_qdq", signalled)
    code = main(_argv(tiny, tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 143 and "Exception ignored" not in err, err
    assert _lines(err) == ["trtq: terminated (SIGTERM); no partial artifacts were left behind"]


def test_json_stdout_holds_only_the_json_document(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "chatty.py").write_text(
        textwrap.dedent(f"""
        import os, torch
        def make():
            print('Downloading: "https://download.pytorch.org/models/x.pth" to /root/.cache/x.pth')
            os.write(1, b"native library says hello\\n")
            return torch.jit.load({str(tiny[0])!r})
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["build", "--model", "chatty:make", "--calib-data", str(tiny[1]), "--out", str(tmp_path / "r"),
                 "--calib", "minmax", "--no-engine", "--json"])  # fmt: skip
    out, err = capfd.readouterr()
    assert code == 0, err
    assert out.startswith("{"), (out, err)
    assert json.loads(out)["artifacts"]["model.int8.onnx"].endswith("model.int8.onnx")
    assert "Downloading" in err and "native library says hello" in err


def test_force_on_the_current_folder_is_refused_and_deletes_nothing(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("user data")
    monkeypatch.chdir(work)
    code = main(_argv(tiny, Path("."), "--force"))
    err = capsys.readouterr().err
    assert code == 2 and _lines(err) == [
        "trtq build: error: --out . is the current folder; trtq writes a run folder of its own: give a new folder name"
    ]
    assert sorted(os.listdir(work)) == ["mine.txt"] and sorted(os.listdir(tmp_path)) == ["work"]


def test_force_replaces_an_earlier_run_but_refuses_a_users_file_in_it(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main(_argv(tiny, out, "-q")) == 0
    (out / "mine.txt").write_text("user data")
    assert main(_argv(tiny, out, "--force")) == 2
    assert "holds files trtq did not write (mine.txt)" in capsys.readouterr().err
    (out / "mine.txt").unlink()
    assert main(_argv(tiny, out, "--force", "-q")) == 0
    assert (out / "model.int8.onnx").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_full_disk_during_a_stage_is_one_line_and_exit_1(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno

    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.name.startswith(".model.int8.onnx"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    code = main(_argv(tiny, tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 1
    (line,) = _lines(err)
    assert line.startswith(
        f"trtq build: failed: no space left on the device of {tmp_path} (the run had written "
    )
    assert "MiB free); free some space or choose another --out" in line
    assert list(tmp_path.iterdir()) == []


def test_debug_keeps_the_exit_code_of_a_plugin_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--plugin", "no_such_module_xyz", "build", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "no_such_module_xyz" in err and "Traceback" in err
