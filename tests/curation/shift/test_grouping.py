"""1-D k-means groups and the elbow rule."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.shift.grouping import elbow_k, group_scores, kmeans_1d, top_mask
from medlim.errors import ParameterError


def test_kmeans_orders_groups_by_ascending_centre() -> None:
    scores = np.array([10.0, 0.1, 5.0, 0.0, 10.2, 5.1, 0.2, 9.8])
    result = kmeans_1d(scores, 3)
    assert result.labels.tolist() == [2, 0, 1, 0, 2, 1, 0, 2]
    assert result.centres == pytest.approx([0.1, 5.05, 10.0])
    # inertia by hand: 0.01+0+0.01 + 0.0025*2 + 0+0.04+0.04
    assert result.inertia == pytest.approx(0.105)


def test_kmeans_caps_k_at_distinct_values() -> None:
    result = kmeans_1d(np.array([1.0, 1.0, 2.0]), 5)
    assert len(result.centres) == 2 and result.labels.tolist() == [0, 0, 1]
    single = kmeans_1d(np.array([3.0, 5.0]), 1)
    assert single.inertia == pytest.approx(2.0) and single.labels.tolist() == [0, 0]


def test_elbow_is_the_point_farthest_below_the_chord() -> None:
    # normalised: x = 0, .25, .5, .75, 1; y = 1, .3, .2, .1, 0; chord y = 1 - x
    # gaps: 0, .45, .3, .15, 0 -> k = 2
    assert elbow_k([1, 2, 3, 4, 5], [10.0, 3.0, 2.0, 1.0, 0.0]) == 2
    assert elbow_k([1, 2, 3, 4, 5], [10.0, 8.0, 6.0, 4.0, 2.0]) == 1  # straight line: no elbow
    assert elbow_k([1, 2], [5.0, 1.0]) == 1
    with pytest.raises(ParameterError):
        elbow_k([], [])


def test_group_scores_one_k_for_every_class() -> None:
    rng = np.random.default_rng(0)
    # three tight clusters per class -> elbow at k = 3
    a = np.concatenate([rng.normal(c, 0.05, 20) for c in (0.0, 1.0, 2.0)])
    b = np.concatenate([rng.normal(c, 0.05, 20) for c in (5.0, 7.0, 9.0)])
    classes = ["a"] * 60 + ["b"] * 60
    grouping = group_scores(np.concatenate([a, b]), classes, k="auto", k_range=(1, 6))
    assert grouping.k == 3 and grouping.auto
    assert grouping.distortion[0] == pytest.approx(1.0)
    assert np.bincount(grouping.groups[:60]).tolist() == [20, 20, 20]
    assert grouping.groups[np.argmax(b) + 60] == 2 and grouping.groups[np.argmin(a)] == 0
    fixed = group_scores(np.concatenate([a, b]), classes, k=5)
    assert fixed.k == 5 and not fixed.auto and fixed.groups.max() == 4


def test_top_mask_drops_the_highest_groups() -> None:
    groups = np.array([0, 1, 2, 0, 1, 2])
    classes = ["a", "a", "a", "b", "b", "b"]
    assert top_mask(groups, classes, 3, 3).all()
    assert top_mask(groups, classes, 3, 1).tolist() == [True, False, False, True, False, False]
    # class b has only 2 groups: TOP 2 of k = 3 drops its highest too
    assert top_mask(np.array([0, 1, 2, 0, 1, 1]), classes, 3, 2, {"a": 3, "b": 2}).tolist() == \
        [True, True, False, True, False, False]
    with pytest.raises(ParameterError):
        top_mask(groups, classes, 3, 4)


def test_bad_inputs() -> None:
    with pytest.raises(ParameterError, match="finite"):
        group_scores(np.array([1.0, np.nan]), ["a", "a"])
    with pytest.raises(ParameterError, match="classes"):
        group_scores(np.array([1.0, 2.0]), ["a"])
    with pytest.raises(ParameterError, match="`k`"):
        group_scores(np.array([1.0, 2.0]), ["a", "a"], k=0)
