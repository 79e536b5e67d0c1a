"""QuPath exports of microscopy objects: a GeoJSON FeatureCollection and the per-object CSV (issue 16).

One builder for nuclei (thesis §3.1) and steatosis droplets (thesis §3.2.3):
:func:`object_exports` turns object outlines plus their
:class:`~medlim.microscopy.objects.ObjectTable` into the CSV and GeoJSON
texts the pages download and ``medlim nuclei|steatosis segment --csv
--geojson`` write (``<stem>_objects.csv``, ``<stem>.geojson``), so both carry
the same numbers.

QuPath (≥ 0.3, "File › Import objects") reads a ``FeatureCollection`` whose
features have a ``Polygon`` or ``MultiPolygon`` in full-resolution image
coordinates — x to the right, y down, pixel ``(row, col)`` covering
``[col, col + 1] × [row, row + 1]`` — a UUID ``id``, and ``properties`` with
``objectType`` (``"detection"`` or ``"annotation"``), ``classification``
(``name`` and ``color`` as ``[r, g, b]``) and ``measurements`` (name → number).
Outlines come from the label image by :func:`mask_polygon`: scikit-image's
marching squares at level 0.5 around each object (pixel-edge midpoints, so a
lone pixel is a diamond of area 0.5 px²), every ring combined by symmetric
difference with shapely, which keeps holes and islands inside holes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.microscopy.objects import ObjectTable, column_title

__all__ = [
    "OBJECT_TYPES",
    "mask_polygon",
    "label_polygons",
    "measurement_name",
    "feature_collection",
    "ObjectExports",
    "object_exports",
]

#: QuPath object types a feature may have.
OBJECT_TYPES: tuple[str, ...] = ("detection", "annotation")
#: Namespace of the features' UUIDs (uuid5 of the object's kind, id, centroid and area: stable across runs).
_ID_NAMESPACE = uuid.UUID("5b0f6a3e-8c1d-4f55-9a43-7d8e6c2b1f10")


def mask_polygon(mask: np.ndarray, *, top: float = 0, left: float = 0) -> Any:
    """The outline of one object's mask as a shapely ``Polygon`` (with holes) or ``MultiPolygon``.

    Args:
        mask: ``np.ndarray[h, w]`` bool, the object inside its bounding box.
        top, left: the box's place in the image (px).

    Returns:
        A valid shapely geometry in QuPath coordinates (x = column, y = row, pixel corners at integers).

    Raises:
        ParameterError: the mask is empty.
    """
    import shapely
    from shapely.geometry import Polygon
    from skimage import measure

    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ParameterError("cannot outline an empty object mask.")
    padded = np.pad(mask, 1).astype(np.float32)
    rings = [Polygon(np.column_stack([ring[:, 1] - 0.5 + left, ring[:, 0] - 0.5 + top]))
             for ring in measure.find_contours(padded, 0.5, fully_connected="high") if len(ring) >= 4]
    rings = [ring if ring.is_valid else shapely.make_valid(ring) for ring in rings]
    shape = reduce(lambda a, b: a.symmetric_difference(b), rings)
    if not shape.is_valid:
        shape = shapely.make_valid(shape)
    # simplify(0) drops the collinear vertices of straight pixel runs (same outline, fewer points).
    polygons = [part.simplify(0) for part in getattr(shape, "geoms", [shape])
                if part.geom_type == "Polygon" and not part.is_empty]
    if not polygons:
        raise ParameterError("the object mask has no area to outline.")
    return shapely.geometry.polygon.orient(polygons[0]) if len(polygons) == 1 else shapely.MultiPolygon(
        [shapely.geometry.polygon.orient(p) for p in polygons])


def label_polygons(labels: np.ndarray, ids: Sequence[int], *, top: float = 0, left: float = 0) -> list[Any]:
    """One outline per id of ``ids`` (:func:`mask_polygon`), in that order.

    Args:
        labels: ``np.ndarray[H, W]`` int label image.
        ids: labels to outline; each must be present.
        top, left: the label image's place in the slide (px).
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    windows = ndimage.find_objects(labels.astype(np.int32, copy=False))
    outlines = []
    for label in ids:
        window = windows[int(label) - 1] if 0 < int(label) <= len(windows) else None
        if window is None:
            raise ParameterError(f"label {label} is not in the label image.")
        outlines.append(mask_polygon(labels[window] == int(label), top=top + window[0].start,
                                     left=left + window[1].start))
    return outlines


