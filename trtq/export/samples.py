"""Example inputs and outputs of a model's `forward`: the feed it is exported with, its outputs' names.

The example input (`Sample`) is one batch: a single array, fed as the input named "input" and cast to
float32 (an image batch), or a mapping `{input_name: array}` for models with several inputs, passed to
`forward` as positional arguments in the mapping's order; a mapping's integer and bool arrays (token ids,
masks) keep their dtype, its floating arrays become float32. Outputs are named "output", or "output_0",
"output_1", ... when the model returns several tensors (tuples, lists and dicts are flattened in order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trtq.errors import UsageError

__all__ = ["DEFAULT_INPUT_NAME", "Sample", "as_feed", "flatten_outputs", "output_names"]

#: The ONNX input name of a model exported from a single array.
DEFAULT_INPUT_NAME = "input"

#: One example batch: an array (the input "input") or `{input_name: array}`.
Sample = np.ndarray | Mapping[str, Any]


def as_feed(sample: Sample) -> dict[str, np.ndarray]:
    """Turn an export sample into the `{input_name: array}` feed the export uses (see the module doc).

    Args:
        sample: an array (cast to float32, named "input") or a mapping of input names to arrays.

    Returns:
        Contiguous arrays by input name, in the mapping's order.

    Raises:
        UsageError: the mapping is empty, a name is not a non-empty string, an array is a scalar, or its
            dtype is neither numeric nor bool.
    """
    if not isinstance(sample, Mapping):
        return {DEFAULT_INPUT_NAME: np.ascontiguousarray(sample, dtype=np.float32)}
    if not sample:
        raise UsageError(
            "the export sample is an empty mapping; give {input_name: array} for each model input"
        )
    feed = {}
    for name, value in sample.items():
        if not isinstance(name, str) or not name:
            raise UsageError(f"export sample key {name!r} is not an input name; use non-empty strings")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise UsageError(f"export sample input {name!r} has dtype {array.dtype}; give numeric arrays")
        if array.ndim == 0:
            raise UsageError(f"export sample input {name!r} is a scalar; give a batch (N, ...)")
        dtype = np.float32 if array.dtype.kind == "f" else array.dtype
        feed[name] = np.ascontiguousarray(array, dtype=dtype)
    return feed


def output_names(count: int) -> list[str]:
    """ONNX output names for a model with `count` output tensors: "output", or "output_0", "output_1", ..."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def flatten_outputs(out: Any) -> list[Any]:
    """The tensors of a model's output, in order: tuples and lists element by element, dicts by key order.

    Args:
        out: what `forward` returned.

    Returns:
        The torch tensors.

    Raises:
        UsageError: something in the output is not a tensor, tuple, list or dict.
    """
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for k in out for t in flatten_outputs(out[k])]
    raise UsageError(f"model output of type {type(out).__name__} is not a tensor, tuple or dict of tensors")
