"""The region filter of a site's own SCU-Net (medlim.mammography.regions): hand-computed features, thresholds, maps."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.mammography.regions import (
    REGION_FEATURES,
    FilterEffect,
    RegionFilter,
    RegionTable,
    apply_region_filter,
    filter_regions,
    fit_region_filter,
    keeping_threshold,
    region_filter_from_params,
    region_table,
)

F = {name: i for i, name in enumerate(REGION_FEATURES)}


def _view() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 60×80 view: a 1 px line of 20 px at grey 200 (BAC in the mask) and a 1 px column of 5 px at 110, on grey 100."""
    p = np.zeros((60, 80), np.float32)
    grey = np.full((60, 80), 100, np.uint8)
    p[20, 10:30] = 0.9
    grey[20, 10:30] = 200
    p[38:43, 50] = 0.6
    grey[38:43, 50] = 110
    truth = np.zeros((60, 80), bool)
    truth[20, 10:30] = True
    return p, grey, truth


def test_features_of_a_straight_line_and_a_faint_short_one_by_hand() -> None:
    p, grey, truth = _view()
    table = region_table(p, grey, floor=0.5, spacing_mm=0.1, truth=truth, group="patient:a")
    assert len(table) == 2 and table.groups == ("patient:a", "patient:a")
    np.testing.assert_array_equal(table.pixels, [20, 5])
    np.testing.assert_array_equal(table.bac_pixels, [20, 0])
    np.testing.assert_array_equal(table.is_bac, [True, False])
    line = table.features[0]
    # skeleton: the line itself, 19 links of 1 px
    assert line[F["log_length"]] == pytest.approx(math.log(19 * 0.1 + 0.05))
    assert line[F["width_mm"]] == pytest.approx(20 / 19 * 0.1)
    assert line[F["linearity"]] == pytest.approx(1.0)       # every skeleton pixel on one row
    assert line[F["tortuosity"]] == pytest.approx(19 / (4 * math.sqrt(35.0)))  # var of 0..19 (ddof 1) = 35
    assert line[F["elongation"]] == pytest.approx(4 * math.sqrt((20 ** 2 - 1) / 12))  # minor axis 0 → ÷ 1
    assert line[F["solidity"]] == pytest.approx(1.0) and line[F["extent"]] == pytest.approx(1.0)
    assert line[F["branches_per_mm"]] == 0.0
    # uniform grey 200 in a uniform ring of 100: contrast 100 in units of (ring std 0 + 1)
    assert line[F["contrast_z"]] == pytest.approx(100.0) and line[F["peak_contrast_z"]] == pytest.approx(100.0)
    assert line[F["spread_ratio"]] == 0.0 and line[F["skeleton_minus_rim_z"]] == 0.0
    short = table.features[1]
    assert short[F["contrast_z"]] == pytest.approx(10.0)
    assert short[F["width_mm"]] == pytest.approx(5 / 4 * 0.1)  # 4 links
    assert short[F["log_length"]] == pytest.approx(math.log(4 * 0.1 + 0.05))


def _contrast_filter(floor: float = 0.5) -> RegionFilter:
    """Keeps a region when its contrast_z exceeds 50: sigmoid(contrast_z − 50) ≥ 0.5."""
    coef = [0.0] * len(REGION_FEATURES)
    coef[F["contrast_z"]] = 1.0
    width = len(REGION_FEATURES)
    return RegionFilter(floor=floor, mean=(0.0,) * width, scale=(1.0,) * width, coef=tuple(coef), intercept=-50.0,
                        threshold=0.5, spacing_mm=0.1)


def test_the_filter_zeroes_regions_it_judges_tissue_and_leaves_the_rest_of_the_map() -> None:
    p, grey, _truth = _view()
    p[5, 5] = 0.3  # below the floor: no region, left as it is
    filtered = filter_regions(p, grey, _contrast_filter(), spacing_mm=None)
    expected = p.copy()
    expected[38:43, 50] = 0.0  # contrast 10 < 50
    np.testing.assert_array_equal(filtered, expected)
    assert filter_regions(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), _contrast_filter(), 0.1).sum() == 0


def test_the_filter_accounts_for_what_it_dropped_by_hand() -> None:
    p, grey, _truth = _view()
    p[5, 5] = 0.3  # below the floor: not a region
    filtered, effect = apply_region_filter(p, grey, _contrast_filter(), spacing_mm=0.1)
    np.testing.assert_array_equal(filtered, filter_regions(p, grey, _contrast_filter(), spacing_mm=0.1))
    # two regions of p > 0.5; the 5 px column (contrast 10) dropped: 5 px × 0.1 mm × 0.1 mm = 0.05 mm²
    assert effect == FilterEffect(floor=0.5, regions=2, dropped=1, dropped_px=5, dropped_mm2=0.05)
    assert effect.text == "dropped 1 of 2 regions of p > 0.5 as tissue (0.05 mm², 5 px)"
    assert FilterEffect.from_dict(effect.to_dict()) == effect
    # without a spacing: pixels only; a filter that keeps both; a map with no region at all
    _, no_spacing = apply_region_filter(p, grey, _contrast_filter(), spacing_mm=None)
    assert (no_spacing.dropped_mm2, no_spacing.text) == (None, "dropped 1 of 2 regions of p > 0.5 as tissue (5 px)")
    keep_both = replace(_contrast_filter(), intercept=-5.0)  # keeps a region of contrast_z above 5
    _, lenient = apply_region_filter(p, grey, keep_both, spacing_mm=(0.1, 0.2))
    assert (lenient.dropped, lenient.dropped_px, lenient.dropped_mm2) == (0, 0, 0.0)
    assert lenient.text == "kept all 2 regions of p > 0.5"
    _, empty = apply_region_filter(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), _contrast_filter(), 0.1)
    assert (empty.regions, empty.dropped, empty.text) == (0, 0, "no region of p > 0.5 to judge")


