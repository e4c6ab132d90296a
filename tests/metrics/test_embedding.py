"""The embedding metrics: neighbour overlap against scikit-learn's nearest neighbours, per-output metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from trtq.errors import UsageError
from trtq.metrics import METRICS, get_metric, resolve_metric
from trtq.metrics.embedding import embedding_of, nearest


def _sklearn_overlap(ref: np.ndarray, got: np.ndarray, k: int) -> float:
    """The same quantity computed independently: scikit-learn's brute-force cosine neighbours."""

    def knn(e: np.ndarray) -> np.ndarray:
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(e)
        idx = nn.kneighbors(e, return_distance=False)
        return np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])

    a, b = knn(ref), knn(got)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.5, 2.0])
def test_neighbour_overlap_matches_scikit_learn(noise):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((60, 24))
    got = ref + noise * rng.standard_normal(ref.shape)
    m = get_metric("neighbour_overlap")
    value = m({"emb": ref}, {"emb": got})
    assert value == pytest.approx(_sklearn_overlap(ref, got, 10), abs=1e-12)
    assert (value == 1.0) == (noise == 0.0)


def test_neighbour_overlap_falls_as_the_embeddings_drift():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((80, 16))
    m = get_metric("neighbour_overlap")
    values = [m({"e": ref}, {"e": ref + s * rng.standard_normal(ref.shape)}) for s in (0.05, 0.3, 1.0, 3.0)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.5 < values[0]


def test_the_embedding_is_the_pooled_output_else_the_mean_over_the_sequence():
    tokens, pooled = np.ones((5, 7, 4)), np.arange(15.0).reshape(5, 3)
    assert embedding_of({"last_hidden_state": tokens, "pooler_output": pooled}) is not None
    np.testing.assert_array_equal(embedding_of({"a": tokens, "b": pooled}), pooled)
    np.testing.assert_array_equal(embedding_of({"a": tokens * 2}), np.full((5, 4), 2.0))
    assert embedding_of({"ids": np.ones((5, 3), np.int64)}) is None
    assert not METRICS.get("neighbour_overlap").usable({"x": np.ones((2, 4))}, None)  # too few samples


def test_nearest_leaves_the_sample_itself_out():
    e = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    assert nearest(e, 1).ravel().tolist() == [1, 0, 1, 2]


def test_a_metric_on_one_output_ignores_the_others():
    rng = np.random.default_rng(3)
    ref = {"last_hidden_state": rng.standard_normal((8, 4, 6)), "pooler_output": rng.standard_normal((8, 6))}
    got = {"last_hidden_state": -ref["last_hidden_state"], "pooler_output": ref["pooler_output"]}
    cos = resolve_metric("cosine@pooler_output")
    assert cos.name == "cosine@pooler_output" and cos(ref, got) == pytest.approx(1.0)
    assert resolve_metric("cosine")(ref, got) < 0.5  # over every output, the flipped one counts
    mae = get_metric("max_abs_error@last_hidden_state")
    assert not mae.higher_is_better and mae(ref, got) == pytest.approx(
        2 * np.abs(ref["last_hidden_state"]).max()
    )
    with pytest.raises(UsageError, match="no output 'logits'"):
        get_metric("cosine@logits")(ref, got)
    with pytest.raises(UsageError, match="nope"):
        resolve_metric("nope@pooler_output")
