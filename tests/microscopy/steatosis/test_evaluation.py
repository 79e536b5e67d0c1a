"""Table 3.2 protocol: AP, matching in score order (medlim.microscopy.steatosis.evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.microscopy.steatosis.evaluation import average_precision, evaluate_methods, ranked_matches, score_labels


def test_average_precision_hand_computed() -> None:
    # Ranked: TP, FP, TP with 3 truths → PR points (1/3, 1), (1/3, 1/2), (2/3, 2/3);
    # envelope 1, 2/3 → AP = 1/3·1 + 1/3·2/3 = 5/9.
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3) == pytest.approx(5 / 9)
    # No scores (ties): one operating point P = R = 1/2 → AP = P·R.
    assert average_precision(np.ones(2), np.array([True, False]), 2) == pytest.approx(0.25)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 0) == 1.0
    assert average_precision(np.zeros(0), np.zeros(0, bool), 4) == 0.0


def test_ranked_matches_give_each_truth_once() -> None:
    truth = np.zeros((10, 10), np.int32)
    truth[0:4, 0:4] = 1
    pred = np.zeros((10, 10), np.int32)
    pred[0:4, 0:4] = 1  # exact, low score
    pred[6:9, 6:9] = 2  # no truth there
    scores, hits, n_true = ranked_matches(truth, pred, np.array([0.3, 0.9]))
    assert n_true == 1
    assert scores.tolist() == [0.3, 0.9]
    assert hits.tolist() == [True, False]


def test_score_labels_perfect_and_min_score() -> None:
    truth = np.zeros((20, 20), np.int32)
    truth[2:8, 2:8] = 1
    truth[12:18, 12:18] = 2
    perfect = score_labels("x", 0, truth, truth, np.array([0.9, 0.8]))
    assert (perfect.ap, perfect.f1, perfect.jaccard) == (1.0, 1.0, 1.0)
    half = score_labels("x", 0, truth, truth, np.array([0.9, 0.2]), min_score=0.5)
    assert half.recall == 0.5 and half.precision == 1.0 and half.ap == 1.0


def test_evaluate_weak_labels_only_on_a_small_phantom() -> None:
    summary = evaluate_methods(None, seed=7, n=1, size=160)
    assert set(summary) >= {"weak", "weak_screened", "per_image", "protocol"}
    assert 0.0 <= summary["weak"]["f1"] <= 1.0
    assert "network" not in summary
