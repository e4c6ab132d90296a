"""ONNX Runtime runner that executes Q/DQ graphs as written.

ONNX Runtime's default CPU optimisations replace QuantizeLinear/DequantizeLinear pairs around Conv/MatMul
with its own int8 kernels. On CPUs without VNNI those kernels saturate and lose tens of points of
accuracy, and in any case they are not what TensorRT computes. TensorRT's numerics follow the graph as
written (quantize, dequantize, float math), so by default this runner disables the Q/DQ fusion pass and
keeps every other optimisation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx

from trtq.runners.base import BaseRunner, TensorMeta

__all__ = [
    "OnnxRuntimeRunner",
    "session_options",
    "QDQ_FUSION_OPTIMIZERS",
    "CUDA_PROVIDERS",
    "expose_tensors",
    "PartRunner",
    "OUTPUT_BUDGET",
    "INFER_SAMPLES",
]

#: ORT graph transformers that rewrite Q/DQ; disabled to execute Q/DQ as written. QDQSelectorActionTransformer
#: turns Q/DQ into int8 kernels; WeightBiasQuantization quantizes conv biases to int32 with scale
#: x_scale * w_scale, which overflows in FP16-typed graphs (model.trt.onnx) and corrupts the output.
QDQ_FUSION_OPTIMIZERS = ["QDQSelectorActionTransformer", "WeightBiasQuantization"]

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def session_options(threads: int | None = None, *, arena: bool = True) -> object:
    """The `onnxruntime.SessionOptions` of every trtq session: quiet, `threads` intra-op threads (default ONNX
    Runtime's: one per physical core) and no spin-waiting between ops; `arena=False` turns off ONNX Runtime's CPU
    memory arena, which keeps the most memory a session ever needed until it ends (each tensor is then allocated
    and freed with the C allocator: for sessions of a stage whose peak matters, sensitivity's and validation's).

    ONNX Runtime's intra-op threads spin for work by default, which helps a latency benchmark on an idle machine
    and costs a throughput pass on a shared or small one: the spinning threads take the cores the work needs.
    Measured on efficientnet_b0 on 2 cores under load (32 images, 8 a call): FP32 0.88 s of CPU with spinning, 0.72
    s without; the calibration session with the plan's 113 activations exposed 1.15 s and 0.80 s.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_cpu_mem_arena = arena
    return opts


def expose_tensors(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """Return a copy of `model` whose graph also outputs the named intermediate tensors."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    existing = {o.name for o in out.graph.output}
    wanted = [n for n in names if n not in existing]
    if not wanted:
        return out
    types: dict[str, int] = {}
    try:
        from trtq.onnx_io import infer_shapes

        inferred = infer_shapes(out)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            types[vi.name] = vi.type.tensor_type.elem_type
    except Exception:  # shape inference is a nicety here; unknown types default to float
        pass
    for name in wanted:
        out.graph.output.append(
            onnx.helper.make_tensor_value_info(name, types.get(name) or onnx.TensorProto.FLOAT, None)
        )
    return out


#: Execution providers that run the graph on a CUDA device (the runner's `device` is then "cuda").
CUDA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


class OnnxRuntimeRunner(BaseRunner):
    """Run an ONNX model (path, bytes or ModelProto) in ONNX Runtime on the CPU.

    The benchmark times it with the wall clock around `infer` (`cuda_steps()` is None), whatever the
    execution provider.

    Args:
        model: the model to run.
        extra_outputs: intermediate tensor names to return besides the graph outputs.
        qdq_as_written: disable ORT's Q/DQ -> int8-kernel fusion (default True; see module doc).
        threads: intra-op threads (default: ORT's choice).
        providers: execution providers (default CPU).
        name: runner name in comparisons and benchmarks.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model: str | os.PathLike | bytes | onnx.ModelProto,
        *,
        extra_outputs: Sequence[str] = (),
        qdq_as_written: bool = True,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        name: str = "onnxruntime",
    ) -> None:
        super().__init__()
        self.name = name
        self._model = model
        self._extra = list(extra_outputs)
        self._qdq_as_written = qdq_as_written
        self._threads = threads
        self._providers = list(providers)
        self.device = "cuda" if self._providers and self._providers[0] in CUDA_PROVIDERS else "cpu"
        self.session = None

    def _model_source(self) -> onnx.ModelProto | bytes | str:
        """The model as ONNX Runtime gets it: a ModelProto (serialized on activation), bytes, or a file path."""
        m = self._model
        if self._extra:
            if isinstance(m, (str, os.PathLike)):
                m = onnx.load(str(m))
            elif isinstance(m, bytes):
                m = onnx.load_from_string(m)
            return expose_tensors(m, self._extra)
        if isinstance(m, (onnx.ModelProto, bytes)):
            return m
        return str(m)  # a file: ONNX Runtime reads external data beside it

    def activate_impl(self) -> None:
        import onnxruntime as ort

        opts = session_options(self._threads)
        disabled = QDQ_FUSION_OPTIMIZERS if self._qdq_as_written else None
        from contextlib import ExitStack

        from trtq.onnx_io import session_input

        self._stack = ExitStack()
        source = self._model_source()
        if isinstance(source, onnx.ModelProto):  # bytes, or a temporary file pair above 2 GB
            source = self._stack.enter_context(session_input(source))
        try:
            self.session = ort.InferenceSession(
                source, opts, providers=self._providers, disabled_optimizers=disabled
            )
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / NotImplemented
            self._stack.close()
            raise session_error(e, self.name) from None
        except BaseException:
            self._stack.close()
            raise

    def deactivate_impl(self) -> None:
        self.session = None
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names()
        values = self.session.run(names, dict(feed))
        return dict(zip(names, values))

    def input_metadata(self) -> TensorMeta:
        assert self.session is not None, "activate the runner first"
        return {
            i.name: (np.dtype(_ORT_TYPES.get(i.type, np.float32)), tuple(i.shape))
            for i in self.session.get_inputs()
        }

    def output_names(self) -> list[str]:
        assert self.session is not None, "activate the runner first"
        return [o.name for o in self.session.get_outputs()]


#: Bytes of outputs one `PartRunner` call may return (a model exposing its activations returns them all at once).
OUTPUT_BUDGET = 128 << 20
#: Samples per ONNX Runtime call in passes that keep only the graph outputs (validation, method choice): ONNX
#: Runtime's memory for intermediate activations grows with the batch (efficientnet_b0 at 224x224: about
#: 25 MB a sample), its speed per sample hardly changes beyond a few samples.
INFER_SAMPLES = 8


def _dynamic_batch(shape: Sequence[object] | None) -> bool:
    """Whether the first axis of an input shape is dynamic (None, a negative number or a symbol)."""
    if not shape:
        return False
    first = shape[0]
    return first is None or isinstance(first, str) or (isinstance(first, int) and first < 0)


def _input_shapes(runner: object) -> list[Sequence[object] | None]:
    """Input shapes of a trtq runner (`input_metadata`) or a Polygraphy runner (`get_input_metadata`)."""
    if hasattr(runner, "input_metadata"):
        return [shape for _, shape in runner.input_metadata().values()]  # type: ignore[attr-defined]
    meta = runner.get_input_metadata()  # type: ignore[attr-defined]
    return [getattr(v, "shape", None) for v in meta.values()]


class PartRunner:
    """Run each feed a few samples at a time: one call's outputs within `budget` bytes, at most `max_samples`.

    A model that exposes its intermediate activations (calibration, FP16 range measurement) returns all of
    them for the whole batch at once, and ONNX Runtime keeps every one of them alive until the call returns:
    that, not the data, is what such a pass holds. The number of samples per call is measured on the first
    sample (output bytes per sample). Feeds are split only along a dynamic first axis that every input
    shares; results that fold samples one by one (histograms, maxima, per-sample outputs) do not depend on the
    split beyond float rounding of kernels that ONNX Runtime picks by batch size.

    Args:
        runner: an active runner (a trtq `BaseRunner` or a Polygraphy runner).
        budget: bytes of outputs per call (0: no byte limit).
        max_samples: samples per call at most (None: no limit). With neither limit, feeds are never split.
    """

    def __init__(self, runner: object, budget: int = OUTPUT_BUDGET, max_samples: int | None = None) -> None:
        self.runner = runner
        self.budget = int(budget)
        self.max_samples = max_samples
        splittable = (self.budget > 0 or bool(max_samples)) and all(
            _dynamic_batch(shape) for shape in _input_shapes(runner)
        )
        # None: measure on the first sample; 0: whole feeds
        self.samples: int | None = (None if self.budget > 0 else int(max_samples or 0)) if splittable else 0
        self.calls = 0

    def parts(
        self, feed: Mapping[str, np.ndarray]
    ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(part of the feed, its outputs) pairs covering `feed` in order; drop each before asking for the next."""
        feed = {k: np.asarray(v) for k, v in feed.items()}
        sizes = {int(v.shape[0]) if v.ndim else -1 for v in feed.values()}
        size = sizes.pop() if len(sizes) == 1 else -1
        start = 0
        while True:
            whole = self.samples == 0 or size <= 1
            step = size if whole else 1 if self.samples is None else self.samples
            part = (
                feed if start == 0 and step >= size else {k: v[start : start + step] for k, v in feed.items()}
            )
            out = self.runner.infer(part)  # type: ignore[attr-defined]
            self.calls += 1
            if self.samples is None:
                per_sample = sum(int(np.asarray(v).nbytes) for v in out.values()) // max(step, 1)
                self.samples = max(1, self.budget // max(per_sample, 1))
                if self.max_samples:
                    self.samples = min(self.samples, int(self.max_samples))
            yield part, out
            del part, out
            start += max(step, 1)
            if whole or start >= size:
                return

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs for the whole feed, parts joined on the first axis (for passes that keep only outputs)."""
        got: dict[str, list[np.ndarray]] = {}
        for _, out in self.parts(feed):
            for k, v in out.items():
                got.setdefault(k, []).append(np.array(v))
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in got.items()}


def session_error(e: Exception, what: str) -> Exception:
    """One line for an ONNX Runtime session that could not be created: the op it has no kernel for, when so."""
    import re

    from trtq.errors import TrtqError

    text = str(e).strip()
    m = re.search(r"(\S+:)?(\w+)\(-?\d+\) is not a registered function/op", text) or re.search(
        r"Could not find an implementation for (\w+)\(\d+\) node with name '([^']*)'", text
    )
    if m:
        op = (
            (m.group(1) or "") + m.group(2)
            if "registered" in m.group(0)
            else f"{m.group(1)} (node {m.group(2)!r})"
        )
        return TrtqError(
            f"ONNX Runtime cannot run {what}: it has no kernel for {op}; trtq calibrates and validates in ONNX "
            "Runtime, so export the model without this op or replace it with standard ONNX ops"
        )
    first = text.splitlines()[0] if text else type(e).__name__
    return TrtqError(f"ONNX Runtime cannot load {what}: {first}")
