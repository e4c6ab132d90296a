"""Ways to run a graph behind one small interface (the shape of Polygraphy's runners).

A runner is activated (as a context manager), fed a dict of named numpy arrays, and returns a dict of
named numpy arrays. The ONNX Runtime runner is always available; the TensorRT runner lives in
`trtq.engines` and is imported lazily.
"""

from trtq.backends.base import BaseRunner
from trtq.backends.onnxrt import OnnxRuntimeRunner

__all__ = ["BaseRunner", "OnnxRuntimeRunner"]
