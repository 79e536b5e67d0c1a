"""Expanding the files and folders a person names into the image files to read.

Shared by every command line (and the batch tabs), so that all of them skip
the same things: hidden files, manifests and notes, the ground-truth or
output images that medlim itself writes beside the images (``*_bac.png``,
``*_mask.png``, ``*_labels.png``, …), and anything that is not a regular file.

Issue 14 ("Hardening"): a named pipe (FIFO) blocks whoever opens or reads it
and a link to ``/dev/zero`` never ends, so :func:`open_regular_file` opens
without blocking and checks the opened descriptor (not the name, which could
be swapped in between) before a single byte is read.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from medlim.core.io.formats import DICOM_SUFFIXES
from medlim.errors import ImageTooLargeError, InputError

__all__ = [
    "RASTER_SUFFIXES",
    "UNREAD_SUFFIXES",
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "image_suffix",
    "has_image_suffix",
    "DERIVED_SUFFIXES",
    "collect_files",
    "is_derived_file",
    "is_regular_file",
    "open_regular_file",
]

#: Raster formats (DICOM files often have no suffix, so DICOM-capable commands pass ``suffixes=None``).
RASTER_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg"})

#: Image formats people keep images in that the reader does not take: listed (never skipped without a word).
UNREAD_SUFFIXES: frozenset[str] = frozenset({".bmp", ".webp", ".gif", ".jp2", ".j2k", ".heic", ".heif", ".avif"})

#: 2-D NIfTI, plain or gzip-compressed (what a Decathlon ``dataset.json`` names; :func:`image_suffix` gives
#: ``.nii.gz`` for such a name).
NIFTI_SUFFIXES = frozenset({".nii", ".nii.gz"})

#: Every suffix an image file may have: the rasters, DICOM's (``.dcm``, ``.dicom``, ``.dic``, ``.ima``) and NIfTI's.
#: The one list of image suffixes (issue 17); the reader itself goes by magic bytes.
IMAGE_SUFFIXES: frozenset[str] = RASTER_SUFFIXES | DICOM_SUFFIXES | NIFTI_SUFFIXES

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


def image_suffix(path: str | os.PathLike) -> str:
    """The suffix that says what kind of file ``path`` is, lower case: ``.nii.gz`` for a compressed NIfTI,
    else the last suffix (``.png``; ``""`` without one)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def has_image_suffix(path: str | os.PathLike) -> bool:
    """True when ``path`` ends in one of :data:`IMAGE_SUFFIXES` (any case)."""
    return image_suffix(path) in IMAGE_SUFFIXES


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
                    if is_regular_file(child)
                    and not is_derived_file(child)
                    and (allowed is None or image_suffix(child) in allowed)
                )
            )
        elif is_regular_file(path):
            files.append(path)
        elif path.exists():
            raise InputError(f"{path} is not a regular file ({_kind_of(path.stat().st_mode)}); give image files.")
        else:
            raise InputError(f"{path} does not exist; give image files or folders holding them.")
    return files


def is_regular_file(path: Path) -> bool:
    """True when ``path``, after following links, is a regular file (not a FIFO, device or socket)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "it is a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device"
    if stat.S_ISSOCK(mode):
        return "it is a socket"
    return "it is not a file with contents"


def open_regular_file(path: str | os.PathLike, *, max_bytes: int | None = None) -> BinaryIO:
    """Open ``path`` for binary reading, only if it is a regular file of at most ``max_bytes``.

    The open does not block (``O_NONBLOCK``: a FIFO without a writer would wait
    forever) and the checks are made on the opened descriptor with ``fstat``.

    Args:
        path: the file; links are followed (a link to a regular file is fine).
        max_bytes: refuse larger files (``None``: no size limit).

    Returns:
        An open binary file object positioned at 0; the caller closes it.

    Raises:
        InputError: no such file, a folder, not a regular file (FIFO, device,
            socket, a link to one), or unreadable. ImageTooLargeError: over ``max_bytes``.
    """
    path = Path(path)
    name = path.name or str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError as exc:
        raise InputError(f"There is no file at {path}; check the path.") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{name} is a folder, not an image file; choose the files inside it.") from exc
    except PermissionError as exc:
        raise InputError(f"{name} cannot be read (permission denied).") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{name} cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__}).") from exc
    try:
        size = _regular_file_size(descriptor, name=name)
        if max_bytes is not None and size > max_bytes:
            raise ImageTooLargeError(
                f"{name} is {size:,} bytes, more than any image within MEDLIM_MAX_PIXELS could need."
            )
        handle = os.fdopen(descriptor, "rb")
        raw = handle.raw  # a FileIO for a descriptor opened "rb"
        if isinstance(raw, io.FileIO):
            raw.name = str(path)  # readers (tifffile) expect a file's name, not its descriptor
        return handle
    except BaseException:
        os.close(descriptor)
        raise


def _regular_file_size(descriptor: int, *, name: str) -> int:
    info = os.fstat(descriptor)
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{name} is a folder, not an image file; choose the files inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{name} is not a regular file ({_kind_of(info.st_mode)}); give an image file.")
    return info.st_size
