"""QuPath GeoJSON and per-object CSV (medlim.microscopy.qupath): outlines with holes, ids, classes, measurements."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import shapely

from medlim.errors import ParameterError
from medlim.microscopy.objects import MicronSpacing, measure_shapes, object_table
from medlim.microscopy.qupath import label_polygons, mask_polygon, measurement_name, object_exports


def test_square_outline_in_pixel_corner_coordinates() -> None:
    mask = np.ones((3, 4), bool)  # 3 rows × 4 columns at row 10, column 20
    outline = mask_polygon(mask, top=10, left=20)
    assert outline.geom_type == "Polygon" and outline.is_valid
    # Pixel (r, c) covers [c, c + 1] × [r, r + 1]; the outline runs along the pixel edges' midpoints, so
    # its box is the pixels' box and each corner pixel loses a triangle of 1/8 px².
    assert outline.bounds == (20.0, 10.0, 24.0, 13.0)
    assert outline.area == pytest.approx(12 - 4 * 0.125)
    assert shapely.geometry.polygon.orient(outline).equals(outline)
    with pytest.raises(ParameterError):
        mask_polygon(np.zeros((2, 2), bool))


def test_holes_and_islands_are_kept() -> None:
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False  # a 3 × 3 hole
    outline = mask_polygon(ring)
    assert outline.geom_type == "Polygon" and len(outline.interiors) == 1
    # Outer 7 × 7 less its corner triangles (49 − 0.5), hole 3 × 3 less the same (9 − 0.5).
    assert outline.area == pytest.approx(48.5 - 8.5)
    assert outline.contains(shapely.Point(1.5, 1.5)) and not outline.contains(shapely.Point(4.5, 4.5))
    ring[4, 4] = True  # an island inside the hole
    outline = mask_polygon(ring)
    assert outline.geom_type == "MultiPolygon" and len(outline.geoms) == 2
    assert outline.contains(shapely.Point(4.5, 4.5)) and not outline.contains(shapely.Point(3.5, 3.5))


def test_feature_collection_and_csv_carry_the_same_rows() -> None:
    labels = np.zeros((30, 30), np.int32)
    labels[2:8, 2:8] = 1
    labels[15:25, 15:20] = 2
    labels[18:21, 16:19] = 0  # droplet 2 has a hole
    shapes = measure_shapes(labels)
    table = object_table(shapes, classes=["Kept", "Other"], spacing=MicronSpacing(0.5, "file"),
                         extra={"score": [0.9, 0.4], "kept": [True, False]})
    exports = object_exports(label_polygons(labels, [1, 2]), table, colours={"Kept": (0, 114, 178),
                                                                             "Other": (213, 94, 0)}, kind="droplet")
    document = json.loads(exports.geojson)
    assert document["type"] == "FeatureCollection" and len(document["features"]) == 2
    first, second = document["features"]
    assert uuid.UUID(first["id"]) != uuid.UUID(second["id"])
    assert json.loads(object_exports(label_polygons(labels, [1, 2]), table, kind="droplet", colours={
        "Kept": (0, 114, 178), "Other": (213, 94, 0)}).geojson) == document  # stable ids
    assert first["properties"]["objectType"] == "detection"
    assert first["properties"]["classification"] == {"name": "Kept", "color": [0, 114, 178]}
    assert second["geometry"]["type"] == "Polygon" and len(second["geometry"]["coordinates"]) == 2  # outer + hole
    measured = second["properties"]["measurements"]
    row = table.rows[1]
    assert measured["Area px^2"] == row["area_px2"] == 41.0
    assert measured["Area µm^2"] == row["area_um2"] == 10.25
    assert measured["Perimeter µm"] == row["perimeter_um"] and measured["Kept"] == 0.0 and measured["Score"] == 0.4
    lines = exports.csv.strip().splitlines()
    assert lines[0].split(",") == list(table.columns)
    assert lines[2].split(",")[table.columns.index("area_um2")] == "10.25"
    with pytest.raises(ParameterError, match="colour"):
        object_exports(label_polygons(labels, [1, 2]), table, colours={"Kept": (0, 0, 0)}, kind="droplet")
    with pytest.raises(ParameterError, match="outlines"):
        object_exports(label_polygons(labels, [1]), table, colours={"Kept": (0, 0, 0)}, kind="droplet")


def test_measurement_names_as_qupath_writes_them() -> None:
    assert measurement_name("area_um2") == "Area µm^2"
    assert measurement_name("perimeter_px") == "Perimeter px"
    assert measurement_name("from_split_clump") == "From split clump"


def test_exports_write_the_files_the_page_offers(tmp_path) -> None:
    labels = np.zeros((10, 10), np.int32)
    labels[1:4, 1:4] = 1
    table = object_table(measure_shapes(labels), classes=["Nucleus"])
    exports = object_exports(label_polygons(labels, [1]), table, colours={"Nucleus": (86, 180, 233)}, kind="nucleus")
    written = exports.write(tmp_path, "img", csv=True, geojson=True)
    assert written == {"csv": str(tmp_path / "img_objects.csv"), "geojson": str(tmp_path / "img.geojson")}
    assert (tmp_path / "img_objects.csv").read_text(encoding="utf-8") == exports.csv
    assert (tmp_path / "img.geojson").read_text(encoding="utf-8") == exports.geojson
    assert exports.write(tmp_path / "x", "img", csv=False, geojson=False) == {}
