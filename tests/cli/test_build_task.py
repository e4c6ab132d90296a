"""`trtq build --task detect` from the command line: mAP in the summary, and every bad input exits 2 with one line
naming the file or option: labels for missing images, boxes outside the image, a class id beyond the model's
classes, an unknown decoder, and a model whose output the decoder cannot read (saying which shape it expected)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.zoo.detectors import fixed_boxes, make_detection_folder
from tests.zoo.models import export_model, tiny_cnn
from trtq.cli import main


@pytest.fixture(scope="module")
def det(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("detcli")
    x = np.zeros((1, 3, 32, 32), np.float32)
    export_model(fixed_boxes(), x, root / "det.onnx", output_names=("output0",))
    export_model(tiny_cnn(classes=5), x, root / "cnn.onnx")
    return {
        "root": root,
        "model": root / "det.onnx",
        "cnn": root / "cnn.onnx",
        "data": make_detection_folder(root / "d"),
    }


def _build(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["build", "--task", "detect", "--size", "32", "--no-engine", "--calib", "minmax", "--out", str(out),
                 *args])  # fmt: skip
    o, e = capsys.readouterr()
    return code, o, e


def _one_line(err: str, *needles: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_summary_prints_map_per_model(det, tmp_path, capsys):
    code, out, err = _build(["--model", str(det["model"]), "--calib-data", str(det["data"]), "--eval-data",
                             str(det["data"]), "--iou-threshold", "0.65", "--max-det", "50"], tmp_path / "r", capsys)  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].startswith("FP32 (model.onnx)") and "mAP50-95 100.00%  mAP50 100.00%" in out
    cfg = json.loads((tmp_path / "r" / "report.json").read_text())["config"]["task"]
    assert (cfg["iou_threshold"], cfg["max_det"]) == (0.65, 50)


def _bad_folder(det, name: str, edit) -> Path:
    folder = make_detection_folder(det["root"] / name, fmt="yolo")
    edit(folder)
    return folder


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing_image", ("labels", "gone.txt", "are for image 'gone', which is not in")),
        ("outside", ("img_0.txt box 1", "lies outside the 48x32 image")),
        ("class_id", ("--eval-data", "the labels hold class id 7 but the model scores 3 classes (0..2)")),
        ("decoder", ("--decoder 'yolox' is not a registered decoder; choose from", "yolov8")),
        (
            "shape",
            ("decoder yolov8 expects one output [batch, 4 + classes, anchors]", "'logits' has shape (2, 5)"),
        ),
        ("labels_option", ("--labels", "does not exist")),
        ("threshold", ("--conf-threshold 2.0: give a number in [0, 1]",)),
        (
            "choose_metric",
            ("--choose-metric map50_95 needs evaluation data with detection targets (--task detect)",),
        ),
    ],
)
def test_bad_input_exits_2_in_one_line(det, tmp_path, capsys, case, needles):
    model, data, extra = det["model"], det["data"], []
    if case == "missing_image":
        data = _bad_folder(det, case, lambda f: (f / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n"))
    elif case == "outside":
        data = _bad_folder(det, case, lambda f: (f / "img_0.txt").write_text("0 0.9 0.5 0.5 0.2\n"))
    elif case == "class_id":
        data = _bad_folder(det, case, lambda f: (f / "img_1.txt").write_text("7 0.5 0.5 0.2 0.2\n"))
    elif case == "decoder":
        extra = ["--decoder", "yolox"]
    elif case == "shape":
        model = det["cnn"]
    elif case == "labels_option":
        extra = ["--labels", str(tmp_path / "none.json")]
    elif case == "threshold":
        extra = ["--conf-threshold", "2"]
    elif case == "choose_metric":
        model, extra = det["cnn"], ["--task", "classify", "--calib", "all", "--choose-metric", "map50_95"]
    code, _, err = _build(["--model", str(model), "--calib-data", str(det["data"]), "--eval-data", str(data), *extra],
                          tmp_path / "r", capsys)  # fmt: skip
    assert code == 2
    _one_line(err, *needles)
    assert not (tmp_path / "r").exists()  # refused before the run folder was made (or it was cleaned up)
