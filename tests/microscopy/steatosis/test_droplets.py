"""Droplet features, cutoffs relative to a reference droplet, presets, tissue, grades (medlim.microscopy.steatosis.droplets)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.analysis import DETECTION_MIN_SCORE
from medlim.microscopy.steatosis.droplets import (
    BUILTIN_PRESETS,
    DEFAULT_CUTOFFS,
    DONOR_BANDS,
    NASH_CRN_BANDS,
    REFERENCES,
    THESIS_CUTOFFS,
    Cutoffs,
    DropletTable,
    apply_cutoffs,
    droplet_crowding,
    droplet_table,
    grade,
    kept_labels,
    reference_values,
    score_floors,
    tissue_mask,
)


def _table(area, perimeter, eccentricity, score, tissue_area=1000.0) -> DropletTable:
    n = len(area)
    return DropletTable(area=np.asarray(area, float), perimeter=np.asarray(perimeter, float),
                        eccentricity=np.asarray(eccentricity, float), score=np.asarray(score, float),
                        centroid=np.zeros((n, 2)), tissue_area=tissue_area)


def test_thesis_cutoffs_are_relative_to_the_mean_of_all_detections() -> None:
    # Means: area 100, perimeter 40, eccentricity 0.5.
    table = _table([10, 50, 140, 200], [10, 30, 50, 70], [0.05, 0.5, 0.6, 0.85], [0.9, 0.9, 0.4, 0.9])
    result = apply_cutoffs(table, Cutoffs(area=(0.2, 1.9), perimeter=(0.5, 2.0), eccentricity=(0.2, 1.5), min_score=0.5,
                                          reference="all-detections"))
    # 1: area 10 < 20 (and perimeter 10 < 20) → out; 2: in; 3: score 0.4 → out; 4: area 200 > 190 → out.
    assert result.means == {"area": 100.0, "perimeter": 40.0, "eccentricity": 0.5}
    assert result.kept.tolist() == [False, True, False, False]
    assert result.kept_count == 1 and result.detected == 4
    assert result.steatosis_fraction == pytest.approx(50 / 1000)


def test_thesis_preset_and_empty_table() -> None:
    cutoffs = BUILTIN_PRESETS["thesis"]
    assert cutoffs == THESIS_CUTOFFS
    assert (cutoffs.area, cutoffs.perimeter, cutoffs.eccentricity) == ((0.001, 6.0), (0.5, 4.0), (0.2, 1.5))
    assert (cutoffs.min_score, cutoffs.reference) == (0.5, "all-detections")
    empty = apply_cutoffs(_table([], [], [], []))
    assert empty.detected == 0 and empty.steatosis_fraction == 0.0


def _small_false_detections_and_one_huge_droplet() -> DropletTable:
    """90 faint 10 px² detections, 9 droplets of 100 px² and one of 2,000 px² (all scored 0.9), tissue 10,000 px².

    Mean area of all: (90·10 + 9·100 + 2000) / 100 = 38; of the ten scored ≥ 0.5: (900 + 2000) / 10 = 290.
    """
    area = [10.0] * 90 + [100.0] * 9 + [2000.0]
    return _table(area, [12.0] * 90 + [36.0] * 9 + [160.0], [0.5] * 100, [0.1] * 90 + [0.9] * 10,
                  tissue_area=10_000.0)


def test_the_thesis_rule_discards_the_largest_droplet_among_many_small_false_detections() -> None:
    table = _small_false_detections_and_one_huge_droplet()
    result = apply_cutoffs(table, THESIS_CUTOFFS)
    # 6 × 38 = 228 px² < 2,000 px²: the droplet holding two thirds of the fat is discarded.
    assert result.means["area"] == pytest.approx(38.0)
    assert result.kept.tolist() == [False] * 90 + [True] * 9 + [False]
    assert result.steatosis_fraction == pytest.approx(900 / 10_000)


def test_the_scored_reference_ignores_faint_detections() -> None:
    table = _small_false_detections_and_one_huge_droplet()
    cutoffs = Cutoffs(area=(0.001, 6.0), perimeter=(0.0, math.inf), eccentricity=(0.0, math.inf), min_score=0.5)
    assert cutoffs.reference == "scored"
    result = apply_cutoffs(table, cutoffs)
    # Reference = mean of the ten scored droplets: 290 px², perimeter (9·36 + 160) / 10 = 48.4; 6 × 290 = 1,740.
    assert result.means == pytest.approx({"area": 290.0, "perimeter": 48.4, "eccentricity": 0.5})
    assert reference_values(table, cutoffs) == result.means
    assert result.kept.tolist() == [False] * 90 + [True] * 9 + [False]  # 2,000 > 1,740: still too big at 6 ×
    wider = apply_cutoffs(table, replace(cutoffs, area=(0.001, 7.0)))  # 7 × 290 = 2,030 ≥ 2,000
    assert wider.kept.tolist() == [False] * 90 + [True] * 10
    assert wider.steatosis_fraction == pytest.approx(2900 / 10_000)
    # Nothing passes the score: reference 0, nothing kept.
    assert reference_values(table, replace(cutoffs, min_score=0.95)) == {"area": 0.0, "perimeter": 0.0,
                                                                          "eccentricity": 0.0}


def test_every_cutoff_at_its_widest_discards_nothing_whatever_the_reference() -> None:
    table = _small_false_detections_and_one_huge_droplet()
    for reference in REFERENCES:
        widest = Cutoffs(area=(0.0, math.inf), perimeter=(0.0, math.inf), eccentricity=(0.0, math.inf),
                         min_score=0.0, reference=reference)
        result = apply_cutoffs(table, widest)
        assert result.kept.all() and result.kept_count == 100
        assert result.steatosis_fraction == pytest.approx(3800 / 10_000)
    # An open upper limit holds even with a reference of 0 (no droplet passes the score): inf × 0 is no bound.
    assert not apply_cutoffs(table, Cutoffs(min_score=1.0)).kept.any()


def test_default_cutoffs_keep_isolated_droplets_from_a_fifth_and_crowded_ones_from_0_02() -> None:
    # Chosen on seven validation splits (benchmarks/eval_steatosis_cutoffs.py --crowding-grid): no feature limit,
    # score ≥ 0.2 for an isolated droplet, ≥ 0.02 in crowded fat.
    assert DEFAULT_CUTOFFS == Cutoffs() == BUILTIN_PRESETS["default"]
    assert DEFAULT_CUTOFFS.area == DEFAULT_CUTOFFS.perimeter == DEFAULT_CUTOFFS.eccentricity == (0.0, math.inf)
    assert (DEFAULT_CUTOFFS.min_score, DEFAULT_CUTOFFS.crowded_min_score, DEFAULT_CUTOFFS.reference) == (
        0.2, 0.02, "scored")
    assert DETECTION_MIN_SCORE <= DEFAULT_CUTOFFS.crowded_min_score  # the analysis returns what the floor may keep
    # Isolated droplets (centroids 1,000 px apart, so no crowding): scores 0.05, 0.19, 0.2, 0.8 with areas 100,
    # 200, 300, 400 on 2,000 px² of tissue: the first two go, (300 + 400) / 2,000 = 35 % is left.
    table = DropletTable(area=np.array([100.0, 200, 300, 400]), perimeter=np.full(4, 50.0),
                         eccentricity=np.full(4, 0.3), score=np.array([0.05, 0.19, 0.2, 0.8]),
                         centroid=np.array([[0.0, 0], [1000, 0], [0, 1000], [1000, 1000]]), tissue_area=2000.0)
    assert table.crowding.tolist() == [0.0] * 4
    result = apply_cutoffs(table)
    assert result.kept.tolist() == [False, False, True, True]
    assert result.steatosis_fraction == pytest.approx(0.35)
    assert apply_cutoffs(table, Cutoffs(min_score=0.05)).steatosis_fraction == pytest.approx(0.5)


def test_crowding_is_the_share_of_the_square_covered_by_other_confident_droplets() -> None:
    # Window 100 px (half-side 50, edge included); droplets A–D at (row, col) (0, 0), (0, 50), (30, 30), (0, 51)
    # with areas 3,000, 1,000, 500, 200 and scores 0.9, 0.4, 0.05 (not confident: never counted), 0.9.
    centroid = np.array([[0.0, 0], [0, 50], [30, 30], [0, 51]])
    crowding = droplet_crowding(centroid, np.array([3000.0, 1000, 500, 200]), np.array([0.9, 0.4, 0.05, 0.9]),
                                window=100, confident=0.3)
    # A: B (50 away, on the edge) → 1,000 / 10,000; B: A and D → 3,200; C: A, B and D → 4,200; D: B only (A is 51
    # away) → 1,000.
    assert crowding == pytest.approx([0.1, 0.32, 0.42, 0.1])
    assert droplet_crowding(np.zeros((0, 2)), np.zeros(0), np.zeros(0)).shape == (0,)
    # Nothing confident: no crowding anywhere; and at most 1 however much fat is counted.
    assert droplet_crowding(centroid, np.full(4, 100.0), np.full(4, 0.1)).tolist() == [0.0] * 4
    assert droplet_crowding(np.zeros((2, 2)), np.array([9e4, 9e4]), np.ones(2), window=100).tolist() == [1.0, 1.0]


def test_the_score_floor_falls_with_crowding_from_min_score_to_the_crowded_floor() -> None:
    table = _table([100.0] * 5, [40.0] * 5, [0.3] * 5, [0.15, 0.15, 0.05, 0.05, 0.05])
    table = replace(table, crowding=np.array([0.0, 0.2, 0.2, 0.3, 0.5]))
    # Ramp 0.1 → 0.3: 0.2 below 0.1, 0.02 from 0.3 on, halfway (0.11) at 0.2.
    assert score_floors(table, DEFAULT_CUTOFFS) == pytest.approx([0.2, 0.11, 0.11, 0.02, 0.02])
    assert apply_cutoffs(table).kept.tolist() == [False, True, False, True, True]
    # The thesis, and a floor at or above min_score: one minimum score everywhere.
    assert score_floors(table, THESIS_CUTOFFS).tolist() == [0.5] * 5
    assert Cutoffs(min_score=0.1, crowded_min_score=0.3).crowded_min_score is None
    assert score_floors(table, Cutoffs(min_score=0.1, crowded_min_score=0.1)).tolist() == [0.1] * 5
    # The scored reference is the mean of the droplets passing their own floor.
    assert reference_values(replace(table, area=np.array([100.0, 200, 300, 400, 500])), DEFAULT_CUTOFFS)["area"] == (
        pytest.approx((200 + 400 + 500) / 3))


def test_a_faint_droplet_is_kept_among_confident_fat_and_dropped_alone() -> None:
    # One confident droplet of 12,000 px² at the origin; a faint one (score 0.05) 10 px away sees 12,000 / 191² =
    # 0.33 of its square covered (≥ 0.3: floor 0.02) and is kept; the same droplet 500 px away is not.
    area, score = np.array([12_000.0, 100.0]), np.array([0.9, 0.05])
    near = droplet_table_from(np.array([[0.0, 0], [10, 10]]), area, score)
    far = droplet_table_from(np.array([[0.0, 0], [500, 500]]), area, score)
    assert near.crowding[1] == pytest.approx(12_000 / 191**2)
    assert apply_cutoffs(near).kept.tolist() == [True, True]
    assert apply_cutoffs(far).kept.tolist() == [True, False]
    assert apply_cutoffs(near, Cutoffs(min_score=0.2, crowded_min_score=None)).kept.tolist() == [
        True, False]


def droplet_table_from(centroid: np.ndarray, area: np.ndarray, score: np.ndarray) -> DropletTable:
    n = len(area)
    return DropletTable(area=area, perimeter=np.full(n, 40.0), eccentricity=np.full(n, 0.3), score=score,
                        centroid=centroid, tissue_area=1e6)


def test_cutoffs_validation_and_round_trip() -> None:
    with pytest.raises(ParameterError):
        Cutoffs(area=(2.0, 1.0))
    with pytest.raises(ParameterError):
        Cutoffs(min_score=1.5)
    with pytest.raises(ParameterError):
        Cutoffs.from_dict({"colour": 1})
    with pytest.raises(ParameterError, match="reference"):
        Cutoffs(reference="median")
    with pytest.raises(ParameterError):
        Cutoffs(area=(0.0, float("nan")))
    cutoffs = Cutoffs(area=(0.1, 3.0), min_score=0.7)
    assert Cutoffs.from_dict(cutoffs.as_dict()) == cutoffs
    # An open upper limit is JSON null (presets are stored as strict JSON), and reads back as inf.
    assert cutoffs.as_dict()["perimeter"] == [0.0, None]
    assert json.loads(json.dumps(cutoffs.as_dict(), allow_nan=False))["perimeter"] == [0.0, None]
    with pytest.raises(ParameterError, match="crowded_min_score"):
        Cutoffs(crowded_min_score=1.5)
    assert Cutoffs.from_dict(DEFAULT_CUTOFFS.as_dict()) == DEFAULT_CUTOFFS
    assert json.loads(json.dumps(THESIS_CUTOFFS.as_dict()))["crowded_min_score"] is None
    # Presets saved before the crowded-fat floor existed keep one minimum score everywhere.
    saved = {"area": [0.0, None], "perimeter": [0.0, None], "eccentricity": [0.0, None], "min_score": 0.1,
             "reference": "scored"}
    assert Cutoffs.from_dict(saved).crowded_min_score is None
    # Presets saved before the reference was a choice were made for the thesis's rule.
    old = Cutoffs.from_dict({"area": [0.001, 6.0], "perimeter": [0.5, 4.0], "eccentricity": [0.2, 1.5],
                             "min_score": 0.5})
    assert old == THESIS_CUTOFFS


def test_matching_tolerates_float_rounding_only() -> None:
    assert THESIS_CUTOFFS.matches(replace(THESIS_CUTOFFS, area=(0.001 + 1e-15, 6.0)))
    assert not THESIS_CUTOFFS.matches(replace(THESIS_CUTOFFS, area=(0.002, 6.0)))
    assert not THESIS_CUTOFFS.matches(replace(THESIS_CUTOFFS, reference="scored"))
    assert DEFAULT_CUTOFFS.matches(Cutoffs())
    assert DEFAULT_CUTOFFS.matches(replace(DEFAULT_CUTOFFS, crowded_min_score=0.02 + 1e-15))
    assert not DEFAULT_CUTOFFS.matches(replace(DEFAULT_CUTOFFS, crowded_min_score=None))
    assert not DEFAULT_CUTOFFS.matches(replace(DEFAULT_CUTOFFS, crowded_min_score=0.05))


def test_droplet_table_of_known_shapes() -> None:
    labels = np.zeros((40, 40), np.int32)
    labels[5:10, 5:10] = 1  # 5×5 square
    labels[20:22, 10:30] = 2  # 2×20 bar
    table = droplet_table(labels, np.array([0.9, 0.6]), tissue_area=1600)
    assert table.area.tolist() == [25.0, 40.0]
    assert table.eccentricity[0] == pytest.approx(0.0, abs=1e-6)
    assert table.eccentricity[1] > 0.99
    assert table.centroid[0].tolist() == [7.0, 7.0]
    with pytest.raises(ParameterError):
        droplet_table(labels, np.array([0.9]))


def test_kept_labels_renumbers_and_uses_uint16() -> None:
    labels = np.array([[1, 2, 3], [0, 2, 3]])
    out = kept_labels(labels, np.array([False, True, True]))
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize(
    ("percent", "nash", "donor"),
    [(0.0, "S0", "< 5"), (4.4, "S0", "< 5"), (5.0, "S1", "5–29"), (29.6, "S1", "≥ 30"),
     (33.4, "S1", "≥ 30"), (33.6, "S2", "≥ 30"), (66.4, "S2", "≥ 30"), (67.0, "S3", "≥ 30")],
)
def test_grade_bands(percent: float, nash: str, donor: str) -> None:
    assert grade(percent, NASH_CRN_BANDS).startswith(nash)
    assert grade(percent, DONOR_BANDS).startswith(donor)


def test_detections_on_glass_are_dropped() -> None:
    from medlim.microscopy.steatosis.analysis import drop_outside_tissue

    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0]])
    tissue = np.array([[True, True, False, False], [True, True, False, True], [True, False, True, True]])
    out, scores = drop_outside_tissue(labels, np.array([0.9, 0.8, 0.7]), tissue)
    # Droplet 2 is 1/4 tissue → dropped; droplet 3 is 1/2 tissue → kept and renumbered 2.
    assert out.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [2, 2, 0, 0]]
    assert scores.tolist() == [0.9, 0.7]


def test_dim_neutral_glass_is_not_tissue() -> None:
    """Glass dimmed by uneven illumination below the brightness threshold is still found by its lack of colour."""
    image = np.empty((200, 200, 3), np.uint8)
    image[:] = (220, 150, 205)  # pink cytoplasm: saturation (220 − 150) / 220 ≈ 0.32, grey 177.2 (1st percentile)
    image[:20, :20] = (250, 250, 250)  # a white droplet-sized patch, 1 % of the pixels: grey 250 = 99.5th percentile
    image[100:, :] = (225, 222, 220)  # dim glass: saturation 0.022; grey 222.7, normalised (222.7 − 177.2) / 72.8 ≈ 0.63
    tissue = tissue_mask(image)
    # The glass margin (inscribed radius 50 px > 45 px) is background, grown by 2 px; the cytoplasm is tissue.
    assert not tissue[102:, :].any()
    assert tissue[:98, 25:].all()
    # The edge sits within a pixel of row 98 (the 2 px smoothing of the saturation blurs it).
    assert 200 * 97 <= tissue.sum() <= 200 * 99


def _tissue_with_channel_and_droplet() -> np.ndarray:
    image = np.empty((160, 200, 3), np.uint8)
    image[:] = (220, 150, 205)  # pink cytoplasm, grey 177.2
    image[:4, :4] = (120, 60, 110)  # a dark corner so that the cytoplasm is not the 1st percentile's floor
    image[40:43, 30:130] = (250, 250, 250)  # a sinusoid lumen: 3 px wide, 100 px long
    rows, cols = np.mgrid[:160, :200]
    image[(rows - 110) ** 2 + (cols - 100) ** 2 <= 12 ** 2] = (250, 250, 250)  # a droplet, radius 12 px
    return image


def test_thin_pale_channels_are_not_tissue_round_droplets_are() -> None:
    """Issue 13's tissue leaves out sinusoid lumina: a 3 × 100 px white channel goes, a round droplet stays."""
    from medlim.microscopy.steatosis.droplets import thin_pale_channels
    from medlim.microscopy.steatosis.weak import grey_image, white_mask

    image = _tissue_with_channel_and_droplet()
    channel = thin_pale_channels(white_mask(grey_image(image))[1])
    # The channel is narrower than the top-hat's disc (radius 4) and its moment ellipse is 100 × ~3.5 px long:
    # every one of its 300 pixels, and nothing else (the droplet is wider than the disc, the cytoplasm flat).
    assert channel.sum() == 300 and channel[40:43, 30:130].all()
    tissue, section = tissue_mask(image), tissue_mask(image, exclude_channels=False)
    assert section.all() and tissue.sum() == 160 * 200 - 300
    assert tissue[(np.mgrid[:160, :200][0] - 110) ** 2 + (np.mgrid[:160, :200][1] - 100) ** 2 <= 144].all()


