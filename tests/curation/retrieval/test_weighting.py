"""DS weightings (thesis eq. 6.5 and the symmetric deviation), P@K against hit@K, and index attributes."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.retrieval.evaluate import column_header, comparison_tables, evaluate_pms
from medlim.curation.retrieval.index import RetrievalIndex
from medlim.curation.retrieval.metrics import hit_rate_at_k, precision_at_k, relevance_multilabel
from medlim.curation.retrieval.pms import PmsCollection, dissimilarity
from medlim.curation.retrieval.weighting import DEFAULT_DS, DS_WEIGHTINGS, ds_weights, resolve_ds
from medlim.errors import ParameterError

# three classes A, B, C; a confident classifier
QUERY_S = np.array([0.8, 0.2, 0.1])
QUERY_P = np.array([1.0, 0.0, 0.0])  # the query has A only
ITEMS_S = np.array([[0.9, 0.2, 0.1],   # exact match: A only
                    [0.9, 0.8, 0.1]])  # superset: A and B
ITEMS_P = np.array([[1.0, 0.0, 0.0],
                    [1.0, 1.0, 0.0]])


def test_thesis_ties_a_superset_with_the_exact_match_and_symmetric_does_not() -> None:
    # thesis: 1·|0.8−0.9| + 0·… = 0.1 for both → a tie
    thesis = dissimilarity(QUERY_S, QUERY_P, ITEMS_S, ds="thesis")
    np.testing.assert_allclose(thesis, [0.1, 0.1])
    # symmetric: w = max(p^q, p^t) = (1, 0, 0) and (1, 1, 0): 0.1 and 0.1 + 1·|0.2−0.8| = 0.7
    symmetric = dissimilarity(QUERY_S, QUERY_P, ITEMS_S, item_probability=ITEMS_P, ds="symmetric")
    np.testing.assert_allclose(symmetric, [0.1, 0.7])
    # unweighted: 0.1 + 0 + 0 and 0.1 + 0.6 + 0
    np.testing.assert_allclose(dissimilarity(QUERY_S, None, ITEMS_S), [0.1, 0.7])
    np.testing.assert_allclose(dissimilarity(QUERY_S, QUERY_P, ITEMS_S, ds="unweighted"), [0.1, 0.7])
    # the older call (probabilities, no ds) is still eq. 6.5
    np.testing.assert_allclose(dissimilarity(QUERY_S, QUERY_P, ITEMS_S), thesis)


def test_symmetric_also_penalises_a_candidate_lacking_the_querys_findings() -> None:
    # a query with A and B against a candidate with A only: max(p^q, p^t) = (1, 1, 0) for it
    query_p = np.array([1.0, 1.0, 0.0])
    found = dissimilarity(np.array([0.9, 0.8, 0.1]), query_p, ITEMS_S, item_probability=ITEMS_P, ds="symmetric")
    np.testing.assert_allclose(found, [0.6, 0.0])  # |0.8−0.2| for the subset; the exact match is 0


def test_collection_ranks_the_exact_match_first_only_with_symmetric_weights() -> None:
    collection = PmsCollection(ITEMS_S[::-1], probability=ITEMS_P[::-1])  # superset at position 0
    thesis = collection.search(QUERY_S, QUERY_P, 2, ds="thesis")
    assert thesis.ids[0].tolist() == [0, 1]  # a tie, broken by position: the superset first
    symmetric = collection.search(QUERY_S, QUERY_P, 2, ds="symmetric")
    assert symmetric.ids[0].tolist() == [1, 0]
    np.testing.assert_allclose(symmetric.distances[0], [0.1, 0.7])


def test_symmetric_search_equals_a_plain_loop() -> None:
    rng = np.random.default_rng(4)
    s, p = rng.random((40, 5)), rng.random((40, 5))
    collection = PmsCollection(s, probability=p)
    found = collection.search(s[:3], p[:3], 7, ds="symmetric", exclude=np.arange(3))
    for q in range(3):
        ds = [sum(max(p[q, i], p[t, i]) * abs(s[q, i] - s[t, i]) for i in range(5)) for t in range(40)]
        ds[q] = np.inf
        assert found.ids[q].tolist() == sorted(range(40), key=lambda t: (ds[t], t))[:7]


def test_weightings_are_checked() -> None:
    assert DS_WEIGHTINGS == ("thesis", "symmetric", "unweighted") and DEFAULT_DS in DS_WEIGHTINGS
    assert resolve_ds(None, None) == "unweighted" and resolve_ds(None, QUERY_P) == "thesis"
    with pytest.raises(ParameterError, match="`ds` must be one of"):
        resolve_ds("both")
    with pytest.raises(ParameterError, match="rebuild it"):
        ds_weights("symmetric", QUERY_P, None)
    with pytest.raises(ParameterError, match="query's class probabilities"):
        PmsCollection(ITEMS_S).search(QUERY_S, None, 1, ds="thesis")
    with pytest.raises(ParameterError, match="probability must be"):
        PmsCollection(ITEMS_S, probability=ITEMS_P[:1])


def test_precision_is_the_share_of_the_top_k_and_hit_is_at_least_one() -> None:
    # query 1: relevant at ranks 2 and 3; query 2: nothing relevant
    relevant = np.array([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=bool)
    assert precision_at_k(relevant, 1) == 0.0 and hit_rate_at_k(relevant, 1) == 0.0
    assert precision_at_k(relevant, 2) == pytest.approx((1 / 2 + 0) / 2)  # 0.25
    assert hit_rate_at_k(relevant, 2) == pytest.approx(0.5)
    assert precision_at_k(relevant, 4) == pytest.approx((2 / 4 + 0) / 2)  # 0.25
    assert hit_rate_at_k(relevant, 4) == pytest.approx(0.5)
    assert column_header("precision@10") == "P@10" and column_header("hit_rate@10") == "hit@10"
    assert column_header("full_hit_rate@5") == "full hit@5" and column_header("sensitivity@1") == "S@1"


def test_pms_evaluation_by_weighting_hand_computed() -> None:
    # 4 images, 3 classes; image 0 (A) has an exact match (2) and a superset (1) that is closer in s
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.uint8)
    s = np.array([[0.8, 0.2, 0.1], [0.8, 0.9, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.9]])
    p = labels.astype(np.float64)
    thesis = evaluate_pms(s, p, labels, ds="thesis", names=("A", "B", "C"), ks=(1,))
    symmetric = evaluate_pms(s, p, labels, ds="symmetric", names=("A", "B", "C"), ks=(1,))
    # image 0's nearest: thesis DS to 1 is 0.0 (B weighs 0), to 2 is 0.1 → the superset (not a full match);
    # symmetric: to 1 is 0.7, to 2 is 0.1 → the exact match
    assert thesis["full_precision@1"] == pytest.approx(1 / 4)  # only image 2 finds image 0
    assert symmetric["full_precision@1"] == pytest.approx(2 / 4)  # images 0 and 2 find each other
    assert thesis["partial_precision@1"] == symmetric["partial_precision@1"] == pytest.approx(3 / 4)
    tables = comparison_tables({}, {"weighted": thesis, "symmetric": symmetric, "n": 4}, classes=("A", "B", "C"))
    assert list(tables[0].rows) == ["Weighted PMS", "Symmetric PMS"]
    assert tables[0].columns[:2] == ("full_precision@1", "full_hit_rate@1")
    assert "| method | full P@1 | full hit@1 |" in tables[0].to_markdown()


def test_relevance_counts_no_finding_like_any_label() -> None:
    labels = np.array([[1, 0], [1, 0], [0, 1]])  # column 0 = No Finding
    ranked = np.array([[1, 2], [0, 2], [0, 1]])
    full = relevance_multilabel(labels, labels, ranked, mode="full")
    assert full.tolist() == [[True, False], [True, False], [False, False]]


def test_index_attributes_follow_adds_and_saves(tmp_path) -> None:
    vectors = np.eye(3, dtype=np.float32)
    index = RetrievalIndex.build(vectors, attributes={"probability": np.full((3, 2), 0.5)})
    assert index.attribute_names == ("probability",) and index.attribute("other") is None
    index.add(np.ones((1, 3), np.float32), attributes={"probability": [[0.1, 0.9]]})
    with pytest.raises(ParameterError, match="keeps the item attributes"):
        index.add(np.ones((1, 3), np.float32))
    loaded = RetrievalIndex.load(index.save(tmp_path / "i.npz"))
    np.testing.assert_allclose(loaded.attribute("probability"), [[0.5, 0.5]] * 3 + [[0.1, 0.9]])
    assert loaded.ids.tolist() == [0, 1, 2, 3]
    plain = RetrievalIndex.load(RetrievalIndex.build(vectors).save(tmp_path / "plain.npz"))
    assert plain.attribute_names == ()
