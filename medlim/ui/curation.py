"""Helpers of the curation workspace page (MedShift, thesis ch. 5, Figs. 5.5–5.10).

Cached dataset listings and thumbnails, gallery paging and the rows of the
stored scores; the page (``pages/curation.py``) only lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.ui.caching import bounded_cache_data, bounded_cache_resource

__all__ = [
    "THUMBNAIL_SIDE",
    "GalleryPage",
    "image_set_cached",
    "thumbnails_cached",
    "gallery_page",
    "group_rows",
    "group_table",
    "curated_csv",
]

THUMBNAIL_SIDE = 128


@dataclass(frozen=True)
class GalleryPage:
    """One page of a group gallery.

    Attributes:
        rows: the rows shown (each with ``file``, ``score``, ``group``, ``tag``).
        page: 0-based page shown (clamped); pages: number of pages (≥ 1).
    """

    rows: tuple[Mapping[str, Any], ...]
    page: int
    pages: int


@bounded_cache_resource(max_entries=8, show_spinner="Listing the dataset…")
def image_set_cached(source: str) -> Any:
    """:func:`medlim.curation.shift.data.parse_dataset` once per source, with a file → position map."""
    from medlim.curation.shift.data import parse_dataset

    image_set = parse_dataset(source)
    return image_set, {name: i for i, name in enumerate(image_set.files)}


@bounded_cache_data(max_entries=64, show_spinner=False)
def thumbnails_cached(source: str, files: tuple[str, ...], side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Grey thumbnails ``np.ndarray[B, side, side]`` float32 in [0, 1] of ``files`` of a dataset."""
    image_set, position = image_set_cached(source)
    return image_set.read([position[f] for f in files], side)


def gallery_page(rows: Sequence[Mapping[str, Any]], page: int, per_page: int) -> GalleryPage:
    """Rows of page ``page`` (clamped to the available pages), in the given order."""
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(0, int(page)), pages - 1)
    return GalleryPage(rows=tuple(rows[page * per_page : (page + 1) * per_page]), page=page, pages=pages)


def group_rows(scores: Sequence[Any], tags: Mapping[str, str], *, class_name: str, group: int) -> list[dict[str, Any]]:
    """Stored scores of one class and group, ascending by score, with their tags."""
    rows = [{"file": s.file, "class": s.class_name, "score": s.score, "group": s.group, "tag": tags.get(s.file, "")}
            for s in scores if s.class_name == class_name and s.group == group]
    return sorted(rows, key=lambda r: (r["score"], r["file"]))


def curated_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The curated manifest as CSV for a download: files named by their pseudonymous label.

    Columns ``file`` (:func:`medlim.core.io.pseudonym.file_label` of the file's
    path in the dataset), ``class``, ``score``, ``group``, ``tag``; cells
    neutralised by :func:`medlim.core.text.csv_text`.
    """
    from medlim.core.io.pseudonym import file_label
    from medlim.core.text import csv_text

    columns = ["file", "class", "score", "group", "tag"]
    return csv_text(({**row, "file": file_label(row["file"])} for row in rows), columns)


def group_table(scores: Sequence[Any], tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Per class and group: images, score range, kept and dropped counts."""
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for s in scores:
        key = (s.class_name or "", int(s.group if s.group is not None else -1))
        row = table.setdefault(key, {"class": key[0], "group": key[1], "images": 0, "min score": math.inf,
                                     "max score": -math.inf, "keep": 0, "drop": 0})
        row["images"] += 1
        row["min score"] = min(row["min score"], s.score)
        row["max score"] = max(row["max score"], s.score)
        tag = tags.get(s.file)
        if tag in ("keep", "drop"):
            row[tag] += 1
    return [table[key] for key in sorted(table)]
