"""The detection demo's folders (YOLO and COCO labels read back by trtq's own loader), its weights cache, the
printed build command, and `trtq demo --task detect` end to end on a small training budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import trtq.demo_detect_run as run_mod
from trtq.cli import main
from trtq.data import Preprocess
from trtq.data.detection import load_detection
from trtq.demo_detect import TrainSettings, make_scenes
from trtq.demo_detect_run import (
    DetectDemoFiles,
    DetectDemoResult,
    cache_dir,
    detect_build_command,
    trained_detector,
    write_scene_folder,
)

TINY = TrainSettings(scenes=16, epochs=1, batch=8)
RAW = Preprocess(size=None, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("labels", ["instances.json", "labels"])
def test_coco_and_yolo_labels_give_back_the_scene_boxes(tmp_path, labels):
    scenes = make_scenes(6, held_out=True)
    paths = write_scene_folder(tmp_path / "val", scenes, prefix="v")
    assert [p.name for p in paths] == [f"v_{i:04d}.png" for i in range(6)]
    src = load_detection(tmp_path / "val", RAW, labels=tmp_path / "val" / labels)
    t = src.targets
    for i in range(6):
        tol = (
            1e-3 if labels == "instances.json" else 1e-3 * 96
        )  # YOLO's 6 decimals of a normalised coordinate
        np.testing.assert_allclose(t.boxes[i], scenes.boxes[i], atol=tol)
        assert t.classes[i].tolist() == scenes.labels[i].tolist()
    if labels == "instances.json":
        assert t.names == tuple(str(k) for k in range(10))
    assert (tmp_path / "val" / "classes.txt").read_text().split() == [str(k) for k in range(10)]


def test_unlabelled_scenes_are_a_flat_image_folder(tmp_path):
    write_scene_folder(tmp_path / "calib", make_scenes(3), labels=False)
    assert sorted(p.name for p in (tmp_path / "calib").iterdir()) == [f"scene_{i:04d}.png" for i in range(3)]


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRTQ_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TRTQ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "trtq"


def test_a_second_run_loads_the_cached_weights_and_a_broken_file_is_replaced(tmp_path):
    model, seconds, cached = trained_detector(TINY, tmp_path)
    path = tmp_path / "demo-detect" / f"{TINY.key()}.pt"
    assert not cached and seconds > 0 and path.is_file()
    again, seconds2, cached2 = trained_detector(TINY, tmp_path)
    assert cached2 and seconds2 == 0.0 and not again.training
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    path.write_bytes(b"not a checkpoint")
    _, _, cached3 = trained_detector(TINY, tmp_path)
    assert not cached3 and torch.load(str(path), weights_only=True).keys() == model.state_dict().keys()


def _files(root: Path) -> DetectDemoFiles:
    return DetectDemoFiles(
        root, root / "d.ts", root / "d.pt", root / "calib", root / "val", 12.345, False, TINY
    )


def test_the_printed_build_command_is_the_demo_build(tmp_path):
    cmd = detect_build_command(_files(tmp_path), tmp_path / "run", "minmax", ("DetectionHead",))
    opts = dict(zip(cmd[2::2], cmd[3::2]))
    assert cmd[:2] == ["trtq", "build"]
    assert opts == {"--model": str(tmp_path / "d.ts"), "--task": "detect", "--decoder": "yolov8", "--preset": "yolo",
                    "--size": "96", "--calib": "minmax", "--calib-data": str(tmp_path / "calib"),
                    "--eval-data": str(tmp_path / "val"), "--out": str(tmp_path / "run"),
                    "--disable-rule": "DetectionHead"}  # fmt: skip


def test_the_result_json_adds_the_demo_facts(tmp_path):
    from types import SimpleNamespace

    build = SimpleNamespace(to_json=lambda: {"format": "trtq.report/2"})
    result = DetectDemoResult(_files(tmp_path), build, ["trtq", "build"])
    assert result.to_json() == {"format": "trtq.report/2", "demo": {
        "task": "detect", "train_seconds": 12.35, "weights_from_cache": False, "training": TINY.key(),
        "command": ["trtq", "build"]}}  # fmt: skip
    assert result.text().startswith("demo detector trained in 12.3 s; same build by hand:\n  trtq build")


@pytest.mark.slow
def test_trtq_demo_task_detect_end_to_end(tmp_path, monkeypatch, capsys):
    """The real CLI path on a small budget: 48 training scenes, one epoch, 16 + 24 scenes to calibrate and score
    (about 30 s for both runs and the printed command on the loaded CI machine; the default budget trains for about two minutes)."""
    monkeypatch.setenv("TRTQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(run_mod, "CALIB_SCENES", 16)
    monkeypatch.setattr(run_mod, "VAL_SCENES", 24)
    out = tmp_path / "demo"
    args = [
        "demo",
        "--task",
        "detect",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--train-scenes",
        "48",
        "--calib",
        "minmax",
    ]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["demo"]["task"] == "detect" and not doc["demo"]["weights_from_cache"]
    models = doc["validation"]["models"]
    for label in ("fp32", "int8", "typed"):
        assert 0.0 <= models[label]["map50_95"] <= models[label]["map50"] <= 1.0
    assert (out / "demo" / "data" / "val" / "instances.json").is_file()
    assert len(list((out / "demo" / "data" / "val" / "labels").glob("*.txt"))) == 24
    from trtq.rundir import read_marker

    marker = read_marker(out)  # the demo folder is trtq's, complete, and lists what trtq wrote
    assert marker.state == "complete" and marker.command == "demo" and set(marker.files) >= {"demo", "run"}
    plan = json.loads((out / "run" / "placement.json").read_text())
    assert sum(d["rule"] == "DetectionHead" for d in plan["decisions"]) == 4
    # the printed command, run by hand, writes the same INT8 graph
    cmd = doc["demo"]["command"]
    cmd[cmd.index("--out") + 1] = str(tmp_path / "by-hand")
    assert main([*cmd[1:], "--quiet"]) == 0
    capsys.readouterr()
    assert (tmp_path / "by-hand" / "model.int8.onnx").read_bytes() == (
        out / "run" / "model.int8.onnx"
    ).read_bytes()
    # a second run finds the weights in the cache and prints the FP32/INT8/typed mAP
    assert main([*args, "--force"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("demo detector loaded from the cache; same build by hand:\n  trtq build --model ")
    assert "mAP50-95" in text and text.count("mAP50-95") >= 3
