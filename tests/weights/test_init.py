"""`trtq.weights`: the registry loads without onnx; the graph-side names load on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
import trtq.weights as w
light = sorted(w.WEIGHT_METHODS)
before = "onnx" in sys.modules
w.weight_ptq
print(json.dumps({"methods": light, "onnx_before": before, "onnx_after": "onnx" in sys.modules}))
"""


def test_the_methods_are_listed_before_onnx_loads_and_the_graph_side_on_first_use():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got == {
        "methods": ["adaround", "bias-correction", "clip", "equalize"],
        "onnx_before": False,
        "onnx_after": True,
    }


def test_every_exported_name_resolves_and_others_raise():
    import trtq.weights as w
    from trtq.weights.run import weight_ptq

    assert w.weight_ptq is weight_ptq
    assert all(getattr(w, name) is not None for name in w.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        w.nope  # noqa: B018