def test_a_short_or_round_pale_spot_is_not_a_channel() -> None:
    """Below 15 px long (a 3 × 10 px sliver) or not 3 × longer than wide (a 9 × 9 px square): kept as tissue."""
    from medlim.microscopy.steatosis.droplets import thin_pale_channels

    normalised = np.full((80, 80), 0.3, np.float32)
    normalised[10:13, 10:20] = 1.0  # 3 × 10: major axis ≈ 11.5 px < 15
    normalised[40:43, 20:60] = 1.0  # 3 × 40: a channel
    assert thin_pale_channels(normalised).sum() == 120
    assert not thin_pale_channels(normalised, min_length=50.0).any()


def test_channels_on_an_he_phantom_are_its_sinusoid_lumina() -> None:
    """On a generated H&E tile most channel pixels lie on the phantom's sinusoid lumina and almost none on droplets."""
    from medlim.microscopy.steatosis.droplets import thin_pale_channels
    from medlim.microscopy.steatosis.weak import grey_image, white_mask
    from medlim.phantoms.he import generate_he

    phantom = generate_he(11, size=(384, 384), density=0.3, vein_probability=0.0, edge_probability=0.0, tears=0.0)
    channel = thin_pale_channels(white_mask(grey_image(phantom.image))[1])
    assert phantom.lumen is not None and channel.any()
    assert (channel & phantom.lumen).sum() >= 0.6 * channel.sum()
    assert (channel & (phantom.labels > 0)).sum() <= 0.01 * (phantom.labels > 0).sum()


