"""The FAISS index: exact search equals brute force, ids survive adds and reloads, approximate kinds recall."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.retrieval.index import (
    IndexConfig,
    RetrievalIndex,
    exact_search,
    l2_normalise,
    recall_at_k,
)
from medlim.errors import ParameterError


def _naive_ranking(database: np.ndarray, query: np.ndarray) -> list[tuple[float, int]]:
    """Cosine of every item by a plain loop, sorted best first (ties by position)."""
    scored = []
    for i, row in enumerate(database):
        cosine = float(np.dot(row, query) / (np.linalg.norm(row) * np.linalg.norm(query)))
        scored.append((-cosine, i))
    return sorted(scored)


def test_flat_search_equals_brute_force_ranking() -> None:
    rng = np.random.default_rng(3)
    database = rng.standard_normal((700, 24)).astype(np.float32)
    queries = rng.standard_normal((15, 24)).astype(np.float32)
    found = RetrievalIndex.build(database).search(queries, 30)
    for q in range(len(queries)):
        naive = _naive_ranking(database, queries[q])[:30]
        naive_ids = [i for _, i in naive]
        naive_scores = np.array([-s for s, _ in naive])
        np.testing.assert_allclose(found.scores[q], naive_scores, atol=1e-5)
        for rank, (got, want) in enumerate(zip(found.ids[q], naive_ids)):
            if got != want:  # only a numerical tie may swap two items
                assert abs(naive_scores[rank] - -[s for s, i in naive if i == got][0]) < 1e-5
    reference = exact_search(database, queries, 30)
    assert recall_at_k(found.ids, reference.ids) == 1.0


def test_exact_search_breaks_ties_by_position() -> None:
    database = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    result = exact_search(database, np.array([[1.0, 0.0]], np.float32), 4)
    assert result.ids.tolist() == [[0, 1, 3, 2]]  # rows 0 and 1 have cosine 1 exactly
    np.testing.assert_allclose(result.scores[0], [1.0, 1.0, np.sqrt(0.5), 0.0], atol=1e-6)


def test_ids_are_stable_across_adds_and_reload(tmp_path) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((10, 8)), rng.standard_normal((5, 8))
    index = RetrievalIndex.build(first)
    assert index.ids.tolist() == list(range(10))
    new = index.add(second)
    assert new.tolist() == list(range(10, 15))
    path = index.save(tmp_path / "collection")
    assert path.suffix == ".npz"
    loaded = RetrievalIndex.load(path)
    assert loaded.ids.tolist() == list(range(15)) and loaded.next_id == 15
    # item 12 (the third added vector) is its own nearest neighbour before and after the reload
    assert loaded.search(second[2:3], 1).ids[0, 0] == 12 == index.search(second[2:3], 1).ids[0, 0]
    assert loaded.add(second[:1]).tolist() == [15]
    ids, vectors = loaded.vectors()
    np.testing.assert_allclose(vectors[12], l2_normalise(second)[2], atol=1e-6)
    assert ids.tolist() == list(range(16))


def test_given_ids_must_be_new_and_unique() -> None:
    index = RetrievalIndex.build(np.eye(3), ids=np.array([7, 3, 9]))
    assert index.search(np.array([[0.0, 1.0, 0.0]]), 1).ids[0, 0] == 3
    assert index.next_id == 10
    with pytest.raises(ParameterError, match="already"):
        index.add(np.eye(3)[:1], ids=np.array([9]))
    with pytest.raises(ParameterError, match="unique"):
        index.add(np.eye(3)[:2], ids=np.array([20, 20]))


def test_bad_inputs_raise() -> None:
    index = RetrievalIndex.build(np.eye(4))
    with pytest.raises(ParameterError, match="queries"):
        index.search(np.ones((2, 3)), 1)
    with pytest.raises(ParameterError, match="k"):
        index.search(np.ones((1, 4)), 0)
    with pytest.raises(ParameterError, match="finite"):
        index.add(np.full((1, 4), np.nan))
    with pytest.raises(ParameterError, match="kind"):
        IndexConfig(kind="lsh")


def test_fewer_items_than_k_pads_with_minus_one() -> None:
    result = RetrievalIndex.build(np.eye(2)).search(np.array([[1.0, 0.0]]), 4)
    assert result.ids[0].tolist()[:2] == [0, 1] and result.ids[0].tolist()[2:] == [-1, -1]
    assert np.isneginf(result.scores[0, 2:]).all()


@pytest.mark.parametrize("config", [IndexConfig(kind="ivf", nlist=16, nprobe=16), IndexConfig(kind="hnsw")])
def test_approximate_kinds_recall_on_clustered_data(config: IndexConfig, tmp_path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 16))
    database = (centres[rng.integers(0, 20, 2000)] + 0.3 * rng.standard_normal((2000, 16))).astype(np.float32)
    queries = database[:50] + 0.05 * rng.standard_normal((50, 16)).astype(np.float32)
    index = RetrievalIndex.build(database, config=config)
    reference = exact_search(database, queries, 10)
    # nprobe = nlist visits every cell, so IVF is exact here; HNSW at efSearch 64 misses almost nothing
    assert recall_at_k(index.search(queries, 10).ids, reference.ids) >= 0.95
    reloaded = RetrievalIndex.load(index.save(tmp_path / "approx.npz"))
    assert (reloaded.search(queries, 10).ids == index.search(queries, 10).ids).all()
