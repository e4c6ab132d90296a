"""timm models by name, with timm's own data config as the default preprocessing (no download: tiny test_* models)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from trtq.cli import main
from trtq.data import load_image
from trtq.errors import UsageError
from trtq.export import resolve_model

timm = pytest.importorskip("timm")


def test_timm_name_resolves_with_timms_data_config():
    from timm.data import resolve_data_config

    src = resolve_model("timm:test_vit")
    assert src.kind == "timm" and type(src.module).__name__ == "VisionTransformer"
    cfg = resolve_data_config({}, model=src.module)
    pre = src.preprocess
    assert (pre.size, pre.interpolation) == (cfg["input_size"][-1], cfg["interpolation"])
    assert pre.mean == cfg["mean"] and pre.std == cfg["std"]
    assert "timm's data config" in src.preprocess_note


@pytest.mark.parametrize("name", ["test_efficientnet", "test_vit", "test_resnet"])
def test_preprocessing_matches_timms_own_eval_transform(name, tmp_path):
    """The independent reference: timm's create_transform on the same image file (bicubic and bilinear models)."""
    from timm.data import create_transform, resolve_data_config

    rng = np.random.default_rng(0)
    path = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (230, 310, 3), dtype=np.uint8)).save(path)
    src = resolve_model(f"timm:{name}")
    ours = load_image(path, src.preprocess)
    with Image.open(path) as im:
        ref = create_transform(**resolve_data_config({}, model=src.module))(im.convert("RGB")).numpy()
    assert ours.shape == ref.shape
    assert float(np.max(np.abs(ours - ref))) < 1e-5


def test_unknown_timm_name_and_missing_timm_are_one_line_errors(monkeypatch):
    with pytest.raises(UsageError, match=r"timm has no model 'test_efficientnett' \(did you mean"):
        resolve_model("timm:test_efficientnett")
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(UsageError, match=r"pip install 'trtq\[timm\]'"):
        resolve_model("timm:test_vit")


def test_build_timm_model_offline(tmp_path, capsys):
    """The issue's "done when": trtq build --model timm:test_efficientnet --calib-data <images> --out run."""
    from tests.zoo import make_image_folder

    images = make_image_folder(tmp_path / "images", classes=2, per_class=6, size=180)
    out = tmp_path / "run"
    argv = [
        "build",
        "--model",
        "timm:test_efficientnet",
        "--calib-data",
        str(images),
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["export"]["kind"] == "timm"
    assert any("timm's data config" in n for n in doc["export"]["notes"])
    assert (out / "model.int8.onnx").is_file() and (out / "model.trt.onnx").is_file()
    assert doc["export"]["inputs"][0]["dims"][1:] == [3, 160, 160]
