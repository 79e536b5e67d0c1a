"""Per-nucleus measurements and the readout (medlim.microscopy.nuclei.measure), on hand-made label images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlim.microscopy.nuclei.measure import (
    NUCLEUS_COLUMNS,
    nuclei_readout,
    nucleus_rows,
    nucleus_table,
    split_clump_count,
    split_clump_labels,
)
from medlim.microscopy.nuclei.pipeline import NucleiResult


def _clumps() -> np.ndarray:
    labels = np.zeros((6, 9), np.int32)
    labels[0:2, 0:2] = 1
    labels[0:2, 2:4] = 2  # 1 and 2 share one region: a split clump
    labels[4:6, 0:2] = 3  # alone
    labels[3:4, 6:7] = 4
    labels[4:5, 7:8] = 5  # touches 4 only at a corner: still one region (8-connectivity)
    return labels


def test_split_clump_labels_and_count() -> None:
    labels = _clumps()
    assert split_clump_labels(labels) == {1, 2, 4, 5}
    assert split_clump_count(labels) == 2
    assert split_clump_labels(np.zeros((3, 3), np.int32)) == set()
    assert split_clump_count(np.zeros((3, 3), np.int32)) == 0


def test_nucleus_rows_of_a_rectangle() -> None:
    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 3:7] = 7  # 3 rows × 4 columns
    (row,) = nucleus_rows(labels)
    assert (row.id, row.area_px2) == (7, 12)
    assert (row.centroid_row, row.centroid_col) == (3.0, 4.5)
    # Second moments: rows (3² − 1)/12, columns (4² − 1)/12; e = sqrt(1 − λmin/λmax).
    assert row.eccentricity == pytest.approx(np.sqrt(1 - (8 / 12) / (15 / 12)), abs=1e-4)
    assert row.solidity == 1.0
    assert 0 < row.perimeter_px <= 14  # at most the outer boundary length 2 × (3 + 4)
    assert row.from_split_clump is False


def test_nucleus_table_rows_csv_and_json() -> None:
    table = nucleus_table(_clumps())
    assert [row.id for row in table.rows] == [1, 2, 3, 4, 5] and len(table) == 5
    assert [row.area_px2 for row in table.rows] == [4, 4, 4, 1, 1]
    assert [row.from_split_clump for row in table.rows] == [True, True, False, True, True]
    assert (table.clumps_split, table.from_split_clumps) == (2, 4)
    assert table.to_csv_rows()[0] == {name: getattr(table.rows[0], name) for name in NUCLEUS_COLUMNS}
    data = table.to_json()
    assert (data["count"], data["clumps_split"], data["from_split_clumps"]) == (5, 2, 4)
    assert json.loads(json.dumps(data)) == data


def test_nucleus_csv_is_the_shared_object_table() -> None:
    """The per-nucleus CSV is the microscopy rooms' object table (issue 16): px, µm with a spacing, split flag."""
    from medlim.microscopy.objects import MicronSpacing

    labels = np.zeros((10, 10), np.int32)
    labels[2:5, 3:7] = 3  # 3 rows × 4 columns: area 12, centroid (3, 4.5)
    plain = nucleus_table(labels)
    lines = plain.to_csv().splitlines()
    assert lines[0] == ("id,class,centroid_row_px,centroid_col_px,area_px2,perimeter_px,equivalent_diameter_px,"
                        "major_axis_px,minor_axis_px,eccentricity,solidity,from_split_clump")
    assert lines[1].startswith("3,Nucleus,3.0,4.5,12.0,") and lines[1].endswith(",1.0,False")
    microns = nucleus_table(labels, spacing=MicronSpacing(2.0, "user"))
    row = microns.objects.rows[0]
    assert row["area_um2"] == 48.0 and row["perimeter_um"] == pytest.approx(2 * row["perimeter_px"], abs=1e-3)
    assert microns.spacing.um == 2.0


def test_readout_counts() -> None:
    labels = _clumps()
    result = NucleiResult(labels=labels, foreground=labels > 0, cuts=(), mean_area=1234.56, scale=1.0, n_clumps=3,
                          seconds=0.12345)
    readout = nuclei_readout(result)
    assert readout.to_json() == {"count": 5, "clumps_split": 2, "from_split_clumps": 4, "cuts": 0,
                                 "clump_candidates": 3, "mean_area_px2": 1234.6, "seconds": 0.123,
                                 "pixel_spacing_um": None, "spacing_source": "none", "mean_area_um2": None}
    assert readout.count == result.count
