"""Per-droplet CSV and QuPath GeoJSON (medlim.microscopy.steatosis.export), through the shared builder."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.objects import MicronSpacing
from medlim.microscopy.steatosis.droplets import droplet_table
from medlim.microscopy.steatosis.export import (
    DISCARDED_CLASS,
    KEPT_CLASS,
    droplet_exports,
    droplet_object_table,
    droplet_outlines,
)


def _labels() -> np.ndarray:
    labels = np.zeros((30, 30), np.int32)
    labels[2:8, 2:8] = 1  # 6 × 6: area 36, centroid (4.5, 4.5)
    labels[15:25, 15:20] = 2  # 10 × 5 less a 2 × 2 hole: area 46
    labels[19:21, 17:19] = 0
    return labels


def test_geojson_feature_collection_for_qupath() -> None:
    labels = _labels()
    table = droplet_table(labels, np.array([0.9, 0.4]))
    exports = droplet_exports(droplet_outlines(labels, table), table, np.array([True, False]))
    document = json.loads(exports.geojson)
    assert document["type"] == "FeatureCollection"
    first, second = document["features"]
    assert uuid.UUID(first["id"]) and first["id"] != second["id"]
    assert first["geometry"]["type"] == "Polygon" and len(first["geometry"]["coordinates"]) == 1
    assert len(second["geometry"]["coordinates"]) == 2  # the hole is kept (it was dropped before issue 16)
    assert first["properties"]["objectType"] == "detection"
    assert first["properties"]["classification"] == {"name": KEPT_CLASS[0], "color": list(KEPT_CLASS[1])}
    assert second["properties"]["classification"]["name"] == DISCARDED_CLASS[0]
    assert first["properties"]["measurements"]["Area px^2"] == 36.0
    assert second["properties"]["measurements"]["Area px^2"] == 46.0
    with pytest.raises(ParameterError, match="kept flags"):
        droplet_exports(droplet_outlines(labels, table), table, np.array([True]))


def test_csv_and_geojson_carry_the_same_rows() -> None:
    labels = _labels()
    table = droplet_table(labels, np.array([0.91234, 0.4]), spacing=MicronSpacing(0.25, "user"))
    rows = droplet_object_table(table, np.array([True, False])).rows
    assert [(r["id"], r["centroid_row_px"], r["centroid_col_px"], r["area_px2"], r["score"], r["kept"])
            for r in rows] == [(1, 4.5, 4.5, 36.0, 0.9123, True), (2, 19.5, 16.96, 46.0, 0.4, False)]
    # Droplet 2's column centroid: (50 × 17 − 4 × 17.5) / 46 = 16.957 (the hole sits right of centre).
    # Crowding: the other droplet's area over the 191 px square, 46 / 191² = 0.0013 and 36 / 191² = 0.0010.
    assert [r["crowding"] for r in rows] == [0.001, 0.001]
    assert rows[0]["area_um2"] == 2.25 and rows[1]["area_um2"] == 2.875  # × 0.0625 µm² per px²
    exports = droplet_exports(droplet_outlines(labels, table), table, np.array([True, False]))
    lines = exports.csv.strip().splitlines()
    assert lines[0].split(",") == list(exports.table.columns)
    assert lines[2] == ",".join(str(rows[1][c]) for c in exports.table.columns)
    measurements = [f["properties"]["measurements"] for f in json.loads(exports.geojson)["features"]]
    assert [(m["Area µm^2"], m["Perimeter px"], m["Eccentricity"], m["Score"], m["Kept"]) for m in measurements] == [
        (r["area_um2"], r["perimeter_px"], r["eccentricity"], r["score"], float(r["kept"])) for r in rows]


def test_qupath_classes_are_colour_blind_safe() -> None:
    # Okabe–Ito blue for kept, vermillion for discarded: never a red/green pair.
    assert KEPT_CLASS[1] == (0, 114, 178) and DISCARDED_CLASS[1] == (213, 94, 0)
