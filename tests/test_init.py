"""`trtq` itself, the public Python API: every name in its lazy table resolves to the object, never to a module.

A public function that shares its name with a submodule (trtq.build the function vs a trtq/build.py module)
turns into the module as soon as anything imports that submodule; this pins that it cannot happen.
"""

from __future__ import annotations

import importlib
import types

import trtq


def test_every_public_name_is_the_object_even_after_its_module_is_imported() -> None:
    for name, module in trtq._API.items():
        mod = importlib.import_module(module)
        obj = getattr(trtq, name)
        assert getattr(mod, name) is obj or callable(obj), name
        assert not isinstance(obj, types.ModuleType), (
            f"trtq.{name} is the module {obj.__name__}, not the API object"
        )


def test_build_quantize_calibrate_bench_qat_are_callables() -> None:
    import trtq.finetune  # noqa: F401  (importing the implementation modules must not shadow the API)
    import trtq.pipeline  # noqa: F401

    for name in (
        "build",
        "quantize",
        "calibrate",
        "bench",
        "qat",
        "build_engine",
        "export_onnx",
        "load_data",
    ):
        assert callable(getattr(trtq, name)), name
    assert trtq.build is trtq.pipeline.build


def test_unknown_names_are_attribute_errors_and_the_version_is_the_projects():
    import re
    from pathlib import Path

    import pytest

    with pytest.raises(AttributeError, match="module 'trtq' has no attribute 'compile'"):
        trtq.compile  # noqa: B018
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert trtq.__version__ == re.search(r'^version = "(.+)"$', pyproject, re.M).group(1)
    assert set(trtq.__all__) == {"__version__", *trtq._API}
