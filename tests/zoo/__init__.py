"""The test zoo: one registry of the tiny torch models, hand-built ONNX graphs and data the tests use.

Tests reach it through the fixtures in tests/conftest.py (`make_model`, `onnx_graph`, `graph_file`, `digits`,
`image_folder`, ...); tables of cases name entries by string. `python -m tests.zoo` lists every entry.

    make_model("tiny_cnn", widths=(16, 32))  -> torch.nn.Module (eval mode, seeded)
    onnx_graph("residual_block", bn=True)    -> onnx.ModelProto (a fresh copy)
    graph_file("qdq_conv", path, fp16=True)  -> the graph written to `path`
    export_model(module, sample, ...)        -> the legacy ONNX export every test uses
"""

from tests.zoo import detectors, graphs, models  # noqa: F401  (register the entries)
from tests.zoo.builder import IMG, G, model_of
from tests.zoo.data import (
    ACTIVATION_KINDS,
    Digits,
    activation_samples,
    digits,
    make_image_folder,
    normalise_digits,
    trained_digits,
)
from tests.zoo.models import export_model
from tests.zoo.registry import GRAPHS, MODELS, describe, graph_file, make_model, onnx_graph

__all__ = [
    "MODELS",
    "GRAPHS",
    "make_model",
    "onnx_graph",
    "graph_file",
    "export_model",
    "describe",
    "G",
    "IMG",
    "model_of",
    "Digits",
    "digits",
    "normalise_digits",
    "trained_digits",
    "make_image_folder",
    "ACTIVATION_KINDS",
    "activation_samples",
]
