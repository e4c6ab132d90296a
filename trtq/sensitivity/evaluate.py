"""Evaluate many variants of a few base models on the same data, re-computing only what can differ.

A variant (the base with one layer more or less quantized) computes the same tensors as its base up to
the first node that differs. `VariantEvaluator` runs each base once per chunk of samples and keeps its
tensors at *checkpoints*: positions in the graph where a single activation carries everything downstream
(block boundaries). Each variant then runs from the latest checkpoint before its first change
(`trtq.sensitivity.graphs.suffix_model`), in ONNX Runtime with Q/DQ executed as written, like
`trtq.runners.onnxrt.OnnxRuntimeRunner`. Results equal running each variant in full up to float rounding
where ONNX Runtime fuses kernels differently on the two sides of a cut. Checkpoints are never Q/DQ outputs,
so every Q/DQ group ONNX Runtime recognises (a Conv with its input and weight DequantizeLinear) stays whole.

Variants run in parallel on `workers` threads, each session single-threaded: on a small CPU that beats
one multi-threaded session, whose threads idle on the small tensors late in a network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from trtq.sensitivity.graphs import (
    Suffix,
    changed_tensors,
    live_tensors,
    set_input_types,
    suffix_model,
)

__all__ = ["VariantEvaluator", "make_session", "run_model", "run_sliced", "default_workers", "CALL_SAMPLES"]

#: (feed dict, anything) pairs, as `VariantEvaluator.run` takes them.
Batch = tuple[dict[str, np.ndarray], Any]
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
Progress = Callable[[Iterable[Any], str, int], Iterator[Any]]


def default_workers() -> int:
    """Parallel sessions: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Samples per ONNX Runtime call: a batch is run in slices of this many. The memory a session needs for its
#: activations grows with the samples of one call (efficientnet_b0 at 224x224: about 15 MB a sample at its
#: widest tensors), and the CPU time per sample hardly changes above a few samples.
CALL_SAMPLES = 4


