"""Engine build options: --batch, --shapes and EngineOptions validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtq.engines.options import EngineOptions, parse_batch, parse_shapes
from trtq.errors import UsageError


def test_parse_batch():
    assert parse_batch("1,8,32") == (1, 8, 32)
    assert parse_batch("4") == (4, 4, 4)
    for bad in ("8,1,32", "0,1,2", "1,2", "a"):
        with pytest.raises(UsageError, match="--batch"):
            parse_batch(bad)


def test_parse_shapes():
    assert parse_shapes(["images:1x3x224x224,8x3x224x224,16x3x224x224"]) == {
        "images": ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    }
    assert parse_shapes(["a:b:2x3"]) == {"a:b": ((2, 3), (2, 3), (2, 3))}  # names may contain ':'
    assert parse_shapes(None) is None
    with pytest.raises(UsageError, match="min <= opt <= max"):
        parse_shapes(["x:4x3,2x3,8x3"])
    with pytest.raises(UsageError, match="integers"):
        parse_shapes(["x:ax3"])


def test_engine_options_validate():
    with pytest.raises(UsageError, match="--opt-level 7"):
        EngineOptions(opt_level=7)
    with pytest.raises(UsageError, match="--hardware-compat"):
        EngineOptions(hardware_compat="volta")
    with pytest.raises(UsageError, match="--workspace-gb"):
        EngineOptions(workspace_gb=0)
    assert EngineOptions(hardware_compat="Ampere-Plus").hardware_compat == "ampere_plus"
    assert EngineOptions(hardware_compat="none").hardware_compat is None
    assert EngineOptions(workspace_gb=0.5).workspace_bytes == 1 << 29
    d = EngineOptions(timing_cache=Path("t.cache"), shapes={"x": ((1, 3), (2, 3), (4, 3))}).to_json()
    assert d["timing_cache"] == "t.cache" and d["shapes"] == {"x": [[1, 3], [2, 3], [4, 3]]}
    json.dumps(d)
