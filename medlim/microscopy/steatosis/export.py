"""Exports of steatosis results: per-droplet CSV and GeoJSON polygons for QuPath (thesis §3.2.3).

QuPath (≥ 0.3) imports a GeoJSON ``FeatureCollection`` whose features carry a
``Polygon`` in image pixel coordinates (x to the right, y down) and
``properties`` with ``objectType`` (``"annotation"`` or ``"detection"``), an
optional ``classification`` (``name`` and ``color`` as ``[r, g, b]``) and
``measurements`` (name → number). Droplets are written as detections, kept
ones classified "Steatosis droplet" and discarded ones "Discarded droplet".
"""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import DropletTable

__all__ = ["KEPT_CLASS", "DISCARDED_CLASS", "droplet_polygon", "droplet_geojson", "droplet_csv", "geojson_text"]

#: QuPath classes of kept and discarded droplets (name, RGB colour).
KEPT_CLASS: tuple[str, tuple[int, int, int]] = ("Steatosis droplet", (0, 170, 255))
DISCARDED_CLASS: tuple[str, tuple[int, int, int]] = ("Discarded droplet", (255, 80, 0))


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
    features = []
    for k, window in enumerate(ndimage.find_objects(labels), start=1):
        if window is None:
            continue
        i = k - 1
        name, colour = KEPT_CLASS if kept[i] else DISCARDED_CLASS
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
                "measurements": {
                    "Area px^2": float(table.area[i]),
                    "Perimeter px": float(round(table.perimeter[i], 3)),
                    "Eccentricity": float(round(table.eccentricity[i], 4)),
                    "Score": float(round(table.score[i], 4)),
                    "Kept": 1.0 if kept[i] else 0.0,
                },
            },
        })
    return {"type": "FeatureCollection", "features": features}


def droplet_csv(table: DropletTable, kept: np.ndarray | None = None) -> str:
    """Per-droplet CSV text: label, row, col, area, perimeter, eccentricity, score, kept.

    Written by :func:`medlim.core.text.csv_text`, like every CSV medlim writes, so no
    cell can run as a spreadsheet formula (issue 14).
    """
    from medlim.core.text import csv_text

    return csv_text(table.rows(kept), ["label", "row", "col", "area", "perimeter", "eccentricity", "score", "kept"])


def geojson_text(labels: np.ndarray, table: DropletTable, kept: np.ndarray | None = None) -> str:
    """:func:`droplet_geojson` as compact JSON text."""
    return json.dumps(droplet_geojson(labels, table, kept), separators=(",", ":"))
