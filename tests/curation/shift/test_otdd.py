"""OTDD on tiny point clouds with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.curation.shift.otdd import joint_cost, label_distances, otdd, otdd_per_class, otdd_repeated
from medlim.errors import ParameterError


def test_identical_datasets_are_at_distance_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = np.arange(12) % 3
    assert otdd(x, y, x, y) == pytest.approx(0.0, abs=1e-12)
    assert otdd(x, y, x, y, p=2) == pytest.approx(0.0, abs=1e-6)


def test_w2_between_class_clouds_by_hand() -> None:
    # class 0: {0, 2} vs {1, 3} -> each point moves by 1 -> W2² = 1; class 1: {10} vs {13} -> 9
    xa = np.array([[0.0], [2.0], [10.0]])
    xb = np.array([[1.0], [3.0], [13.0]])
    classes_a, classes_b, w2 = label_distances(xa, np.array([0, 0, 1]), xb, np.array([0, 0, 1]))
    assert classes_a.tolist() == [0, 1] and classes_b.tolist() == [0, 1]
    assert w2[0, 0] == pytest.approx(1.0)
    assert w2[1, 1] == pytest.approx(9.0)
    # {0, 2} vs {13}: (13² + 11²) / 2 = 145
    assert w2[0, 1] == pytest.approx(145.0)


def test_shifted_pair_by_hand() -> None:
    # A = {0 (y0), 1 (y1)}, B = {3 (y0), 4 (y1)}: W2² = [[9, 16], [4, 9]];
    # d(0,3) = √18, d(0,4) = √32, d(1,3) = √8, d(1,4) = √18; both couplings cost 3√2
    xa, ya = np.array([[0.0], [1.0]]), np.array([0, 1])
    xb, yb = np.array([[3.0], [4.0]]), np.array([0, 1])
    cost = joint_cost(xa, ya, xb, yb)
    assert cost == pytest.approx(np.sqrt([[18.0, 32.0], [8.0, 18.0]]))
    assert otdd(xa, ya, xb, yb) == pytest.approx(3 * math.sqrt(2))
    # p = 2: min over couplings of mean d² = min((18 + 18)/2, (32 + 8)/2) = 18 -> √18
    assert otdd(xa, ya, xb, yb, p=2) == pytest.approx(math.sqrt(18))


def test_labels_are_compared_by_their_feature_clouds() -> None:
    # B swaps the label names; the clouds match the other way round, so the distance is 0
    xa, ya = np.array([[0.0], [1.0]]), np.array([0, 1])
    xb, yb = np.array([[0.0], [1.0]]), np.array([1, 0])
    assert otdd(xa, ya, xb, yb) == pytest.approx(0.0, abs=1e-12)


def test_label_term_adds_to_the_feature_distance() -> None:
    # one point each; same position, classes whose clouds are 2 apart: d = √(0 + W2²) but the
    # clouds are the single points themselves, so make each class a 2-point cloud
    xa = np.array([[0.0], [0.0], [5.0]])
    ya = np.array([0, 0, 1])
    xb = np.array([[0.0], [0.0], [7.0]])
    yb = np.array([0, 0, 1])
    # W2²(0,0) = 0, W2²(1,1) = 4: matching 5 -> 7 costs √(4 + 4) = √8; zeros cost 0
    assert otdd(xa, ya, xb, yb) == pytest.approx(math.sqrt(8) / 3)


def test_repeats_and_cap() -> None:
    rng = np.random.default_rng(1)
    xa, ya = rng.normal(size=(40, 2)), np.arange(40) % 2
    xb, yb = rng.normal(size=(30, 2)) + 1.0, np.arange(30) % 2
    capped = otdd_repeated(xa, ya, xb, yb, max_samples=10, repeats=4, seed=3)
    assert (capped.n_a, capped.n_b, capped.repeats) == (10, 10, 4)
    assert capped.mean == pytest.approx(np.mean(capped.values)) and capped.std > 0
    full = otdd_repeated(xa, ya, xb, yb, max_samples=100, repeats=3)
    assert full.std == pytest.approx(0.0) and full.mean == pytest.approx(otdd(xa, ya, xb, yb))
    assert otdd_repeated(xa, ya, xb, yb, max_samples=10, repeats=4, seed=3) == capped


def test_per_class_multilabel() -> None:
    xa = np.array([[0.0], [1.0], [2.0], [3.0]])
    la = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    result = otdd_per_class(xa, la, xa, la, class_names=["a", "b"], repeats=2)
    assert set(result) == {"a", "b"}
    assert all(r.mean == pytest.approx(0.0, abs=1e-12) for r in result.values())


def test_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="labels"):
        otdd(np.zeros((3, 2)), np.zeros(2), np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ParameterError, match="`p`"):
        otdd(np.zeros((3, 2)), np.zeros(3), np.zeros((3, 2)), np.zeros(3), p=3)
    with pytest.raises(ParameterError, match="max_samples"):
        otdd_repeated(np.zeros((3, 2)), np.zeros(3), np.zeros((3, 2)), np.zeros(3), max_samples=0)
