"""Export: a PyTorch model (or an ONNX file) to the FP32 ONNX every later stage reads.

Modules:
    sources: what the user typed resolved to a model (`ModelSource`, `resolve_model`, the safe loaders).
    huggingface: Hugging Face folders loaded offline (`transformers`, the `trtq[hf]` extra).
    onnx_model: ONNX helpers the stages share (`load_onnx`, `onnx_inputs`, `check_input_shape`, ...).
    samples: the example input a model is exported with (`as_feed`) and its outputs (`flatten_outputs`).
    torch_export: the export (`export_onnx`, `export_sample`).
    exporters: the two torch exporters behind `--exporter` (legacy, dynamo).
    parity: the PyTorch vs ONNX Runtime parity check and the dynamic sequence axis it proves.

Every name is importable from `trtq.export` directly.
"""

from trtq.export.onnx_model import (
    OnnxInput,
    check_feed,
    check_input_shape,
    input_names,
    load_onnx,
    model_limits,
    onnx_input_shape,
    onnx_inputs,
    onnx_opset,
    set_model_limits,
    strip_identities,
)
from trtq.export.parity import check_parity, sequence_inputs
from trtq.export.samples import DEFAULT_INPUT_NAME, Sample, as_feed, flatten_outputs, output_names
from trtq.export.sources import SAVED_MODEL_SUFFIXES, ModelSource, SourceKind, input_channels, resolve_model
from trtq.export.torch_export import (
    DEFAULT_OPSET,
    ExportResult,
    export_onnx,
    export_sample,
)

__all__ = [
    "DEFAULT_INPUT_NAME",
    "DEFAULT_OPSET",
    "SAVED_MODEL_SUFFIXES",
    "ExportResult",
    "ModelSource",
    "OnnxInput",
    "Sample",
    "SourceKind",
    "as_feed",
    "check_feed",
    "check_input_shape",
    "check_parity",
    "export_onnx",
    "export_sample",
    "flatten_outputs",
    "input_channels",
    "input_names",
    "load_onnx",
    "model_limits",
    "onnx_input_shape",
    "onnx_inputs",
    "onnx_opset",
    "output_names",
    "resolve_model",
    "sequence_inputs",
    "set_model_limits",
    "strip_identities",
]
