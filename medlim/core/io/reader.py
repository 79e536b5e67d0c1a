"""The one reader entry point: a path, bytes or a file object in, an ImageRecord out.

Issue 2 ("Image input"): DICOM, PNG (8/16-bit), TIFF and JPEG, chosen by magic
bytes (the suffix is only a hint for preamble-less DICOM). Every failure a user
can cause is a :class:`medlim.errors.MedlimError` subclass with a message saying
what to do; any other exception escaping :func:`read_image` is a bug.

Issue 14 ("Hardening"): a path is opened only if it is a regular file (a FIFO,
a device or a link to one is refused without blocking), decoders read the open
file rather than a copy of its bytes, and each decoder checks the memory its
decode takes against ``MEDLIM_DECODE_BUDGET_MB`` (:mod:`medlim.core.io.budget`)
before decoding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from medlim.core.io.dicom import decode_dicom
from medlim.core.io.files import open_regular_file
from medlim.core.io.formats import sniff_format
from medlim.core.io.nifti import decode_nifti
from medlim.core.io.raster import decode_raster
from medlim.core.io.record import ImageRecord
from medlim.errors import EmptyFileError, ImageTooLargeError, InputError, UnsupportedFormatError
from medlim.settings import Settings, get_settings

__all__ = ["image_format", "read_image", "read_bytes", "read_labels"]

#: Bytes per pixel above which a file is refused before reading (64-bit RGB plus headroom).
_MAX_BYTES_PER_PIXEL = 32

_Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def read_bytes(source: _Source, *, max_bytes: int) -> tuple[bytes, str]:
    """The whole content of ``source`` and a display name (no folders).

    Args:
        source: a path, the bytes themselves, or a binary file object (an upload).
        max_bytes: refuse larger files.

    Returns:
        ``(data, name)``; ``name`` is ``""`` for bytes.

    Raises:
        InputError: no such file, a folder, not a regular file (FIFO, device), or
            unreadable; ImageTooLargeError: over ``max_bytes``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), ""
    if hasattr(source, "read"):
        content = source.getvalue() if hasattr(source, "getvalue") else source.read()
        return bytes(content), Path(str(getattr(source, "name", "") or "")).name
    path = Path(source)
    with open_regular_file(path, max_bytes=max_bytes) as handle:
        data = handle.read(max_bytes + 1)  # never more than allowed, even if the file grows meanwhile
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{path.name} is more than {max_bytes:,} bytes, more than any image could need.")
    return data, path.name


def read_image(
    source: _Source,
    *,
    name: str | None = None,
    frame: int | None = None,
    settings: Settings | None = None,
) -> ImageRecord:
    """Read a DICOM, PNG, TIFF, JPEG or 2-D NIfTI image into a display-ready record.

    A path must name a regular file (a FIFO, a device or a link to one is
    refused before reading). The memory the decode takes is estimated from the
    header first and refused over ``MEDLIM_DECODE_BUDGET_MB``.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. an upload).
        name: name shown in messages and kept in the record; defaults to the file
            name (``"upload"`` for bytes).
        frame: which frame of a multi-frame DICOM or multi-page TIFF; ``None`` for
            single-frame images (a multi-frame file then raises :class:`MultiFrameError`).
        settings: limits and the pseudonym secret; :func:`get_settings` when ``None``.

    Returns:
        :class:`ImageRecord` with ``pixels`` (float32 in [0, 1], ``[H, W]`` or
        ``[H, W, 3]``), ``raw`` (float32, after the modality LUT) and
        non-identifying ``metadata``.

    Raises:
        EmptyFileError, UnsupportedFormatError, NotDicomImageError, NoPixelDataError,
        TruncatedFileError, CorruptFileError, UnsupportedTransferSyntaxError,
        ImageTooLargeError, DecodeBudgetError, MultiFrameError, ParameterError,
        InputError: all :class:`medlim.errors.MedlimError`, with a message a person can act on.
    """
    settings = settings or get_settings()
    max_bytes = settings.max_pixels * _MAX_BYTES_PER_PIXEL + (1 << 20)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        # Decoders read the open file itself: no copy of its bytes is held beside the image.
        with open_regular_file(path, max_bytes=max_bytes) as handle:
            display_name = name or path.name
            head = _read_head(handle, name=display_name)
            if not head:
                raise _empty(display_name)
            source_format = _format_of(head, suffix=path.suffix, name=display_name)
            return _decode(handle, source_format=source_format, name=display_name, frame=frame, settings=settings)
    data, file_name = read_bytes(source, max_bytes=max_bytes)
    display_name = name or file_name or "upload"
    if not data:
        raise _empty(display_name)
    source_format = _format_of(data[:348], suffix=Path(file_name or display_name).suffix, name=display_name)
    return _decode(data, source_format=source_format, name=display_name, frame=frame, settings=settings)


