"""`Calibration` and calibration.json: exact, deterministic round trip; corrupt and mismatched files refused."""

from __future__ import annotations

import json

import pytest

from tests.calibration.cases import activations as _acts
from tests.calibration.cases import batches as _batches
from trtq.calibration import CALIBRATION_FORMAT, Calibration, calibrate
from trtq.errors import UsageError
from trtq.progress import set_quiet

set_quiet(True)


def test_save_load_round_trip_is_exact_and_deterministic(convnet, tmp_path):
    cal = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    cal.save(p1)
    again = calibrate(convnet, _batches(3), _acts(convnet), ["all"])
    again.save(p2)
    assert p1.read_bytes() == p2.read_bytes()
    back = Calibration.load(p1, expect_tensors=_acts(convnet))
    assert back.amax == cal.amax and back.methods == cal.methods and back.method == cal.method
    assert back.stats == json.loads(json.dumps(cal.stats))


def test_load_refuses_corrupt_and_mismatched_files(convnet, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsageError, match="not a trtq calibration file"):
        Calibration.load(bad)
    cal = calibrate(convnet, _batches(1), ["x"], ["minmax"])
    good = cal.save(tmp_path / "good.json")
    with pytest.raises(UsageError, match="another model"):
        Calibration.load(good, expect_tensors=["x", "/1/Relu_output_0"])
    doc = json.loads(good.read_text())
    doc["tensors"]["x"]["amax"]["minmax"] = -1
    bad.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="malformed"):
        Calibration.load(bad)


def test_from_amax_wraps_thresholds_from_elsewhere():
    cal = Calibration.from_amax({"x": 2, "y": 0.5}, method="cache", source="c.cache")
    assert cal.methods == ["cache"] and cal.method == "cache" and cal.amax_for() == {"x": 2.0, "y": 0.5}
    assert cal.tensors == ["x", "y"] and cal.settings == {"source": "c.cache"}
    assert cal.origin == "calibration cache c.cache"
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(UsageError, match="amax of tensor 'x' is .*finite positive"):
            Calibration.from_amax({"x": bad})


def test_the_file_records_format_method_ranges_and_scores(tmp_path):
    cal = Calibration(methods=["minmax", "mse"], amax={"minmax": {"x": 4.0}, "mse": {"x": 3.0}}, method="mse",
                      scores={"minmax": {"cosine": 0.9}, "mse": {"cosine": 0.95}}, ranges={"x": 4.0, "y": 7.5})  # fmt: skip
    doc = json.loads(cal.save(tmp_path / "c.json").read_text())
    assert doc["format"] == CALIBRATION_FORMAT and doc["method"] == "mse" and doc["quant_format"] == "int8"
    assert doc["tensors"] == {"x": {"amax": {"minmax": 4.0, "mse": 3.0}}} and doc["ranges"] == {
        "x": 4.0,
        "y": 7.5,
    }
    back = Calibration.load(tmp_path / "c.json")
    assert back == cal and back.origin == f"calibration file {tmp_path / 'c.json'}"
    assert Calibration(methods=["minmax"], amax={"minmax": {}}).method == "minmax"  # first method by default
    with pytest.raises(UsageError, match="does not exist"):
        Calibration.load(tmp_path / "none.json")


def test_an_infinite_fp16_range_survives_the_file(convnet, tmp_path):
    """A transformer's -inf attention mask has an infinite range; strict JSON writes it as null, and reading the
    file back gives inf (the typed graph then keeps that node FP32), not a 'malformed file' error."""
    cal = calibrate(convnet, _batches(2), _acts(convnet), ["minmax"])
    cal.ranges = {"mask": float("inf"), "x": 3.0}
    cal.save(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["ranges"]["mask"] is None
    back = Calibration.load(tmp_path / "c.json")
    assert back.ranges == {"mask": float("inf"), "x": 3.0}
