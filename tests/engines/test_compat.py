"""compat's pure decisions (no TensorRT needed) and its import guard, against a fake TensorRT."""

from __future__ import annotations

import sys

import pytest

from trtq.engines import compat
from trtq.errors import TensorRTUnavailable


@pytest.mark.parametrize(
    "version, weak, strong",
    [
        ((11, 4, 0), False, True),  # no weak typing at all
        ((11, 0), False, True),
        ((10, 13, 3), True, True),
        ((10, 12, 0), True, True),  # the documented boundary
        ((10, 11, 9), True, False),
        ((10, 3, 0), True, False),
        ((10, 3, 0), False, True),  # a 10.x without the precision flags can only build strongly typed
    ],
)
def test_strong_typing_default(version, weak, strong):
    assert compat.strong_typing_default(version, weak) is strong


@pytest.mark.parametrize(
    "version, strong",
    [("10.3.0", False), ("10.11.0", False), ("10.12.0", True), ("10.13.3", True), ("11.4.0", True)],
)
def test_prefers_strong_typing_on_each_version(fake_tensorrt, version, strong):
    assert compat.prefers_strong_typing(fake_tensorrt(version)) is strong


def test_prefers_strong_typing_and_choose_graph_share_the_decision(fake_tensorrt, monkeypatch, tmp_path):
    """Both ask `strong_typing_default`; neither re-implements the version boundary."""
    from trtq.engines.build import choose_graph

    calls = []

    def decide(version, weak):
        calls.append((tuple(version), weak))
        return True

    monkeypatch.setattr(compat, "strong_typing_default", decide)
    assert compat.prefers_strong_typing(fake_tensorrt("10.3.0")) is True  # the real rule says weak on 10.3
    trt_onnx, int8_onnx = tmp_path / "model.trt.onnx", tmp_path / "model.int8.onnx"
    trt_onnx.write_bytes(b"x")
    int8_onnx.write_bytes(b"x")
    choice = choose_graph((10, 3, 0), True, trt_onnx, int8_onnx)
    assert (choice.graph.name, choice.strongly_typed) == ("model.trt.onnx", True)
    assert calls == [((10, 3, 0), True), ((10, 3, 0), True)]


def test_too_old_tensorrt_is_refused(fake_tensorrt):
    fake_tensorrt("8.6.1")
    with pytest.raises(TensorRTUnavailable, match="TensorRT 8.6.1 is too old"):
        compat.import_tensorrt()


def test_missing_tensorrt_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ok, why = compat.tensorrt_status()
    assert not ok and why.startswith("TensorRT is not installed")