def measurement_name(column: str) -> str:
    """A table column as QuPath names measurements: ``area_um2`` → ``Area µm^2``, ``score`` → ``Score``."""
    title = column_title(column)
    if title.endswith(")"):
        words, _, unit = title[:-1].rpartition(" (")
        return f"{words} {unit.replace('²', '^2')}"
    return title


def _coordinates(polygon: Any) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [[[round(float(x), 2), round(float(y), 2)] for x, y in ring.coords] for ring in rings]


def _geometry(shape: Any) -> dict[str, object]:
    if shape.geom_type == "Polygon":
        return {"type": "Polygon", "coordinates": _coordinates(shape)}
    return {"type": "MultiPolygon", "coordinates": [_coordinates(part) for part in shape.geoms]}


def _measurements(row: Mapping[str, object], columns: Sequence[str]) -> dict[str, float]:
    out = {}
    for column in columns:
        value = row[column]
        if column in ("id", "class") or isinstance(value, str) or value is None:
            continue
        out[measurement_name(column)] = float(value)  # type: ignore[arg-type]
    return out


def feature_collection(
    outlines: Sequence[Any],
    table: ObjectTable,
    *,
    colours: Mapping[str, tuple[int, int, int]],
    kind: str,
    object_type: str = "detection",
) -> dict[str, object]:
    """A GeoJSON FeatureCollection QuPath imports: one feature per row of ``table``.

    Args:
        outlines: one shapely geometry per row (:func:`label_polygons`).
        table: the objects' rows; ``class`` names the classification, numeric columns are the measurements.
        colours: class name → ``(r, g, b)`` 0–255.
        kind: what the objects are (``"nucleus"``, ``"droplet"``), for names and ids.
        object_type: ``"detection"`` or ``"annotation"``.

    Raises:
        ParameterError: counts differ, an unknown object type or a class without a colour.
    """
    if object_type not in OBJECT_TYPES:
        raise ParameterError(f"`object_type` must be one of {list(OBJECT_TYPES)}, {object_type!r} is given.")
    if len(outlines) != len(table):
        raise ParameterError(f"{len(outlines)} outlines for {len(table)} objects.")
    features = []
    for outline, row in zip(outlines, table.rows):
        name = str(row["class"])
        if name not in colours:
            raise ParameterError(f"class {name!r} has no colour; known: {sorted(colours)}.")
        key = f"medlim:{kind}:{row['id']}:{row['centroid_row_px']}:{row['centroid_col_px']}:{row['area_px2']}"
        features.append({
            "type": "Feature",
            "id": str(uuid.uuid5(_ID_NAMESPACE, key)),
            "geometry": _geometry(outline),
            "properties": {
                "objectType": object_type,
                "name": f"{kind} {row['id']}",
                "classification": {"name": name, "color": list(colours[name])},
                "isLocked": False,
                "measurements": _measurements(row, table.columns),
            },
        })
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True)
class ObjectExports:
    """The per-object CSV and the QuPath GeoJSON of one image, as texts.

    Attributes:
        table: the rows both carry.
        geojson: the FeatureCollection as compact JSON text.
    """

    table: ObjectTable
    geojson: str

    @property
    def csv(self) -> str:
        """The per-object CSV text (:meth:`ObjectTable.to_csv`)."""
        return self.table.to_csv()

    @staticmethod
    def file_names(stem: str) -> dict[str, str]:
        """``{"csv": "<stem>_objects.csv", "geojson": "<stem>.geojson"}`` — page downloads and CLI files alike."""
        return {"csv": f"{stem}_objects.csv", "geojson": f"{stem}.geojson"}

    def write(self, out: Path, stem: str, *, csv: bool = True, geojson: bool = True) -> dict[str, str]:
        """Write the chosen files into ``out``; ``{"csv": path, "geojson": path}`` of those written."""
        names = self.file_names(stem)
        written = {}
        for key, wanted, text in (("csv", csv, self.csv), ("geojson", geojson, self.geojson)):
            if wanted:
                path = Path(out) / names[key]
                path.write_text(text, encoding="utf-8")
                written[key] = str(path)
        return written


def object_exports(
    outlines: Sequence[Any],
    table: ObjectTable,
    *,
    colours: Mapping[str, tuple[int, int, int]],
    kind: str,
    object_type: str = "detection",
) -> ObjectExports:
    """The CSV and GeoJSON of one image's objects (:func:`feature_collection`); both carry ``table``'s numbers."""
    document = feature_collection(outlines, table, colours=colours, kind=kind, object_type=object_type)
    return ObjectExports(table=table, geojson=json.dumps(document, separators=(",", ":")))
