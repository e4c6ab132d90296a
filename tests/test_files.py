"""Writing artifacts safely: atomic files, staged run folders, strict JSON, no silent overwrite."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from trtq.errors import UsageError
from trtq.files import (
    atomic_path,
    check_writable,
    dumps_json,
    json_default,
    prepare_out_dir,
    save_onnx,
    staged_dir,
    write_bytes,
    write_json,
    write_text,
)


def _strict(text: str):
    """json.loads that refuses NaN and infinities (what a strict parser does)."""

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".a.bin.") and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_write_helpers_return_the_path_and_write_the_content(tmp_path):
    assert (
        write_bytes(tmp_path / "b", b"\x00\x01") == tmp_path / "b"
        and (tmp_path / "b").read_bytes() == b"\x00\x01"
    )
    assert write_text(tmp_path / "t", "é\n").read_text(encoding="utf-8") == "é\n"


def test_write_json_is_strict_json_nan_and_infinities_become_null(tmp_path):
    doc = {"nan": float("nan"), "inf": [1.0, float("inf"), -math.inf], "nested": {"x": (np.float32(np.nan), 2)},
           "np": np.float64(0.5), "arr": np.arange(3), "i": np.int64(7), "path": Path("a/b")}  # fmt: skip
    path = write_json(tmp_path / "d.json", doc)
    text = path.read_text()
    assert text.endswith("}\n")
    assert _strict(text) == {"nan": None, "inf": [1.0, None, None], "nested": {"x": [None, 2]}, "np": 0.5,
                             "arr": [0, 1, 2], "i": 7, "path": "a/b"}  # fmt: skip
    assert dumps_json({"b": 1, "a": 2}, indent=None) == '{"b": 1, "a": 2}'  # key order kept


def test_unserialisable_values_are_a_type_error():
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        json_default(object())
    with pytest.raises(TypeError):
        dumps_json({"x": object()})


def test_staged_dir_becomes_out_only_on_success(tmp_path):
    out = tmp_path / "run"
    with staged_dir(out, force=False) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".run.partial-") and not out.exists()
        (staging / "model.onnx").write_bytes(b"m")
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and (out / "model.onnx").read_bytes() == b"m"
    with pytest.raises(KeyboardInterrupt), staged_dir(tmp_path / "other", force=False) as staging:
        (staging / "half").write_bytes(b"x")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_staged_dir_refuses_a_non_empty_folder_without_force_and_replaces_it_with(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    for force in (False, True):  # a folder trtq did not make is never replaced, --force or not
        with (
            pytest.raises(UsageError, match=r"holds files trtq did not write \(old\.txt\)"),
            staged_dir(out, force),
        ):
            pytest.fail("must not start")
    assert (out / "old.txt").read_text() == "old"
    ours = tmp_path / "ours"
    with staged_dir(ours, False) as staging:
        (staging / "old.txt").write_text("old")
    with (
        pytest.raises(UsageError, match="holds an earlier trtq run; pass force=True"),
        staged_dir(ours, False),
    ):
        pytest.fail("must not start")
    with staged_dir(ours, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in ours.iterdir()) == [".trtq-run", "new.txt"]
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(UsageError, match="--out .*file is a file, not a folder"),
        staged_dir(tmp_path / "file", True),
    ):
        pass
    (tmp_path / "empty").mkdir()
    with staged_dir(tmp_path / "empty", force=False) as staging:  # an empty folder needs no --force
        (staging / "a").write_text("a")
    assert (tmp_path / "empty" / "a").exists()


def test_prepare_out_dir_and_check_writable(tmp_path):
    from trtq.files import write_text

    out = tmp_path / "o"
    assert prepare_out_dir(out, force=False) == out and out.is_dir()
    write_text(out / "f.txt", "x")  # written by trtq: recorded in the folder's marker
    with pytest.raises(UsageError, match="holds an earlier trtq run; pass force=True"):
        prepare_out_dir(out, force=False)
    prepare_out_dir(out, force=True)
    assert [p.name for p in out.iterdir()] == [".trtq-run"]
    check_writable(tmp_path / "new.onnx", force=False)
    (tmp_path / "new.onnx").write_text("x")
    with pytest.raises(UsageError, match="new.onnx already exists; pass force=True to overwrite it"):
        check_writable(tmp_path / "new.onnx", force=False)
    check_writable(tmp_path / "new.onnx", force=True)


def test_save_onnx_is_deterministic(tmp_path, onnx_graph):
    import onnx

    m = onnx_graph("conv_relu")
    a, b = save_onnx(m, tmp_path / "a.onnx"), save_onnx(m, tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes() == m.SerializeToString(deterministic=True)
    assert onnx.load(str(a)) == m
