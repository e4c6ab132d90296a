"""The build's engine step (trtq.pipeline.stages.engine): a failure keeps every CPU artifact and says why; no
usable GPU is the documented skip. TensorRT is the recording fake (tests/trt_stub)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtq.cli import main


@pytest.fixture
def tiny(untrained_digits: tuple[Path, Path]) -> tuple[Path, Path]:
    return untrained_digits


@pytest.fixture
def trt(fake_tensorrt):
    return fake_tensorrt("11.4.0")


def _build(tiny: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    return ["build", "--model", str(tiny[0]), "--calib-data", str(tiny[1]), "--out", str(out), "--calib", "minmax",
            *extra]  # fmt: skip


def test_an_engine_build_failure_keeps_the_onnx_artifacts_and_the_log(
    tiny: tuple[Path, Path], trt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trt.state.build_fails = True
    out = tmp_path / "r"
    code = main(_build(tiny, out))
    err = capsys.readouterr().err
    assert code == 1
    (line,) = [x for x in err.splitlines() if x.strip() and not x.startswith("[TensorRT]")]
    assert line.startswith("trtq build: failed: the engine step failed: TensorRT could not build an engine")
    assert f"are in {out}" in line and ".partial-" not in line
    for name in (
        "model.onnx",
        "model.int8.onnx",
        "model.trt.onnx",
        "calibration.json",
        "report.md",
        "engine.log",
    ):
        assert (out / name).is_file(), name
    assert not (out / "model.plan").exists()
    engine = json.loads((out / "engine.json").read_text())
    assert engine["status"] == "failed" and "could not build an engine" in engine["error"]
    report = json.loads((out / "report.json").read_text())
    assert report["engine"]["error"].startswith("TensorRT could not build an engine")
    assert "## Engine\n\nfailed: TensorRT could not build an engine" in (out / "report.md").read_text()
    assert "a builder warning" in (out / "engine.log").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_a_precision_proof_failure_names_the_files_where_they_end_up(
    tiny: tuple[Path, Path], trt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fp32 = Path(__file__).parents[2] / "trt_stub" / "inspector" / "trt11_fp32_unfused.json"
    trt.state.inspector_json = json.loads(fp32.read_text())
    out = tmp_path / "r"
    assert main(_build(tiny, out)) == 1
    err = capsys.readouterr().err
    assert "INT8" in err and f"see {out}/engine.json" in err and ".partial-" not in err
    assert json.loads((out / "engine.json").read_text())["status"] == "precision_check_failed"
    assert (out / "model.int8.onnx").is_file() and (out / "engine.layers.json").is_file()


def test_no_usable_gpu_is_the_documented_skip_and_exit_0(
    tiny: tuple[Path, Path], trt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from trtq.engines import cuda

    monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(True, 100, 0, None))
    out = tmp_path / "r"
    assert main(_build(tiny, out, "--json")) == 0
    status = json.loads(capsys.readouterr().out)["engine_status"]
    assert status.startswith("skipped: the engine step needs an NVIDIA GPU with TensorRT (TensorRT 11.4.0 is "
                             "installed, but the NVIDIA driver sees no CUDA device")  # fmt: skip
    assert ("build", 0, []) not in [e[:3] for e in trt.state.log]  # the builder was never asked
    trt.state.builder_nullptr = True  # the driver answers but TensorRT cannot start: same skip
    monkeypatch.setattr(cuda, "probe_driver", lambda: cuda.CudaDriver(True, 0, 1, (13, 0)))
    assert main(_build(tiny, tmp_path / "r2", "--json")) == 0
    assert "could not create a builder" in json.loads(capsys.readouterr().out)["engine_status"]


def test_the_build_checks_a_version_compatible_engine_with_host_code_allowed(
    tiny: tuple[Path, Path], trt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trtq.runners as runners
    from trtq.config import EngineConfig
    from trtq.pipeline import build

    seen: dict[str, object] = {}

    class Runner:
        def __init__(self, plan: object, **kw: object) -> None:
            seen.update(kw)
            raise RuntimeError("stop here")

    trt.state.inspector_json = json.loads(
        (Path(__file__).parents[2] / "trt_stub" / "inspector" / "trt11_mixed_int8_fp16.json").read_text()
    )
    monkeypatch.setattr(runners, "TensorRTRunner", Runner)
    with pytest.raises(RuntimeError, match="stop here"):
        build(
            str(tiny[0]),
            str(tiny[1]),
            tmp_path / "r",
            calib="minmax",
            engine=EngineConfig(version_compat=True),
        )
    assert seen == {"host_code_allowed": True}
