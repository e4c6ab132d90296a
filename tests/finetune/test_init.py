"""`trtq.finetune` exports its API lazily: every name resolves to its object, and importing the package is light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import trtq.finetune as finetune


def test_every_public_name_resolves_to_the_object_of_its_module() -> None:
    for name, module in finetune._API.items():
        assert getattr(finetune, name) is getattr(importlib.import_module(module), name), name
    assert sorted(finetune.__all__) == sorted(finetune._API)


def test_importing_the_package_loads_neither_torch_nor_onnx() -> None:
    code = "import sys, trtq.finetune.config; print(sorted(m for m in ('torch', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
