"""Widgets' helpers of the curation workspace page (MedShift, thesis ch. 5, Figs. 5.5–5.10): caches and paging.

The numbers (group table, galleries, TOP-k table, curated manifest) come
from :mod:`medlim.curation.shift.service` and :mod:`medlim.curation.shift.report`,
which ``medlim shift`` calls too; this module only caches dataset listings and
thumbnails and pages a gallery. ``pages/curation.py`` lays them out.

A dataset listing (:func:`image_set_cached`) reads only the files' first bytes;
the page's check before a run (:func:`medlim.curation.shift.check.check_shift_data`)
counts it on every rerun, and :func:`listing_stamp` keys the listing to the
folder's and its class folders' modification times and to each of their files'
size and time, so images added, removed or rewritten in place are counted on the
next rerun.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.curation.shift.report import curated_csv
from medlim.ui.caching import bounded_cache_data, bounded_cache_resource

__all__ = [
    "THUMBNAIL_SIDE",
    "GalleryPage",
    "image_set_cached",
    "listing_stamp",
    "thumbnails_cached",
    "gallery_page",
    "curated_csv",
]

THUMBNAIL_SIDE = 128


@dataclass(frozen=True)
class GalleryPage:
    """One page of a group gallery.

    Attributes:
        rows: the items shown (:class:`medlim.curation.shift.service.GalleryItem`).
        page: 0-based page shown (clamped); pages: number of pages (≥ 1).
    """

    rows: tuple[Any, ...]
    page: int
    pages: int


@bounded_cache_resource(max_entries=8, show_spinner="Listing the dataset…")
def image_set_cached(source: str, stamp: tuple[tuple[str, int], ...] = ()) -> Any:
    """:func:`medlim.curation.shift.data.parse_dataset` once per source (and ``stamp``, :func:`listing_stamp`),
    with a file → position map."""
    from medlim.curation.shift.data import parse_dataset

    image_set = parse_dataset(source)
    return image_set, {name: i for i, name in enumerate(image_set.files)}


#: At most this many files of a dataset folder are stamped one by one (:func:`listing_stamp`); a larger folder is
#: keyed by its folders' times only, so that a rerun of the page stays cheap.
STAMP_MAX_FILES = 20_000


def listing_stamp(source: str) -> tuple[tuple[str, int], ...]:
    """What :func:`image_set_cached` is keyed by: ``(name, modification time in ns)`` of a dataset folder, its
    ``manifest.csv`` and its sub-folders, and ``(path, size)`` and ``(path, time)`` of each file in the folder and
    its sub-folders.

    Adding or removing a file changes its folder's time; a file rewritten in place changes its own size or time.
    Either way the folder is listed afresh on the next rerun. A folder of more than :data:`STAMP_MAX_FILES` files
    is keyed by its folders' times only (a file rewritten in place is then found when the run reads it), and so are
    files a ``manifest.csv`` names outside the folder. ``()`` for phantoms or a folder that cannot be read (the
    listing then says why).
    """
    if source.startswith("phantom:"):
        return ()
    root = Path(source)
    try:
        stamps = [("", root.stat().st_mtime_ns)]
        files: list[tuple[str, int]] | None = []
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name == "manifest.csv" or entry.is_dir():
                    stamps.append((entry.name, entry.stat().st_mtime_ns))
                if files is not None and not _add_file_stamps(files, entry):
                    files = None  # more files than STAMP_MAX_FILES: the folders' times only
    except OSError:
        return ()
    return tuple(sorted(stamps)) + (() if files is None else tuple(sorted(files)))


def _add_file_stamps(files: list[tuple[str, int]], entry: os.DirEntry[str]) -> bool:
    """Add ``(path, size)`` and ``(path, time in ns)`` of ``entry`` (a file) or of the files in it (a sub-folder,
    not followed when a link) to ``files``; ``False`` once more than :data:`STAMP_MAX_FILES` files are counted
    (the scan stops there)."""
    if entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inside:
            return all(_add_file(files, f"{entry.name}/{item.name}", item) for item in inside if item.is_file())
    return not entry.is_file() or _add_file(files, entry.name, entry)


def _add_file(files: list[tuple[str, int]], name: str, entry: os.DirEntry[str]) -> bool:
    """Add one file's two stamps; ``False`` when that makes more than :data:`STAMP_MAX_FILES` files."""
    if len(files) >= 2 * STAMP_MAX_FILES:
        return False
    info = entry.stat()
    files += [(name, info.st_size), (name, info.st_mtime_ns)]
    return True


@bounded_cache_data(max_entries=64, show_spinner=False)
def thumbnails_cached(source: str, files: tuple[str, ...], side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Grey thumbnails ``np.ndarray[B, side, side]`` float32 in [0, 1] of ``files`` of a dataset."""
    image_set, position = image_set_cached(source)
    return image_set.read([position[f] for f in files], side)


def gallery_page(rows: Sequence[Any], page: int, per_page: int) -> GalleryPage:
    """Rows of page ``page`` (clamped to the available pages), in the given order."""
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(0, int(page)), pages - 1)
    return GalleryPage(rows=tuple(rows[page * per_page : (page + 1) * per_page]), page=page, pages=pages)
