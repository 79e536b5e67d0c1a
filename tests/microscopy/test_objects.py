"""Per-object measurements in px and µm (medlim.microscopy.objects), hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.objects import (
    NO_SPACING,
    MicronSpacing,
    ObjectShapes,
    column_title,
    measure_shapes,
    object_table,
    resolve_spacing,
)


def _two_squares() -> np.ndarray:
    labels = np.zeros((30, 30), np.int32)
    labels[2:8, 2:8] = 1  # 6 × 6: area 36, centroid (4.5, 4.5)
    labels[15:25, 15:20] = 2  # 10 rows × 5 columns: area 50, centroid (19.5, 17)
    return labels


def test_spacing_sources_and_precedence() -> None:
    assert resolve_spacing(None, None) == (NO_SPACING, ())
    assert NO_SPACING.warning is not None and "--pixel-spacing-um" in NO_SPACING.warning
    spacing, notes = resolve_spacing(0.5, None, file_detail="TIFF")
    assert (spacing.um, spacing.source, spacing.detail, notes) == (0.5, "file", "TIFF", ())
    assert spacing.warning is None and spacing.to_json() == {"pixel_spacing_um": 0.5, "spacing_source": "file"}
    spacing, notes = resolve_spacing(0.5, 0.25)  # the user corrects the file, and is told it differed
    assert (spacing.um, spacing.source) == (0.25, "user") and len(notes) == 1 and "0.5" in notes[0]
    assert resolve_spacing(0.25, 0.25)[1] == ()
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ParameterError):
            resolve_spacing(None, bad)
    with pytest.raises(ParameterError):
        MicronSpacing(None, "file")


def test_shapes_of_two_squares() -> None:
    shapes = measure_shapes(_two_squares())
    assert shapes.ids.tolist() == [1, 2] and len(shapes) == 2
    assert shapes["area_px2"].tolist() == [36.0, 50.0]
    assert shapes.centroid.tolist() == [[4.5, 4.5], [19.5, 17.0]]
    # Disc of the same area: d = √(4A/π).
    assert shapes["equivalent_diameter_px"] == pytest.approx([math.sqrt(4 * 36 / math.pi), math.sqrt(4 * 50 / math.pi)])
    # Ellipse of the same second moments: a uniform n-pixel side has variance (n² − 1)/12, axis = 4σ.
    assert shapes["major_axis_px"][1] == pytest.approx(4 * math.sqrt((10**2 - 1) / 12))
    assert shapes["minor_axis_px"][1] == pytest.approx(4 * math.sqrt((5**2 - 1) / 12))
    assert shapes["eccentricity"][0] == pytest.approx(0.0) and shapes["solidity"].tolist() == [1.0, 1.0]
    moved = shapes.shifted(top=100, left=1000)
    assert moved.centroid.tolist() == [[104.5, 1004.5], [119.5, 1017.0]]
    joined = ObjectShapes.concat([shapes, moved.take(np.array([False, True]))])
    assert joined.ids.tolist() == [1, 2, 2] and joined["area_px2"].tolist() == [36.0, 50.0, 50.0]


def test_table_without_and_with_microns() -> None:
    shapes = measure_shapes(_two_squares())
    plain = object_table(shapes, classes=["A", "B"], extra={"score": [0.9, 0.4]})
    assert plain.columns[:3] == ("id", "class", "centroid_row_px") and plain.columns[-1] == "score"
    assert not any(c.endswith(("_um", "_um2")) for c in plain.columns)
    assert plain.rows[0]["area_px2"] == 36.0 and plain.rows[1]["class"] == "B"
    microns = object_table(shapes, classes=["A", "B"], spacing=MicronSpacing(0.5, "user"))
    row = microns.rows[1]
    assert row["area_um2"] == 12.5  # 50 px² × 0.25 µm²/px²
    assert row["perimeter_um"] == pytest.approx(row["perimeter_px"] / 2, abs=1e-3)
    assert row["major_axis_um"] == pytest.approx(2 * math.sqrt(99 / 12), abs=1e-4)
    assert microns.columns.index("area_um2") == microns.columns.index("area_px2") + 1
    lines = microns.to_csv().strip().splitlines()
    assert lines[0].split(",") == list(microns.columns) and lines[1].startswith("1,A,4.5,4.5,36.0,9.0,")
    with pytest.raises(ParameterError, match="classes"):
        object_table(shapes, classes=["A"])


def test_column_titles_carry_units() -> None:
    assert column_title("area_um2") == "Area (µm²)"
    assert column_title("area_px2") == "Area (px²)"
    assert column_title("equivalent_diameter_um") == "Equivalent diameter (µm)"
    assert column_title("centroid_row_px") == "Centroid row (px)"
    assert column_title("eccentricity") == "Eccentricity"
