"""Expanding the files and folders a person names into the image files to read.

Shared by every command line (and the batch tabs), so that all of them skip
the same things: hidden files, manifests and notes, and the ground-truth or
output images that medlim itself writes beside the images (``*_bac.png``,
``*_mask.png``, ``*_labels.png``, …).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medlim.errors import InputError

__all__ = ["RASTER_SUFFIXES", "DERIVED_SUFFIXES", "collect_files", "is_derived_file"]

#: Raster formats (DICOM files often have no suffix, so DICOM-capable commands pass ``suffixes=None``).
RASTER_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg"})

#: Endings of files medlim writes beside images (truth masks, outputs) and of non-image files.
DERIVED_SUFFIXES = (
    "_mask.png",
    "_bac.png",
    "_breast.png",
    "_lookalike.png",
    "_labels.png",
    "_label.png",
    "_tissue.png",
    "_truth.png",
    "_gt.png",
    ".csv",
    ".json",
    ".geojson",
    ".md",
    ".txt",
)


def is_derived_file(path: Path) -> bool:
    """True for hidden files, manifests, notes and the masks/labels medlim writes."""
    name = path.name.lower()
    return name.startswith(".") or name.endswith(DERIVED_SUFFIXES)


def collect_files(
    inputs: Iterable[str | Path], *, suffixes: Iterable[str] | None = None, recursive: bool = True
) -> list[Path]:
    """Files named directly, plus the image files inside named folders.

    Args:
        inputs: files and folders.
        suffixes: keep only these suffixes inside folders (lower case, with the dot);
            None keeps every file (the reader decides by magic bytes).
        recursive: search folders recursively.

    Returns:
        Sorted files of each folder, in the order the inputs were given; files named
        directly are kept as given.

    Raises:
        InputError: a path that does not exist.
    """
    allowed = None if suffixes is None else {s.lower() for s in suffixes}
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            children = path.rglob("*") if recursive else path.iterdir()
            files.extend(
                sorted(
                    child
                    for child in children
                    if child.is_file()
                    and not is_derived_file(child)
                    and (allowed is None or child.suffix.lower() in allowed)
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path} does not exist; give image files or folders holding them.")
    return files
