"""Retrieval metrics on tiny hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.retrieval.metrics import (
    class_auc,
    hit_rate_at_k,
    precision_at_k,
    relevance_multilabel,
    relevance_single,
    sensitivity_at_k,
)
from medlim.errors import ParameterError


def test_single_label_precision_hit_rate_and_sensitivity() -> None:
    items = np.array([0, 0, 1, 1])
    ranked = np.array([[1, 2, 3], [2, 3, 0]])  # queries: item 0 (class 0) and item 1... here class 0 and class 0
    relevant = relevance_single(np.array([0, 0]), items, ranked)
    assert relevant.tolist() == [[True, False, False], [False, False, True]]
    assert precision_at_k(relevant, 1) == pytest.approx(0.5)
    assert precision_at_k(relevant, 3) == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert hit_rate_at_k(relevant, 1) == pytest.approx(0.5)
    assert hit_rate_at_k(relevant, 3) == pytest.approx(1.0)
    anomaly = np.array([0.1, 0.5, 0.9, 0.2])
    # query 0 (A = 0.1): relevant item 1 → |0.5 − 0.1| = 0.4 ; query 1 (A = 0.5): relevant item 0 at rank 3 → 0.4
    assert sensitivity_at_k(relevant, 3, np.array([0.1, 0.5]), anomaly, ranked) == pytest.approx(0.4)
    # at K = 1 only query 0 has a relevant item
    assert sensitivity_at_k(relevant, 1, np.array([0.1, 0.5]), anomaly, ranked) == pytest.approx(0.4)
    with pytest.raises(ParameterError):
        precision_at_k(relevant, 4)


def test_multilabel_full_and_partial_match() -> None:
    items = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1, 0]])
    query = np.array([[1, 1, 0]])
    ranked = np.array([[0, 1, 2, 3]])
    assert relevance_multilabel(query, items, ranked, mode="full").tolist() == [[False, True, False, True]]
    assert relevance_multilabel(query, items, ranked, mode="partial").tolist() == [[True, True, True, True]]
    with pytest.raises(ParameterError):
        relevance_multilabel(query, items, ranked, mode="loose")


def test_class_auc_by_hand() -> None:
    labels = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    probabilities = np.array([[0.9, 0.2], [0.1, 0.3], [0.4, 0.6], [0.5, 0.1]])
    out = class_auc(labels, probabilities, names=("a", "b"))
    # class a: positives 0.9, 0.4 vs negatives 0.1, 0.5 → pairs won 3 of 4
    assert out["a"] == pytest.approx(0.75)
    # class b: positives 0.6, 0.1 vs negatives 0.2, 0.3 → pairs won 2 of 4
    assert out["b"] == pytest.approx(0.5)
    assert out["macro"] == pytest.approx(0.625)
    assert out["weighted"] == pytest.approx(0.625)  # equal support
    constant = class_auc(np.array([[1, 0], [1, 1]]), np.array([[0.2, 0.1], [0.3, 0.9]]), names=("a", "b"))
    assert np.isnan(constant["a"]) and constant["macro"] == pytest.approx(1.0)
