"""Exports of steatosis results: the per-droplet CSV and QuPath GeoJSON (thesis §3.2.3, issue 16).

Droplets go through the microscopy rooms' one builder
(:func:`medlim.microscopy.qupath.object_exports`): each is a QuPath
*detection* with a UUID, its outline with holes, classified "Steatosis
droplet" when kept and "Discarded droplet" when the cutoffs discard it, and
the measurements of its row in the per-droplet table (px and, when the pixel
size is known, µm / µm²; the detection score; kept 1/0). The page's downloads
and ``medlim steatosis segment --csv --geojson`` both call
:func:`droplet_exports`, so they hold the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.microscopy.objects import ObjectTable, object_table
from medlim.microscopy.qupath import ObjectExports, label_polygons, object_exports
from medlim.microscopy.steatosis.droplets import DropletTable

__all__ = [
    "KEPT_CLASS",
    "DISCARDED_CLASS",
    "DROPLET_COLOURS",
    "droplet_object_table",
    "droplet_outlines",
    "droplet_exports",
]

#: QuPath classes of kept and discarded droplets (name, RGB colour): Okabe–Ito blue and vermillion, the page's
#: colours (colour-blind safe, no red/green pair).
KEPT_CLASS: tuple[str, tuple[int, int, int]] = ("Steatosis droplet", (0, 114, 178))
DISCARDED_CLASS: tuple[str, tuple[int, int, int]] = ("Discarded droplet", (213, 94, 0))
#: Class name → colour, as the GeoJSON gives them.
DROPLET_COLOURS: dict[str, tuple[int, int, int]] = dict((KEPT_CLASS, DISCARDED_CLASS))


def _kept_flags(table: DropletTable, kept: np.ndarray | None) -> np.ndarray:
    kept = np.ones(len(table), bool) if kept is None else np.asarray(kept, bool)
    if len(kept) != len(table):
        raise ParameterError(f"{len(kept)} kept flags for {len(table)} droplets.")
    return kept


def droplet_object_table(table: DropletTable, kept: np.ndarray | None = None) -> ObjectTable:
    """The per-droplet table: id (label ``k``), class, shape columns in px (and µm when the table's
    spacing is known), ``score`` (4 decimals), ``crowding`` (the share of the square around the droplet covered
    by other confident droplets, which lowers its score floor; 3 decimals) and ``kept``.

    Args:
        table: the droplets' features.
        kept: ``np.ndarray[n]`` bool (None: all kept).

    Raises:
        ParameterError: ``kept`` does not have one flag per droplet.
    """
    kept = _kept_flags(table, kept)
    classes = [KEPT_CLASS[0] if flag else DISCARDED_CLASS[0] for flag in kept]
    return object_table(table.object_shapes(), classes=classes, spacing=table.spacing,
                        ids=list(range(1, len(table) + 1)),
                        extra={"score": [round(float(s), 4) for s in table.score],
                               "crowding": [round(float(c), 3) for c in _crowding(table)],
                               "kept": [bool(k) for k in kept]})


def _crowding(table: DropletTable) -> np.ndarray:
    return table.crowding if table.crowding is not None else np.zeros(len(table))


def droplet_outlines(labels: np.ndarray, table: DropletTable) -> list[Any]:
    """One shapely outline per droplet of ``labels`` (labels 1..n, n = ``len(table)``)."""
    labels = np.asarray(labels)
    n = len(table)
    if int(labels.max(initial=0)) != n:
        raise ParameterError(f"labels hold {int(labels.max(initial=0))} droplets, table {n}.")
    return label_polygons(labels, range(1, n + 1))


def droplet_exports(outlines: Sequence[Any], table: DropletTable, kept: np.ndarray | None = None) -> ObjectExports:
    """The per-droplet CSV and the QuPath GeoJSON of one image or slide region.

    Args:
        outlines: one shapely outline per droplet (:func:`droplet_outlines`, or a slide's).
        table: the droplets' features (with their pixel size).
        kept: ``np.ndarray[n]`` bool (None: all kept).
    """
    return object_exports(outlines, droplet_object_table(table, kept), colours=DROPLET_COLOURS, kind="droplet")
