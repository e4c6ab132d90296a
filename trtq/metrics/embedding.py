"""Metrics for embedding models: does the quantized model retrieve the same neighbours as FP32?

A sentence or image encoder is used for retrieval, so what matters is not each vector's exact values but which
other samples come out nearest. `neighbour_overlap` takes each sample's k nearest neighbours (cosine similarity,
the sample itself left out) among the evaluation samples under FP32 and under the candidate, and reports the
mean fraction they share (1.0: every sample retrieves exactly the same neighbours).

The embedding is the first floating-point output of rank 2 (`[batch, dim]`: a pooled sentence embedding, a
`pooler_output`); a model with only token-level outputs (`[batch, sequence, dim]`) is mean-pooled over the
sequence. `neighbour_overlap@OUTPUT` picks an output by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtq.metrics.base import Outputs, register_metric

__all__ = ["NEIGHBOURS", "embedding_of", "nearest", "neighbour_overlap"]

#: k of the k-nearest-neighbour overlap (fewer when the evaluation set is smaller than k + 1 samples).
NEIGHBOURS = 10


def embedding_of(outputs: Outputs) -> np.ndarray | None:
    """The embedding matrix `[samples, dim]` of a model's outputs (see the module doc), or None."""
    floats = [np.asarray(v) for v in outputs.values() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    for v in floats:
        if v.ndim == 2 and v.shape[1] > 1:
            return v.astype(np.float64)
    for v in floats:
        if v.ndim == 3:
            return v.astype(np.float64).mean(axis=1)
    return None


def nearest(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices `[samples, k]` of each sample's k nearest others by cosine similarity (ties: lower index)."""
    norm = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norm > 0, norm, 1.0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(sim)), sim.shape), -sim), axis=1)
    return order[:, :k]


def _applies(reference: Outputs) -> bool:
    e = embedding_of(reference)
    return e is not None and len(e) >= 3


@register_metric("neighbour_overlap", kind="fidelity", applies=_applies, title="neighbour overlap vs FP32")
def neighbour_overlap(reference: Outputs, outputs: Outputs, targets: Any = None) -> float:
    """Mean fraction of each sample's k nearest neighbours (cosine, k=10) shared by FP32 and the candidate."""
    ref, got = embedding_of(reference), embedding_of(outputs)
    if ref is None or got is None:
        raise ValueError("no embedding output ([batch, dim] or [batch, sequence, dim] floats)")
    k = min(NEIGHBOURS, len(ref) - 1)
    if k < 1:
        return 1.0
    a, b = nearest(ref, k), nearest(got.reshape(ref.shape), k)
    shared = [len(np.intersect1d(x, y)) / k for x, y in zip(a, b)]
    return float(np.mean(shared))
