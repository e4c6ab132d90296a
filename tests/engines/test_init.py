"""`trtq.engines` as a package: its lazy names resolve to their modules' objects; importing it loads no TensorRT."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import trtq.engines as engines


@pytest.mark.parametrize("name", sorted(engines._API))
def test_every_public_name_is_its_modules_object(name):
    assert getattr(engines, name) is getattr(importlib.import_module(engines._API[name]), name)
    assert name in engines.__all__


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="module 'trtq.engines' has no attribute 'build_plan'"):
        engines.build_plan  # noqa: B018


def test_importing_the_package_and_its_options_loads_no_tensorrt():
    code = (
        "import sys; import trtq.engines as e; e.EngineOptions(); e.tensorrt_status; e.precision_summary\n"
        "print('tensorrt' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