def test_keeping_threshold_keeps_the_share_of_bac_pixels_asked_for() -> None:
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    bac = np.array([100, 0, 50, 10])  # 160 px: 100, 100, 150, 160 cumulated in score order
    assert keeping_threshold(scores, bac, 0.95) == 0.1   # 152 px needed
    assert keeping_threshold(scores, bac, 0.9) == 0.3    # 144 px
    assert keeping_threshold(scores, bac, 0.5) == 0.9    # 80 px
    assert keeping_threshold(scores, np.zeros(4, int), 0.95) == 0.0


def _table(n: int, groups: int) -> RegionTable:
    """``n`` BAC regions of contrast 60–80 and ``n`` tissue regions of contrast 5–25, 10 px each
    (8 of BAC in each BAC region, none in the others)."""
    features = np.zeros((2 * n, len(REGION_FEATURES)))  # every other feature constant (its scale falls back to 1)
    features[:n, F["contrast_z"]] = np.linspace(60, 80, n)
    features[n:, F["contrast_z"]] = np.linspace(5, 25, n)
    bac = np.r_[np.full(n, 8), np.full(n, 0)]
    return RegionTable(features=features, pixels=np.full(2 * n, 10), bac_pixels=bac,
                       groups=tuple(f"patient:{i % groups}" for i in range(2 * n)))


def test_fit_separates_by_contrast_with_grouped_thresholds_and_refuses_too_few_regions() -> None:
    fitted, record = fit_region_filter(_table(20, 4), floor=0.4, spacing_mm=0.07)
    assert fitted is not None and fitted.floor == 0.4 and fitted.spacing_mm == 0.07
    assert record["threshold_from"] == "out-of-fold scores, 4 folds by group" and record["groups"] == 4
    assert record["bac_regions"] == 20 and record["other_regions"] == 20
    # separable; the highest threshold keeping ≥ 95 % of 20 equal BAC regions keeps 19 of them (out of fold), and
    # no tissue region: the kept false pixels are the 19 kept BAC regions' 2 px each
    assert record["bac_pixels_kept"] == 0.95
    assert record["false_pixels_removed"] == round(1.0 - (19 * 2) / (20 * 2 + 20 * 10), 4)  # recorded to 4 places
    scores = fitted.scores(_table(20, 4).features)
    assert (scores[20:] < fitted.threshold).all() and (scores[:20] >= fitted.threshold).sum() >= 19
    one_group, record = fit_region_filter(_table(20, 1), floor=0.4, spacing_mm=0.07)
    assert one_group is not None and record["threshold_from"] == "in-sample scores (one group only)"
    none, record = fit_region_filter(_table(5, 2), floor=0.4, spacing_mm=0.07)
    assert none is None and "fewer than 8" in record["skipped"]


def test_the_manifest_round_trip_and_malformed_filters_refused() -> None:
    original = _contrast_filter(0.3)
    assert region_filter_from_params({"region_filter": original.to_json()}) == original
    assert region_filter_from_params({}) is None
    bad = {**original.to_json(), "features": ["contrast_z"]}
    with pytest.raises(ParameterError, match="other features"):
        region_filter_from_params({"region_filter": bad})
    with pytest.raises(ParameterError, match="malformed"):
        region_filter_from_params({"region_filter": {**original.to_json(), "threshold": "high"}})
    with pytest.raises(ParameterError):
        RegionFilter(floor=0.5, mean=(0.0,) * 15, scale=(0.0,) * 15, coef=(0.0,) * 15, intercept=0.0, threshold=0.5,
                     spacing_mm=0.1)


def test_beyond_the_region_limit_only_the_largest_regions_are_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    import medlim.mammography.regions as regions

    p, grey, _truth = _view()
    p[50, 60] = p[50, 70] = 0.7  # two 1-px specks at grey 100: contrast 0, judged tissue when measured
    reject_faint = _contrast_filter()
    both_measured = filter_regions(p, grey, reject_faint, spacing_mm=None)
    assert both_measured[50, 60] == 0 and both_measured[50, 70] == 0 and both_measured[38:43, 50].sum() == 0
    monkeypatch.setattr(regions, "MAX_REGIONS", 2)  # 4 regions: the 20 px and 5 px lines are judged, the specks kept
    capped = filter_regions(p, grey, reject_faint, spacing_mm=None)
    expected = p.copy()
    expected[38:43, 50] = 0.0  # the 5 px line, contrast 10, still judged and dropped
    np.testing.assert_array_equal(capped, expected)
    effect = apply_region_filter(p, grey, reject_faint, spacing_mm=None)[1]
    assert (effect.regions, effect.dropped, effect.dropped_px) == (4, 1, 5)  # the unjudged specks count as kept
