"""1-D k-means groups and the elbow rule."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.shift.grouping import distortion_curve, elbow_k, group_scores, kmeans_1d, top_mask
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


def test_elbow_of_a_two_slope_curve_is_its_kink() -> None:
    # distortion falls by 20 per k up to k = 5, then by 2: the elbow is known to be 5.
    # normalised: y = (D - 14) / 86 = 1, .767, .535, .302, .070, .047, .023, 0; x = (k - 1) / 7;
    # chord 1 - x = 1, .857, .714, .571, .429, .286, .143, 0;
    # gaps = 0, .090, .179, .269, .359, .239, .120, 0 -> k = 5
    ks = list(range(1, 9))
    assert elbow_k(ks, [100.0, 80.0, 60.0, 40.0, 20.0, 18.0, 16.0, 14.0]) == 5
    # a kink at k = 3: y = (D − 18)/72 = 1, .583, .167, .125, .083, .042, 0; chord 1 − (k − 1)/6;
    # gaps 0, .250, .500, .375, .250, .125, 0
    assert elbow_k(list(range(1, 8)), [90.0, 60.0, 30.0, 27.0, 24.0, 21.0, 18.0]) == 3
    # scale-free: multiplying or shifting the curve does not move the elbow
    assert elbow_k(ks, [7.0 * d + 3.0 for d in (100.0, 80.0, 60.0, 40.0, 20.0, 18.0, 16.0, 14.0)]) == 5


def test_distortion_curve_and_elbow_by_hand_on_five_pairs() -> None:
    # five pairs {0,1}, {10,11}, …, {40,41}; optimal 1-D partitions by hand:
    # k=1: Σ(x − 20.5)² = 2002.5; k=2: {0,1,10,11} (101) + the other six (401.5) = 502.5;
    # k=3: 101 + 0.5 + 101 = 202.5; k=4: 101 + 3·0.5 = 102.5; k=5: 5·0.5 = 2.5;
    # k=6, 7, 8 split pairs: 2.0, 1.5, 1.0
    scores = np.array([0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0])
    curve = distortion_curve(scores, range(1, 9))
    assert curve == pytest.approx([2002.5, 502.5, 202.5, 102.5, 2.5, 2.0, 1.5, 1.0])
    # the chord rule on this curve: y = (D − 1)/2001.5 = 1, .2506, .1007, .0507, .0007, …;
    # chord 1 − (k − 1)/7 = 1, .8571, .7143, .5714, .4286, …; gaps 0, .6066, .6136, .5207, .4278, …
    # -> k = 3, not the 5 pairs: the curve loses 75 %, 60 %, 49 % then 98 % of what is left,
    # and on linear axes the bend is at 3 (a log-scale reading would say 5). Stated, not tuned.
    grouping = group_scores(scores, ["hand"] * 10, k="auto", k_range=(1, 8))
    assert grouping.k == 3 and grouping.class_elbows == {"hand": 3}
    assert grouping.distortion == pytest.approx(curve / 2002.5)


def test_elbow_of_the_uniform_score_curve_is_two() -> None:
    # uniform 1-D scores: k equal bins are optimal and D(k) = D(1) / k². Over k = 1…8:
    # y = (1/k² − 1/64) / (63/64) = 1, .2381, .0970, .0476, …; chord 1 − (k − 1)/7 = 1, .8571, .7143, .5714, …;
    # gaps 0, .6190, .6173, .5238, … -> k = 2, by a hair over 3: why the rule says 2 or 3 on most score sets
    ks = list(range(1, 9))
    assert elbow_k(ks, [1.0 / k**2 for k in ks]) == 2
    scores = (np.arange(8 * 7 * 5 * 3 * 4) + 0.5) / 1680.0  # evenly spread, divisible into 1…8 equal bins
    curve = distortion_curve(scores, ks)
    # within 1 %: scikit-learn's k-means is a local search and stops up to 0.4 % above equal bins at k ≥ 5
    assert curve == pytest.approx(curve[0] / np.array(ks, float) ** 2, rel=1e-2)
    assert elbow_k(ks, curve) == 2


def test_elbow_curve_is_the_mean_of_per_class_curves_normalised_at_k_min() -> None:
    # class b is class a scaled by 1000: after dividing by D(k=1) both curves are equal,
    # so the mean curve and the shared k are those of a alone
    a = np.array([0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0])
    both = group_scores(np.concatenate([a, 1000.0 * a]), ["a"] * 10 + ["b"] * 10, k="auto", k_range=(1, 8))
    alone = group_scores(a, ["a"] * 10, k="auto", k_range=(1, 8))
    assert both.distortion == pytest.approx(alone.distortion) and both.k == alone.k
    # two classes with different own elbows: the shared k comes from the averaged curve
    three = np.concatenate([np.full(4, c) + np.array([0.0, 0.1, 0.2, 0.3]) for c in (0.0, 10.0, 20.0)])
    two = np.concatenate([np.full(6, c) + np.linspace(0.0, 0.3, 6) for c in (0.0, 10.0)])
    mixed = group_scores(np.concatenate([three, two]), ["three"] * 12 + ["two"] * 12, k="auto", k_range=(1, 6))
    assert mixed.class_elbows == {"three": 3, "two": 2}
    curves = [distortion_curve(x, range(1, 7)) for x in (three, two)]
    mean = (curves[0] / curves[0][0] + curves[1] / curves[1][0]) / 2
    assert mixed.distortion == pytest.approx(mean) and mixed.k == elbow_k(range(1, 7), mean)


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


def test_log_scale_groups_by_score_ratio() -> None:
    # Scores 1, 1.2, 10, 12, 100, 1000 of one class, k = 2.
    # Raw scale: 1000 alone is its own group (the other split leaves far more spread).
    # Log scale: logs 0, 0.18, 2.30, 2.48, 4.61, 6.91; splitting after 12 leaves
    # SS 5.32 + 2.65 = 7.97, against 14.0 after 1.2 and 14.4 after 100, so
    # {1, 1.2, 10, 12} | {100, 1000}, with geometric-mean centres 144^(1/4) and √100000.
    from medlim.curation.shift.grouping import group_scores

    scores = np.array([1.0, 1.2, 10.0, 12.0, 100.0, 1000.0])
    classes = ["hand"] * 6
    raw = group_scores(scores, classes, k=2)
    log = group_scores(scores, classes, k=2, scale="log")
    assert raw.groups.tolist() == [0, 0, 0, 0, 0, 1]
    assert log.groups.tolist() == [0, 0, 0, 0, 1, 1]
    np.testing.assert_allclose(log.per_class["hand"].centres, [144 ** 0.25, 100000 ** 0.5], rtol=1e-9)
    with pytest.raises(ParameterError):
        group_scores(scores, classes, k=2, scale="sqrt")


def test_shift_config_defaults_to_log_grouping() -> None:
    from medlim.curation.shift.pipeline import ShiftConfig

    assert ShiftConfig().group_scale == "log"
    with pytest.raises(ParameterError):
        ShiftConfig(group_scale="linear")


def test_anchored_lowest_group_is_what_scores_below_the_floor() -> None:
    # Scores 1, 1.2, 3, 1000 of one class, k = 2, log scale: logs 0, 0.18, 1.10, 6.91. k-means alone splits
    # {1, 1.2, 3} | {1000} (SS 0.65 against 5.4 after 1.2), so the 3 — above the floor 2 — stays in the lowest group.
    # Anchored at 2: group 0 = {1, 1.2} (geometric centre √1.2), group 1 = {3, 1000} (centre √3000).
    scores = np.array([1.0, 1.2, 3.0, 1000.0])
    plain = group_scores(scores, ["hand"] * 4, k=2, scale="log")
    assert plain.groups.tolist() == [0, 0, 0, 1] and plain.floors == {}
    anchored = group_scores(scores, ["hand"] * 4, k=2, scale="log", floors={"hand": 2.0})
    assert anchored.groups.tolist() == [0, 0, 1, 1] and anchored.floors == {"hand": 2.0}
    np.testing.assert_allclose(anchored.per_class["hand"].centres, [1.2 ** 0.5, 3000 ** 0.5], rtol=1e-9)
    # k = 3: the four scores 1, 1.2, 10, 12 / 100, 1000 above a floor of 5 go to two k-means groups: logs 2.30, 2.48,
    # 4.61, 6.91 split after 12 (SS 0.016 + 2.65) rather than after 10 (9.8) or 100 (3.3)
    six = group_scores(np.array([1.0, 1.2, 10.0, 12.0, 100.0, 1000.0]), ["hand"] * 6, k=3, scale="log",
                       floors={"hand": 5.0})
    assert six.groups.tolist() == [0, 0, 1, 1, 2, 2]


def test_anchored_grouping_edge_cases() -> None:
    scores = np.array([3.0, 4.0, 0.5, 0.7])
    classes = ["hand", "hand", "knee", "knee"]
    # hand: nothing below its floor → an empty group 0 (NaN centre); knee: nothing above → all in group 0
    grouping = group_scores(scores, classes, k=2, floors={"hand": 1.0, "knee": 1.0})
    assert grouping.groups.tolist() == [1, 1, 0, 0]
    assert np.isnan(grouping.per_class["hand"].centres[0]) and grouping.per_class["hand"].centres[1] == 3.5
    assert grouping.per_class["knee"].centres[0] == pytest.approx(0.6)
    # anchored grouping has at least 2 groups (k = 1 asked, or the elbow's candidates start at 2)
    assert group_scores(scores, classes, k=1, floors={"hand": 1.0, "knee": 1.0}).k == 2
    auto = group_scores(np.r_[np.linspace(0.1, 0.9, 20), np.linspace(5, 9, 20)], ["hand"] * 40,
                        floors={"hand": 1.0})
    assert auto.ks[0] == 2 and auto.k >= 2 and (auto.groups[:20] == 0).all() and (auto.groups[20:] > 0).all()
    # a class without a floor is grouped by k-means alone
    mixed = group_scores(scores, classes, k=2, floors={"hand": 1.0})
    assert mixed.groups.tolist() == [1, 1, 0, 1] and mixed.floors == {"hand": 1.0}


def test_shift_config_anchors_the_lowest_group_by_default() -> None:
    from medlim.curation.shift.pipeline import ShiftConfig
    from medlim.curation.shift.service import ShiftRunConfig

    assert ShiftConfig().group_anchor == "threshold" and ShiftRunConfig().group_anchor == "threshold"
    assert "--group-anchor" in ShiftRunConfig(group_anchor="none").command_options()
    with pytest.raises(ParameterError):
        ShiftConfig(group_anchor="median")
    with pytest.raises(ParameterError):
        ShiftRunConfig(group_anchor="median")
