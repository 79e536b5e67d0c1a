"""PMS: DS by hand, the exact search equals a brute-force loop, memory bank FIFO, loss by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.curation.retrieval.pms import (
    MemoryBank,
    PmsCollection,
    classification_loss,
    dissimilarity,
    imbalance_ratios,
    pms_loss,
)
from medlim.errors import ParameterError


def test_dissimilarity_by_hand() -> None:
    s_q, p_q = np.array([0.5, -0.2]), np.array([0.9, 0.1])
    items = np.array([[0.5, -0.2], [0.1, 0.3], [0.7, -0.2]])
    # weighted: 0.9·|0.5−s1| + 0.1·|−0.2−s2|
    np.testing.assert_allclose(dissimilarity(s_q, p_q, items), [0.0, 0.9 * 0.4 + 0.1 * 0.5, 0.9 * 0.2])
    np.testing.assert_allclose(dissimilarity(s_q, None, items), [0.0, 0.9, 0.2])


def test_weighted_ds_barely_separates_supersets() -> None:
    # classes (A, B, C); a present class sits at s = 1.0, an absent one at 0.2
    # query {A}; items: {A} (exact), {A, B} (superset), {B}
    s_q = np.array([1.0, 0.2, 0.2])
    items = np.array([[1.0, 0.2, 0.2], [1.0, 1.0, 0.2], [0.2, 1.0, 0.2]])
    # unweighted: 0, |0.2−1.0| = 0.8, 0.8 + 0.8 = 1.6 → the exact match is well ahead
    np.testing.assert_allclose(dissimilarity(s_q, None, items), [0.0, 0.8, 1.6])
    # a certain classifier (p = 1, 0, 0): exact match and superset tie at DS 0
    np.testing.assert_allclose(dissimilarity(s_q, np.array([1.0, 0.0, 0.0]), items), [0.0, 0.0, 0.8])
    # p = 0.9, 0.05, 0.05: only p_B·0.8 = 0.04 separates the superset; {B}: 0.9·0.8 + 0.05·0.8 = 0.76
    np.testing.assert_allclose(dissimilarity(s_q, np.array([0.9, 0.05, 0.05]), items), [0.0, 0.04, 0.76])


def _brute_force(similarity: np.ndarray, s_q: np.ndarray, p_q: np.ndarray | None, k: int, skip: int = -1) -> list[int]:
    scored = []
    for t in range(len(similarity)):
        if t == skip:
            continue
        ds = sum((1.0 if p_q is None else p_q[i]) * abs(s_q[i] - similarity[t, i]) for i in range(len(s_q)))
        scored.append((ds, t))
    return [t for _, t in sorted(scored)[:k]]


@pytest.mark.parametrize("weighted", [True, False])
def test_search_returns_the_brute_force_ranking(weighted: bool) -> None:
    rng = np.random.default_rng(5)
    # coarse values make many exact ties, so the tie rule (item position) is exercised
    similarity = rng.integers(-4, 5, size=(400, 6)) / 4.0
    queries = rng.integers(-4, 5, size=(25, 6)) / 4.0
    probabilities = rng.integers(0, 5, size=(25, 6)) / 4.0
    collection = PmsCollection(similarity)
    found = collection.search(queries, probabilities if weighted else None, 37)
    for q in range(len(queries)):
        assert found.ids[q].tolist() == _brute_force(similarity, queries[q], probabilities[q] if weighted else None, 37)
    excluded = collection.search(queries[:3], None, 5, exclude=np.array([0, -1, 7]))
    assert excluded.ids[0].tolist() == _brute_force(similarity, queries[0], None, 5, skip=0)
    assert excluded.ids[2].tolist() == _brute_force(similarity, queries[2], None, 5, skip=7)


def test_search_reports_item_ids_and_caps_k() -> None:
    collection = PmsCollection(np.array([[0.0], [1.0], [0.4]]), ids=np.array([10, 20, 30]))
    found = collection.search(np.array([[0.5]]), np.array([[1.0]]), 10)
    assert found.ids.tolist() == [[30, 10, 20]]  # 10 and 20 tie at 0.5: the earlier item first
    np.testing.assert_allclose(found.distances, [[0.1, 0.5, 0.5]])
    with pytest.raises(ParameterError):
        collection.search(np.array([[0.5, 0.1]]), None, 1)


def test_memory_bank_is_fifo_per_class() -> None:
    bank = MemoryBank(2, 1, size=2)
    e = torch.tensor([[[1.0], [10.0]], [[2.0], [20.0]], [[3.0], [30.0]]])
    y = torch.tensor([[1, 0], [1, 1], [1, 0]])
    bank.push(e, y)
    # class 0 saw 1, 2, 3 with room for two: 1 was overwritten by 3; class 1 saw only 20
    assert sorted(bank.bank[0, :, 0].tolist()) == [2.0, 3.0]
    np.testing.assert_allclose(bank.proxies()[:, 0].numpy(), [2.5, 20.0])
    bank.freeze()
    bank.push(e, y)
    np.testing.assert_allclose(bank.proxies()[:, 0].numpy(), [2.5, 20.0])


def test_pms_loss_by_hand() -> None:
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # sample 0 positive for class 0 (cos 1 with c0) and negative for class 1 (cos 0 with c1)
    # sample 1 negative for class 0 (cos −1) and positive for class 1 (cos 0)
    e = torch.tensor([[[2.0, 0.0], [1.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]])
    y = torch.tensor([[1, 0], [0, 1]])
    tau = torch.tensor([0.25, 0.75])
    # L_pos = (1−0.25)(1−1) + (1−0.75)(1−0) = 0.25 ; L_neg = 0.25·|−1−(−1)| + 0.75·|−1−0| = 0.75
    assert float(pms_loss(e, y, proxies, tau)) == pytest.approx((0.25 + 0.75) / 2)


def test_classification_loss_and_ratios() -> None:
    p = torch.tensor([[0.5, 0.5]])
    assert float(classification_loss(p, torch.tensor([[1, 0]]))) == pytest.approx(2 * np.log(2), rel=1e-5)
    np.testing.assert_allclose(imbalance_ratios(np.array([[1, 0], [1, 1], [0, 0], [1, 0]])), [0.75, 0.25])
