"""The decoder registry and `Detections`: names, aliases, entry points, plugins, and one-line errors."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from trtq.decoders import (
    DECODERS,
    Decoder,
    DecodeSettings,
    Detections,
    as_detections,
    register_decoder,
    resolve_decoder,
)
from trtq.errors import TrtqError, UsageError


def test_builtins_and_aliases():
    assert {"yolov8", "boxes"} <= set(DECODERS.names())
    assert resolve_decoder("yolo11") is resolve_decoder("ultralytics") is DECODERS.get("yolov8")
    assert "[batch, 4 + classes, anchors]" in resolve_decoder("yolov8").expects
    with pytest.raises(
        UsageError, match=r"--decoder 'nope' is not a registered decoder; choose from .*boxes.*yolov8"
    ):
        resolve_decoder("nope")


def test_entry_point_and_callable(monkeypatch):
    mod = types.ModuleType("user_decoders")

    def decode(outputs, settings):
        return [(np.array([[0, 0, 2, 2]]), np.array([0.5]), np.array([1]))] * len(outputs["o"])

    mod.decode = decode
    mod.not_a_function = 3
    monkeypatch.setitem(sys.modules, "user_decoders", mod)
    d = resolve_decoder("user_decoders:decode")
    got = d({"o": np.zeros((2, 5))})
    assert len(got) == 2 and got[1].labels.tolist() == [1] and got[0].boxes.dtype == np.float32
    assert resolve_decoder(decode)({"o": np.zeros((1, 5))})[0].scores.tolist() == [0.5]
    with pytest.raises(UsageError, match="user_decoders has no function 'not_a_function'"):
        resolve_decoder("user_decoders:not_a_function")
    with pytest.raises(UsageError, match="cannot import 'no_such_pkg' for --decoder no_such_pkg:f"):
        resolve_decoder("no_such_pkg:f")


def test_a_decoder_that_returns_the_wrong_count_or_type_fails_in_one_line():
    few = Decoder("few", lambda outputs, s: [], expects="x")
    with pytest.raises(TrtqError, match="decoder few returned 0 images' detections for a batch of 2"):
        few({"o": np.zeros((2, 3))})
    odd = Decoder("odd", lambda outputs, s: ["box"], expects="x")
    with pytest.raises(TrtqError, match="decoder odd returned str for an image"):
        odd({"o": np.zeros((1, 3))})
    broken = Decoder("broken", lambda outputs, s: 1 / 0, expects="x")
    with pytest.raises(TrtqError, match="decoder broken failed: ZeroDivisionError"):
        broken({"o": np.zeros((1, 3))})


def test_detections_are_typed_and_checked():
    d = as_detections({"boxes": [[1, 2, 3, 4]], "scores": [0.9], "labels": [2.0]})
    assert d.boxes.shape == (1, 4) and d.labels.dtype == np.int64 and len(d) == 1
    assert len(Detections(np.zeros((0, 4)), [], [])) == 0
    with pytest.raises(TrtqError, match="detections with 1 boxes, 2 scores and 1 labels"):
        Detections([[0, 0, 1, 1]], [0.1, 0.2], [0])


def test_a_plugin_registers_a_decoder():
    @register_decoder("test_centre", expects="one output [batch, 2]", aliases=("test_centre_alias",))
    def centre(outputs, settings: DecodeSettings):
        """Every image: one box at the output's point."""
        return [([[x - 1, y - 1, x + 1, y + 1]], [1.0], [0]) for x, y in next(iter(outputs.values()))]

    try:
        d = resolve_decoder("test_centre_alias")
        assert d.description == "Every image: one box at the output's point."
        assert d({"p": np.array([[5.0, 6.0]])})[0].boxes.tolist() == [[4, 5, 6, 7]]
        assert "test_centre" in DECODERS.names()
    finally:
        DECODERS.unregister("test_centre")