def image_format(path: str | os.PathLike, *, name: str | None = None) -> str:
    """The format :func:`read_image` would decode ``path`` as, from its first bytes alone (nothing decoded).

    A cheap look before a long run over many files: it refuses, with :func:`read_image`'s words, a file that is
    not a regular file, is empty, or is in no format the reader takes (a text file named ``.png``, a BMP); a
    truncated or corrupt image is found only when it is decoded.

    Raises:
        InputError, EmptyFileError, UnsupportedFormatError: as :func:`read_image`.
    """
    path = Path(path)
    display_name = name or path.name
    with open_regular_file(path) as handle:
        head = _read_head(handle, name=display_name)
    if not head:
        raise _empty(display_name)
    return _format_of(head, suffix=path.suffix, name=display_name)


def _empty(name: str) -> EmptyFileError:
    """The refusal of a file with no bytes (one wording for every entry point)."""
    return EmptyFileError(f"{name} is empty (0 bytes); the upload or copy did not complete.")


def _decode(
    source: bytes | BinaryIO, *, source_format: str, name: str, frame: int | None, settings: Settings
) -> ImageRecord:
    if source_format == "dicom":
        return decode_dicom(source, name=name, frame=frame, settings=settings)
    if source_format == "nifti":
        return decode_nifti(source, name=name, frame=frame, settings=settings)
    return decode_raster(source, source_format=source_format, name=name, frame=frame, settings=settings)


def _read_head(handle: BinaryIO, *, name: str) -> bytes:
    """The first 348 bytes (enough for every magic number: NIfTI-1's is at 344); the handle is left at 0."""
    try:
        head = handle.read(348)
        handle.seek(0)
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or type(exc).__name__}).") from exc
    return head


def _format_of(head: bytes, *, suffix: str, name: str) -> str:
    source_format = sniff_format(head, suffix=suffix)
    if source_format is None:
        known = next((what for magic, what in _OTHER_FORMATS if head.startswith(magic)), None)
        if known is not None:
            raise UnsupportedFormatError(f"{name} is a {known} image, a format medlim does not read; convert it to "
                                         "PNG (or TIFF, JPEG, DICOM).")
        raise UnsupportedFormatError(
            f"{name} is not a DICOM, PNG, TIFF, JPEG or NIfTI image (its first bytes match none of them)."
        )
    return source_format


#: Image formats people have that the reader does not take, by their first bytes (named in the refusal).
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"BM", "BMP"), (b"GIF8", "GIF"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
)


def read_labels(path: str | os.PathLike, *, name: str | None = None,
                settings: Settings | None = None) -> tuple[ImageRecord, np.ndarray]:
    """A mask or instance image: its record (:func:`read_image`), and its values as labels (``float32``).

    The values are the record's ``raw``, except for a palette ("P" mode) PNG or TIFF, whose values are its
    palette indices: annotation tools store a label image so, with index 0 the background however the
    palette colours it. Read as colours, a palette that shows index 0 white made every pixel non-zero, and
    a mask all foreground (the session-21 probe).

    Raises:
        What :func:`read_image` raises.
    """
    record = read_image(path, name=name, settings=settings)
    if record.metadata.source_format not in ("png", "tiff"):
        return record, np.asarray(record.raw)
    from PIL import Image

    with open_regular_file(Path(path)) as handle, Image.open(handle) as image:
        if image.mode != "P":
            return record, np.asarray(record.raw)
        return record, np.asarray(image, dtype=np.uint8).astype(np.float32)  # read_image checked the decode budget
