"""Exports of steatosis results: per-droplet CSV and GeoJSON polygons for QuPath (thesis §3.2.3).

QuPath (≥ 0.3) imports a GeoJSON ``FeatureCollection`` whose features carry a
``Polygon`` in image pixel coordinates (x to the right, y down) and
``properties`` with ``objectType`` (``"annotation"`` or ``"detection"``), an
optional ``classification`` (``name`` and ``color`` as ``[r, g, b]``) and
``measurements`` (name → number). Droplets are written as detections, kept
ones classified "Steatosis droplet" and discarded ones "Discarded droplet".

Each droplet's exported values are built once, by :func:`droplet_rows`; the
CSV writes those rows and the GeoJSON measurements carry the same numbers.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import DropletTable

__all__ = [
    "KEPT_CLASS",
    "DISCARDED_CLASS",
    "DROPLET_COLUMNS",
    "droplet_rows",
    "droplet_polygon",
    "droplet_geojson",
    "droplet_csv",
    "geojson_text",
]

#: QuPath classes of kept and discarded droplets (name, RGB colour): Okabe–Ito blue and vermillion, the page's
#: colours (colour-blind safe, no red/green pair).
KEPT_CLASS: tuple[str, tuple[int, int, int]] = ("Steatosis droplet", (0, 114, 178))
DISCARDED_CLASS: tuple[str, tuple[int, int, int]] = ("Discarded droplet", (213, 94, 0))
#: Columns of the per-droplet CSV, in order.
DROPLET_COLUMNS: tuple[str, ...] = ("label", "row", "col", "area", "perimeter", "eccentricity", "score", "kept")
#: GeoJSON measurement name of each numeric column.
_MEASUREMENTS = {"area": "Area px^2", "perimeter": "Perimeter px", "eccentricity": "Eccentricity", "score": "Score"}


def droplet_rows(table: DropletTable, kept: np.ndarray | None = None) -> list[dict[str, object]]:
    """One dict per droplet with the :data:`DROPLET_COLUMNS` keys: label, centroid (row, col px), area (px²),
    perimeter (px, 3 decimals), eccentricity and score (4 decimals), kept.

    Args:
        table: the droplets' features.
        kept: ``np.ndarray[n]`` bool (None: all kept).

    Raises:
        ParameterError: ``kept`` does not have one flag per droplet.
    """
    n = len(table)
    kept = np.ones(n, bool) if kept is None else np.asarray(kept, bool)
    if len(kept) != n:
        raise ParameterError(f"{len(kept)} kept flags for {n} droplets.")
    return [
        {"label": i + 1, "row": round(float(table.centroid[i, 0]), 2), "col": round(float(table.centroid[i, 1]), 2),
         "area": float(table.area[i]), "perimeter": round(float(table.perimeter[i]), 3),
         "eccentricity": round(float(table.eccentricity[i]), 4), "score": round(float(table.score[i]), 4),
         "kept": bool(kept[i])}
        for i in range(n)
    ]


def droplet_polygon(mask: np.ndarray, *, top: int = 0, left: int = 0) -> list[list[float]]:
    """Outer boundary of one droplet mask as a closed ring of ``[x, y]`` pixel coordinates.

    The ring follows pixel edges' mid-level (``skimage.measure.find_contours``
    at 0.5 on the zero-padded mask), so a single pixel at (r, c) gives a small
    diamond around (c, r). Only the longest contour (the outer one) is returned.

    Args:
        mask: ``np.ndarray[h, w]`` bool, one connected droplet.
        top, left: offset of ``mask`` in the image.

    Returns:
        ``[[x0, y0], [x1, y1], …, [x0, y0]]`` (first point repeated), ≥ 4 points.
    """
    from skimage import measure

    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ParameterError("cannot outline an empty droplet mask.")
    padded = np.pad(mask, 1).astype(np.float32)
    contours = measure.find_contours(padded, 0.5)
    ring = max(contours, key=len)
    points = [[round(float(c) - 1 + left, 2), round(float(r) - 1 + top, 2)] for r, c in ring]
    if points[0] != points[-1]:
        points.append(points[0])
    while len(points) < 4:
        points.insert(-1, points[0])
    return points


def droplet_geojson(labels: np.ndarray, table: DropletTable, kept: np.ndarray | None = None) -> dict[str, object]:
    """A GeoJSON FeatureCollection with one polygon per droplet.

    Args:
        labels: ``np.ndarray[H, W]`` int droplet labels 1..n.
        table: features of those droplets.
        kept: ``np.ndarray[n]`` bool (None: all kept).

    Returns:
        A JSON-able dict (``json.dumps`` it to write a ``.geojson`` file).
    """
    labels = np.asarray(labels)
    n = len(table)
    kept = np.ones(n, bool) if kept is None else np.asarray(kept, bool)
    if len(kept) != n or int(labels.max(initial=0)) != n:
        raise ParameterError(f"labels hold {int(labels.max(initial=0))} droplets, table {n}, kept flags {len(kept)}.")
    rows = droplet_rows(table, kept)
    features = []
    for k, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        row = rows[k - 1]
        name, colour = KEPT_CLASS if row["kept"] else DISCARDED_CLASS
        ring = droplet_polygon(labels[window] == k, top=window[0].start, left=window[1].start)
        features.append({
            "type": "Feature",
            "id": f"droplet-{k}",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "detection",
                "name": f"droplet {k}",
                "classification": {"name": name, "color": list(colour)},
                "isLocked": False,
                "measurements": {**{title: float(row[column]) for column, title in _MEASUREMENTS.items()},  # type: ignore[arg-type]
                                 "Kept": 1.0 if row["kept"] else 0.0},
            },
        })
    return {"type": "FeatureCollection", "features": features}


def droplet_csv(table: DropletTable, kept: np.ndarray | None = None) -> str:
    """Per-droplet CSV text: label, row, col, area, perimeter, eccentricity, score, kept.

    Written by :func:`medlim.core.text.csv_text`, like every CSV medlim writes, so no
    cell can run as a spreadsheet formula (issue 14).
    """
    from medlim.core.text import csv_text

    return csv_text(droplet_rows(table, kept), list(DROPLET_COLUMNS))


def geojson_text(labels: np.ndarray, table: DropletTable, kept: np.ndarray | None = None) -> str:
    """:func:`droplet_geojson` as compact JSON text."""
    return json.dumps(droplet_geojson(labels, table, kept), separators=(",", ":"))
