"""Droplet features, cutoffs relative to the mean, grades (medlim.microscopy.steatosis.droplets)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import (
    DONOR_BANDS,
    NASH_CRN_BANDS,
    Cutoffs,
    DropletTable,
    apply_cutoffs,
    droplet_table,
    grade,
    kept_labels,
)


def _table(area, perimeter, eccentricity, score, tissue_area=1000.0) -> DropletTable:
    n = len(area)
    return DropletTable(area=np.asarray(area, float), perimeter=np.asarray(perimeter, float),
                        eccentricity=np.asarray(eccentricity, float), score=np.asarray(score, float),
                        centroid=np.zeros((n, 2)), tissue_area=tissue_area)


def test_cutoffs_are_relative_to_the_mean() -> None:
    # Means: area 100, perimeter 40, eccentricity 0.5.
    table = _table([10, 50, 140, 200], [10, 30, 50, 70], [0.05, 0.5, 0.6, 0.85], [0.9, 0.9, 0.4, 0.9])
    result = apply_cutoffs(table, Cutoffs(area=(0.2, 1.9), perimeter=(0.5, 2.0), eccentricity=(0.2, 1.5), min_score=0.5))
    # 1: area 10 < 20 (and perimeter 10 < 20) → out; 2: in; 3: score 0.4 → out; 4: area 200 > 190 → out.
    assert result.means == {"area": 100.0, "perimeter": 40.0, "eccentricity": 0.5}
    assert result.kept.tolist() == [False, True, False, False]
    assert result.kept_count == 1 and result.detected == 4
    assert result.steatosis_fraction == pytest.approx(50 / 1000)


def test_thesis_defaults_and_empty_table() -> None:
    cutoffs = Cutoffs()
    assert (cutoffs.area, cutoffs.perimeter, cutoffs.eccentricity) == ((0.001, 6.0), (0.5, 4.0), (0.2, 1.5))
    empty = apply_cutoffs(_table([], [], [], []))
    assert empty.detected == 0 and empty.steatosis_fraction == 0.0


def test_cutoffs_validation_and_round_trip() -> None:
    with pytest.raises(ParameterError):
        Cutoffs(area=(2.0, 1.0))
    with pytest.raises(ParameterError):
        Cutoffs(min_score=1.5)
    with pytest.raises(ParameterError):
        Cutoffs.from_dict({"colour": 1})
    cutoffs = Cutoffs(area=(0.1, 3.0), min_score=0.7)
    assert Cutoffs.from_dict(cutoffs.as_dict()) == cutoffs


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
