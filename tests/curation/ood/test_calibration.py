"""Metrics and the G-mean threshold on hand-computed cases (OOD = positive)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.ood.calibration import (
    auroc,
    average_precision,
    fpr_at_tpr,
    gmean_threshold,
    ood_metrics,
    rates_at,
    roc_curve,
)
from medlim.errors import ParameterError

# 3 ID (0) and 3 OOD (1); one ID outranks one OOD.
LABELS = np.array([0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])


def test_roc_points_by_hand() -> None:
    curve = roc_curve(LABELS, SCORES)
    # thresholds inf, .9, .8, .7, .6, .2, .1
    np.testing.assert_allclose(curve.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(curve.fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])


def test_auroc_is_the_pair_ranking_probability() -> None:
    # 9 OOD-ID pairs, one mis-ordered (0.6 < 0.7): 8/9
    assert auroc(LABELS, SCORES) == pytest.approx(8 / 9)
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie counts one half


def test_gmean_threshold_and_rates() -> None:
    t, tpr, fpr = gmean_threshold(LABELS, SCORES)
    # candidates: s≥.8: sqrt(2/3*1)=.816; s≥.6: sqrt(1*2/3)=.816 → first (higher) wins;
    # any t in (.7, .8] gives it, the midpoint .75 is returned
    assert (t, tpr, fpr) == (pytest.approx(0.75), pytest.approx(2 / 3), pytest.approx(0.0))
    assert rates_at(LABELS, SCORES, t) == (pytest.approx(2 / 3), pytest.approx(0.0))
    assert rates_at(LABELS, SCORES, 0.6) == (pytest.approx(1.0), pytest.approx(1 / 3))


def test_fpr_at_95_tpr_and_average_precision() -> None:
    assert fpr_at_tpr(LABELS, SCORES, tpr=0.95) == pytest.approx(1 / 3)
    # ranks: .9 P, .8 P, .7 N, .6 P → AP = (1 + 1 + 3/4)/3
    assert average_precision(LABELS, SCORES) == pytest.approx((1 + 1 + 0.75) / 3)


def test_ood_metrics_bundle() -> None:
    m = ood_metrics(LABELS, SCORES)
    assert m.diff == pytest.approx(m.tpr - m.fpr)
    assert (m.n_id, m.n_ood) == (3, 3)


def test_one_class_only_is_refused() -> None:
    with pytest.raises(ParameterError, match="both ID and OOD"):
        auroc(np.array([1, 1]), np.array([0.1, 0.2]))
    with pytest.raises(ParameterError, match="0 \\(ID\\) or 1"):
        auroc(np.array([0, 2]), np.array([0.1, 0.2]))