def test_channel_axes_are_the_moment_ellipse_axes_of_measure_shapes() -> None:
    """The vectorised axes that decide a channel equal scikit-image's, as medlim's object tables report them."""
    from skimage import measure

    from medlim.microscopy.objects import measure_shapes
    from medlim.microscopy.steatosis.droplets import _moment_axes

    rng = np.random.default_rng(3)
    regions = measure.label(rng.random((120, 150)) > 0.6, connectivity=2)
    major, minor = _moment_axes(regions, int(regions.max()))
    shapes = measure_shapes(regions)
    np.testing.assert_allclose(major[shapes.ids], shapes.values["major_axis_px"], atol=1e-9)
    np.testing.assert_allclose(minor[shapes.ids], shapes.values["minor_axis_px"], atol=1e-9)


def test_the_thesis_mean_of_all_detections_leaves_out_what_the_network_did_not_report() -> None:
    # The analysis keeps detections down to 0.02 for the crowded-fat floor; the thesis's "all detections" are the
    # network's usual ones (score ≥ 0.05): areas 100 and 300 (scores 0.9, 0.05) count, 10 (0.03) does not.
    table = _table([100.0, 300.0, 10.0], [40.0, 60.0, 10.0], [0.2, 0.4, 0.9], [0.9, 0.05, 0.03])
    assert reference_values(table, THESIS_CUTOFFS) == pytest.approx({"area": 200.0, "perimeter": 50.0,
                                                                      "eccentricity": 0.3})
