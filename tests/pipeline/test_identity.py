"""`trtq build` and the stage commands run the same stage objects, so they write the same bytes.

The build's own model.onnx is handed to `trtq calibrate`, `trtq quantize --trt-out` and `trtq sensitivity`; every
artifact they write must be byte-identical to the build's (the redesign's promise that the two entry points of a stage
cannot drift). The Python API (`trtq.quantize`) is held to the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trtq.cli import main


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from trtq.demo import _digits_uint8, _normalise, train_digits

    root = tmp_path_factory.mktemp("identity")
    model, _, val_imgs, val_labels = train_digits(epochs=2)
    ts = root / "digits.ts"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(ts))
    imgs, _ = _digits_uint8()
    np.save(root / "calib.npy", _normalise(imgs[:96]))
    np.savez(root / "val.npz", x=_normalise(val_imgs[:96]), y=val_labels[:96])
    return {"model": ts, "calib": root / "calib.npy", "val": root / "val.npz", "root": root}


def _same(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes(), f"{a.name} differs from {b}"


def test_build_and_stage_commands_write_identical_artifacts(
    digits_files: dict[str, Path], tmp_path: Path
) -> None:
    f = digits_files
    run = tmp_path / "run"
    common = ["--calib", "all", "--calib-data", str(f["calib"]), "--eval-data", str(f["val"]), "-q"]
    assert (
        main(["build", "--model", str(f["model"]), *common, "--out", str(run), "--no-engine", "--trt-cache"])
        == 0
    )

    assert main(["export", "--model", str(f["model"]), "--sample-data", str(f["calib"]), "--out",
                 str(tmp_path / "m.onnx"), "-q"]) == 0  # fmt: skip
    _same(run / "model.onnx", tmp_path / "m.onnx")

    fp32 = str(run / "model.onnx")
    assert main(["calibrate", "--model", fp32, *common, "--out", str(tmp_path / "c.json"),
                 "--trt-cache", str(tmp_path / "c.cache")]) == 0  # fmt: skip
    _same(run / "calibration.json", tmp_path / "c.json")
    _same(run / "calibration.cache", tmp_path / "c.cache")

    assert main(["quantize", "--model", fp32, "--calibration", str(tmp_path / "c.json"), "--out",
                 str(tmp_path / "q.onnx"), "--trt-out", str(tmp_path / "t.onnx"), "-q"]) == 0  # fmt: skip
    _same(run / "model.int8.onnx", tmp_path / "q.onnx")
    _same(run / "model.trt.onnx", tmp_path / "t.onnx")

    import trtq

    api = trtq.quantize(fp32, str(tmp_path / "c.json"), typed=True)
    assert api.model.SerializeToString(deterministic=True) == (run / "model.int8.onnx").read_bytes()
    assert api.typed.SerializeToString(deterministic=True) == (run / "model.trt.onnx").read_bytes()


def test_build_fallback_and_sensitivity_command_write_the_same_mixed_graph(
    digits_files: dict[str, Path], tmp_path: Path
) -> None:
    f = digits_files
    run = tmp_path / "run"
    data = ["--calib-data", str(f["calib"]), "--eval-data", str(f["val"]), "--calib", "minmax", "-q"]
    layer = "/conv3/0/Conv"
    assert main(["build", "--model", str(f["model"]), *data, "--fallback", layer, "--out", str(run),
                 "--no-engine"]) == 0  # fmt: skip
    assert main(["sensitivity", "--model", str(run / "model.onnx"), "--calibration", str(run / "calibration.json"),
                 "--eval-data", str(f["val"]), "--fallback", layer, "--out", str(tmp_path / "s"), "-q"]) == 0  # fmt: skip
    _same(run / "model.int8.onnx", tmp_path / "s" / "model.mixed.onnx")
    _same(run / "model.trt.onnx", tmp_path / "s" / "model.trt.onnx")
    import onnx

    mixed = onnx.load(str(run / "model.int8.onnx"))
    conv = next(n for n in mixed.graph.node if n.name == layer)
    assert not any(i.endswith("_DequantizeLinear_Output") for i in conv.input)  # the fallback really applied


def test_a_run_repeats_from_its_report_and_options_override_it(
    digits_files: dict[str, Path], tmp_path: Path
) -> None:
    import json

    f = digits_files
    first = tmp_path / "first"
    assert main(["build", "--model", str(f["model"]), "--calib-data", str(f["calib"]), "--eval-data", str(f["val"]),
                 "--calib", "percentile", "--percentile", "99.9", "--exclude", "/conv1/0/Conv", "--no-engine",
                 "--trt-cache", "--out", str(first), "-q"]) == 0  # fmt: skip
    again = tmp_path / "again"
    assert main(["build", "--config", str(first / "report.json"), "--out", str(again), "-q"]) == 0
    for name in ("model.onnx", "calibration.json", "calibration.cache", "model.int8.onnx", "model.trt.onnx"):
        _same(first / name, again / name)
    changed = tmp_path / "changed"
    assert (
        main(["build", "--config", str(first / "report.json"), "--calib", "mse", "--out", str(changed), "-q"])
        == 0
    )
    cfg = json.loads((changed / "report.json").read_text())["config"]
    assert cfg["calibration"]["method"] == "mse" and cfg["placement"]["exclude_nodes"] == ["/conv1/0/Conv"]
    # the file's percentile does not apply to mse: dropped, not refused
    assert cfg["calibration"]["params"] == {}
    assert (changed / "model.int8.onnx").read_bytes() != (first / "model.int8.onnx").read_bytes()