def make_session(model: onnx.ModelProto, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session that executes Q/DQ as written (see `trtq.runners.onnxrt`).

    Without ONNX Runtime's memory arena: an arena keeps the most memory a session ever needed until the
    session (or, for an arena shared between sessions, the process) ends, and sensitivity makes hundreds of
    short-lived sessions. Without it each tensor is allocated and freed with the C allocator, which hands the
    memory back once the stage is done (`trtq.pipeline.memory.release_memory`); measured on efficientnet_b0, the
    same CPU time as with a shared arena (docs/performance.md).
    """
    import onnxruntime as ort

    from trtq.runners.onnxrt import QDQ_FUSION_OPTIMIZERS, session_options

    opts = session_options(arena=False)
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    from trtq.onnx_io import session_input

    with session_input(model) as source:  # bytes, or above 2 GB a file pair read while the session is made
        return ort.InferenceSession(
            source, opts, providers=["CPUExecutionProvider"], disabled_optimizers=QDQ_FUSION_OPTIMIZERS
        )


def run_sliced(
    session: Any, names: list[str], feed: Mapping[str, np.ndarray], samples: int | None = None
) -> list[np.ndarray]:
    """`session.run(names, feed)`, run `samples` (default `CALL_SAMPLES`) samples a call.

    Outputs are concatenated along the batch axis; every input must have the batch as its first axis (the
    feeds and cached activations here do).
    """
    samples = CALL_SAMPLES if samples is None else samples
    n = _batch_len(feed)
    if samples < 1 or n <= samples:
        return list(session.run(names, dict(feed)))
    parts = [
        session.run(names, {k: v[i : i + samples] for k, v in feed.items()}) for i in range(0, n, samples)
    ]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(names))]


def run_model(
    model: onnx.ModelProto, batches: Iterable[Mapping[str, np.ndarray]], threads: int | None = None
) -> dict[str, np.ndarray]:
    """Run a whole model over feed dicts; graph outputs concatenated over batches."""
    session = make_session(model, threads)
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in batches:
        for n, v in zip(names, run_sliced(session, names, feed)):
            parts[n].append(v)
    return {n: np.concatenate(v) for n, v in parts.items()}


@dataclass
class _Base:
    model: onnx.ModelProto
    live: list[frozenset[str]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes per sample of candidate checkpoint tensors
    expose: list[str] = field(default_factory=list)
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Variant:
    key: Any
    base: str
    suffix: Suffix
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0


class VariantEvaluator:
    """Run base models and variants of them over the same batches.

    Args:
        sample: one feed dict (a batch of one sample is enough) used to measure the size of each candidate
            checkpoint tensor.
        samples: how many samples `run` will see (sizes the checkpoint cache); None if unknown.
        workers: variants evaluated in parallel (default: the CPUs available).
        threads: ONNX Runtime intra-op threads per session (default: 1 when workers > 1).
        cache_bytes: memory for cached checkpoint tensors. Checkpoints are chosen smallest first until
            `samples` samples of them fit; if more samples come, they are processed chunk by chunk (each
            variant's session is then created once per chunk).
    """

    def __init__(
        self,
        sample: Mapping[str, np.ndarray],
        samples: int | None = None,
        *,
        workers: int | None = None,
        threads: int | None = None,
        cache_bytes: int = 2 << 30,
    ) -> None:
        self.sample = {k: np.asarray(v)[:1] for k, v in sample.items()}
        self.samples = samples
        self.workers = workers or default_workers()
        self.threads = threads if threads is not None else (1 if self.workers > 1 else None)
        self.cache_bytes = cache_bytes
        self.bases: dict[str, _Base] = {}
        self.variants: dict[Any, _Variant] = {}
        self.chunks = 0
        self.cached_bytes_per_sample = 0.0

    def add_base(self, name: str, model: onnx.ModelProto, share: float = 0.5) -> None:
        """Register a base model (normalised, as `trtq.placement.normalize` returns it).

        Args:
            name: how variants refer to it.
            model: the model.
            share: the part of `cache_bytes` its checkpoints may use.
        """
        from trtq.runners.onnxrt import expose_tensors

        live = live_tensors(model)
        inputs = {i.name for i in model.graph.input}
        outputs = {o.name for o in model.graph.output}
        # Candidates: positions where one activation carries everything still to compute (in a chain,
        # every layer input; in residual networks, block boundaries). Outputs computed earlier do not
        # count: the base's values are cached anyway. Q/DQ outputs are not candidates: a suffix starting
        # there would split a Q/DQ group that ONNX Runtime treats as a unit.
        qdq = {o for n in model.graph.node if n.op_type in _QDQ_OPS for o in n.output}
        single = {p: next(iter(s - outputs)) for p, s in enumerate(live) if len(s - outputs) == 1}
        candidates = {p: t for p, t in single.items() if t not in inputs and t not in qdq}
        sizes: dict[str, int] = {}
        if candidates and share > 0:
            session = make_session(expose_tensors(model, sorted(set(candidates.values()))), self.threads)
            names = [o.name for o in session.get_outputs()]
            sizes = {n: int(v.nbytes) for n, v in zip(names, session.run(names, dict(self.sample)))}
        # Smallest first, while `samples` samples of them fit in this base's share of the cache.
        budget = share * self.cache_bytes / max(self.samples or 1, 1)
        chosen: set[str] = set()
        used = 0
        for t in sorted(set(candidates.values()), key=lambda t: (sizes.get(t, 1 << 62), t)):
            if used + sizes.get(t, 1 << 62) > budget:
                break
            chosen.add(t)
            used += sizes[t]
        checkpoints = [p for p, t in single.items() if t in chosen or t in inputs]
        self.bases[name] = _Base(model, live, sorted(checkpoints), sizes)

    def add_variant(self, key: Any, base: str, model: onnx.ModelProto) -> Suffix:
        """Register a variant of base `base` (same inputs and outputs); returns the part of it that will run.

        Register every base first: where a variant starts depends on its base's checkpoints.
        """
        b = self.bases[base]
        changed = changed_tensors(b.model, model)
        present = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
        usable = [p for p in b.checkpoints if b.live[p] <= present and not (b.live[p] & changed)]
        # The latest checkpoint from which the variant computes everything it needs (a variant may read a
        # base tensor that is no longer live there, e.g. the unquantized value behind a removed Q/DQ).
        suffix = None
        for p in reversed(usable):
            suffix = suffix_model(b.model, model, b.live[p], changed, share=True)
            if set(suffix.cut) <= b.live[p]:
                break
            suffix = None
        if suffix is None:
            suffix = suffix_model(b.model, model, frozenset(), changed, share=True)
        self.variants[key] = _Variant(key, base, suffix)
        return suffix

    def _session_model(self, v: _Variant, dtypes: dict[str, Any]) -> onnx.ModelProto:
        assert v.suffix.model is not None
        model = set_input_types(v.suffix.model, dtypes, self._batch_dim(v.base))
        if v.suffix.shared:
            base_inits = {t.name: t for t in self.bases[v.base].model.graph.initializer}
            model.graph.initializer.extend(base_inits[n] for n in v.suffix.shared)
        return model

    def _batch_dim(self, base: str) -> str | int:
        """The symbol (or size) of the batch dimension of the base's first input."""
        dims = self.bases[base].model.graph.input[0].type.tensor_type.shape.dim
        if dims and dims[0].dim_param:
            return dims[0].dim_param
        if dims and dims[0].dim_value:
            return int(dims[0].dim_value)
        return "batch"

    def run(self, batches: Iterable[Batch], progress: Progress | None = None) -> None:
        """Run every base and variant over `batches` ((feed dict, anything) pairs).

        Results are read with `base_outputs` and `outputs`.
        """
        for name, b in self.bases.items():
            wanted = {c for v in self.variants.values() if v.base == name for c in v.suffix.cut}
            inputs = {i.name for i in b.model.graph.input}
            outputs = {o.name for o in b.model.graph.output}
            b.expose = sorted(wanted - inputs - outputs)
        per_sample = sum(b.sizes.get(t, 0) for b in self.bases.values() for t in b.expose)
        self.cached_bytes_per_sample = float(per_sample)
        # A chunk's input batches are held while its variants run, beside the cached tensors.
        per_sample += sum(int(v.nbytes) for v in self.sample.values())
        chunk_samples = max(1, int(self.cache_bytes // max(per_sample, 1)))
        it = iter(batches)
        dtypes: dict[str, Any] = {}
        with ThreadPoolExecutor(self.workers) as pool:
            while True:
                chunk = _take(it, chunk_samples)
                if not chunk:
                    break
                self.chunks += 1
                caches = self._run_bases(pool, chunk, dtypes)
                self._run_variants(pool, chunk, caches, dtypes, progress)
                del chunk, caches  # before the next chunk is read and run: one chunk's cache alive at a time

    def _run_bases(
        self,
        pool: ThreadPoolExecutor,
        chunk: list[Batch],
        dtypes: dict[str, Any],
    ) -> list[dict[str, np.ndarray]]:
        """Per batch: {(base name, tensor): value} for graph outputs and checkpoint tensors.

        A base's session lives for its chunk only (made again for the next one, a fraction of a second):
        the variants then run with no base session alive.
        """
        from trtq.runners.onnxrt import expose_tensors

        def one(name: str) -> list[dict[str, np.ndarray]]:
            b = self.bases[name]
            start = time.perf_counter()
            s = make_session(expose_tensors(b.model, b.expose), self.threads)
            names = [o.name for o in s.get_outputs()]
            got = [dict(zip(names, run_sliced(s, names, feed))) for feed, _ in chunk]
            b.seconds += time.perf_counter() - start
            return got

        results = dict(zip(self.bases, pool.map(one, list(self.bases))))
        caches: list[dict[Any, np.ndarray]] = [{} for _ in chunk]
        for name, per_batch in results.items():
            b = self.bases[name]
            for k, values in enumerate(per_batch):
                for t, v in values.items():
                    caches[k][(name, t)] = v
                    dtypes.setdefault(t, (v.dtype, v.shape[1:]))
                for o in b.model.graph.output:
                    b.outputs.setdefault(o.name, []).append(values[o.name])
        for feed, _ in chunk[:1]:
            for name, value in feed.items():
                dtypes.setdefault(name, (value.dtype, np.shape(value)[1:]))
        return caches

    def _run_variants(
        self,
        pool: ThreadPoolExecutor,
        chunk: list[Batch],
        caches: list[dict[Any, np.ndarray]],
        dtypes: dict[str, Any],
        progress: Progress | None,
    ) -> None:
        def one(v: _Variant) -> _Variant:
            start = time.perf_counter()
            suffix = v.suffix
            session = None
            if suffix.model is not None:
                session = make_session(self._session_model(v, dtypes), self.threads)
            base_outs = [o.name for o in self.bases[v.base].model.graph.output]
            for k, (feed, _) in enumerate(chunk):
                values: dict[str, np.ndarray] = {}
                if session is not None:
                    inputs = {c: (feed[c] if c in feed else caches[k][(v.base, c)]) for c in suffix.cut}
                    values = dict(zip(suffix.computed, run_sliced(session, suffix.computed, inputs)))
                for o in base_outs:
                    v.outputs.setdefault(o, []).append(values[o] if o in values else caches[k][(v.base, o)])
            v.seconds += time.perf_counter() - start
            return v

        # Longest suffixes first, so the parallel workers finish together.
        order = sorted(self.variants.values(), key=lambda v: -v.suffix.nodes)
        done: Iterable[_Variant] = pool.map(one, order)
        if progress is not None:
            done = progress(done, f"sensitivity: {len(order)} variants", len(order))
        for _ in done:
            pass

    def base_outputs(self, name: str) -> dict[str, np.ndarray]:
        """A base model's graph outputs over all batches."""
        return {k: np.concatenate(v) for k, v in self.bases[name].outputs.items()}

    def outputs(self, key: Any) -> dict[str, np.ndarray]:
        """A variant's graph outputs over all batches."""
        return {k: np.concatenate(v) for k, v in self.variants[key].outputs.items()}

    def seconds(self, key: Any) -> float:
        """Wall time one worker spent on a variant (session creation and its runs)."""
        return self.variants[key].seconds

    def suffix(self, key: Any) -> Suffix:
        """The part of a variant that runs."""
        return self.variants[key].suffix


def _take(it: Iterator[Batch], samples: int) -> list[Batch]:
    """The next batches, up to (at least one batch and) about `samples` samples."""
    chunk: list[Batch] = []
    count = 0
    for b in it:
        chunk.append(b)
        count += _batch_len(b[0])
        if count >= samples:
            break
    return chunk


def _batch_len(feed: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feed.values()))
    return int(first.shape[0]) if first.ndim else 1
