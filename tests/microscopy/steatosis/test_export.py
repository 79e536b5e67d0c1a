"""CSV and QuPath GeoJSON exports (medlim.microscopy.steatosis.export)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import droplet_table
from medlim.microscopy.steatosis.export import (
    DISCARDED_CLASS,
    KEPT_CLASS,
    droplet_csv,
    droplet_geojson,
    droplet_polygon,
    geojson_text,
)


def test_polygon_of_a_square_is_closed_and_in_xy_order() -> None:
    mask = np.zeros((3, 4), bool)
    mask[:, :] = True  # 3 rows × 4 columns
    ring = droplet_polygon(mask, top=10, left=20)
    assert ring[0] == ring[-1] and len(ring) >= 5
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    # Contour at level 0.5 runs half a pixel outside the pixel centres.
    assert min(xs) == pytest.approx(19.5) and max(xs) == pytest.approx(23.5)
    assert min(ys) == pytest.approx(9.5) and max(ys) == pytest.approx(12.5)
    with pytest.raises(ParameterError):
        droplet_polygon(np.zeros((2, 2), bool))


def test_geojson_feature_collection_for_qupath() -> None:
    labels = np.zeros((30, 30), np.int32)
    labels[2:8, 2:8] = 1
    labels[15:25, 15:20] = 2
    table = droplet_table(labels, np.array([0.9, 0.4]))
    document = droplet_geojson(labels, table, np.array([True, False]))
    assert document["type"] == "FeatureCollection"
    features = document["features"]
    assert len(features) == 2
    first, second = features
    assert first["geometry"]["type"] == "Polygon"
    assert first["properties"]["objectType"] == "detection"
    assert first["properties"]["classification"]["name"] == KEPT_CLASS[0]
    assert second["properties"]["classification"]["name"] == DISCARDED_CLASS[0]
    assert first["properties"]["measurements"]["Area px^2"] == 36.0
    assert json.loads(geojson_text(labels, table)) == droplet_geojson(labels, table)
    with pytest.raises(ParameterError):
        droplet_geojson(labels, table, np.array([True]))


def test_csv_rows() -> None:
    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 1:3] = 1
    text = droplet_csv(droplet_table(labels, np.array([0.75])), np.array([True]))
    lines = text.strip().splitlines()
    assert lines[0] == "label,row,col,area,perimeter,eccentricity,score,kept"
    assert lines[1].startswith("1,1.5,1.5,4.0,") and lines[1].endswith(",0.75,True")


def test_csv_and_geojson_carry_the_same_rows() -> None:
    """Export rows are built once (issue 17): the CSV's cells and the GeoJSON measurements are the same numbers."""
    from medlim.microscopy.steatosis.export import DROPLET_COLUMNS, droplet_rows

    labels = np.zeros((30, 30), np.int32)
    labels[2:8, 2:8] = 1  # 6 × 6: area 36, centroid (4.5, 4.5)
    labels[15:25, 15:20] = 2  # 10 × 5: area 50, centroid (19.5, 17)
    table = droplet_table(labels, np.array([0.91234, 0.4]))
    rows = droplet_rows(table, np.array([True, False]))
    assert [list(row) for row in rows] == [list(DROPLET_COLUMNS)] * 2
    assert [(r["label"], r["row"], r["col"], r["area"], r["score"], r["kept"]) for r in rows] == [
        (1, 4.5, 4.5, 36.0, 0.9123, True), (2, 19.5, 17.0, 50.0, 0.4, False)]
    lines = droplet_csv(table, np.array([True, False])).strip().splitlines()
    assert lines[2] == ",".join(str(rows[1][c]) for c in DROPLET_COLUMNS)
    measurements = [f["properties"]["measurements"] for f in droplet_geojson(labels, table, np.array([True, False]))["features"]]
    assert [(m["Area px^2"], m["Perimeter px"], m["Eccentricity"], m["Score"], m["Kept"]) for m in measurements] == [
        (r["area"], r["perimeter"], r["eccentricity"], r["score"], float(r["kept"])) for r in rows]
    with pytest.raises(ParameterError, match="kept flags"):
        droplet_rows(table, np.array([True]))


def test_qupath_classes_are_colour_blind_safe() -> None:
    # Okabe–Ito blue for kept, vermillion for discarded: never a red/green pair.
    assert KEPT_CLASS[1] == (0, 114, 178) and DISCARDED_CLASS[1] == (213, 94, 0)
