"""The one reader entry point: a path, bytes or a file object in, an ImageRecord out.

Issue 2 ("Image input"): DICOM, PNG (8/16-bit), TIFF and JPEG, chosen by magic
bytes (the suffix is only a hint for preamble-less DICOM). Every failure a user
can cause is a :class:`medlim.errors.MedlimError` subclass with a message saying
what to do; any other exception escaping :func:`read_image` is a bug.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from medlim.core.io.dicom import decode_dicom
from medlim.core.io.formats import sniff_format
from medlim.core.io.raster import decode_raster
from medlim.core.io.record import ImageRecord
from medlim.errors import EmptyFileError, ImageTooLargeError, InputError, UnsupportedFormatError
from medlim.settings import Settings, get_settings

__all__ = ["read_image", "read_bytes"]

#: Bytes per pixel above which a file is refused before reading (64-bit RGB plus headroom).
_MAX_BYTES_PER_PIXEL = 32


def read_bytes(source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO, *, max_bytes: int) -> tuple[bytes, str]:
    """The whole content of ``source`` and a display name (no folders).

    Args:
        source: a path, the bytes themselves, or a binary file object (an upload).
        max_bytes: refuse larger files.

    Returns:
        ``(data, name)``; ``name`` is ``""`` for bytes.

    Raises:
        InputError: no such file, a folder, or unreadable; ImageTooLargeError: over ``max_bytes``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), ""
    if hasattr(source, "read"):
        content = source.getvalue() if hasattr(source, "getvalue") else source.read()
        return bytes(content), Path(str(getattr(source, "name", "") or "")).name
    path = Path(source)
    try:
        if path.is_dir():
            raise InputError(f"{path.name or path} is a folder, not an image file; choose the files inside it.")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(
                f"{path.name} is {size:,} bytes, more than any image within MEDLIM_MAX_PIXELS could need."
            )
        return path.read_bytes(), path.name
    except FileNotFoundError as exc:
        raise InputError(f"There is no file at {path}; check the path.") from exc
    except PermissionError as exc:
        raise InputError(f"{path.name} cannot be read (permission denied).") from exc
    except OSError as exc:
        raise InputError(f"{path.name} cannot be read ({exc.strerror or type(exc).__name__}).") from exc


def read_image(
    source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    *,
    name: str | None = None,
    frame: int | None = None,
    settings: Settings | None = None,
) -> ImageRecord:
    """Read a DICOM, PNG, TIFF or JPEG image into a display-ready record.

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
        ImageTooLargeError, MultiFrameError, ParameterError, InputError: all
        :class:`medlim.errors.MedlimError`, with a message a person can act on.
    """
    settings = settings or get_settings()
    max_bytes = settings.max_pixels * _MAX_BYTES_PER_PIXEL + (1 << 20)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        head, file_name = _read_head(path, max_bytes=max_bytes)
        display_name = name or file_name
        if not head:
            raise EmptyFileError(f"{display_name} is empty (0 bytes); the upload or copy did not complete.")
        source_format = _format_of(head, suffix=path.suffix, name=display_name)
        if source_format == "dicom":
            # pydicom reads the path itself: one copy of a 27 MB mammogram less than via bytes.
            return decode_dicom(path, name=display_name, frame=frame, settings=settings)
        data, _ = read_bytes(path, max_bytes=max_bytes)
    else:
        data, file_name = read_bytes(source, max_bytes=max_bytes)
        display_name = name or file_name or "upload"
        if not data:
            raise EmptyFileError(f"{display_name} is empty (0 bytes); the upload or copy did not complete.")
        source_format = _format_of(data[:132], suffix=Path(file_name or display_name).suffix, name=display_name)
        if source_format == "dicom":
            return decode_dicom(data, name=display_name, frame=frame, settings=settings)
    return decode_raster(data, source_format=source_format, name=display_name, frame=frame, max_pixels=settings.max_pixels)


def _format_of(head: bytes, *, suffix: str, name: str) -> str:
    source_format = sniff_format(head, suffix=suffix)
    if source_format is None:
        raise UnsupportedFormatError(
            f"{name} is not a DICOM, PNG, TIFF or JPEG image (its first bytes match none of them)."
        )
    return source_format


def _read_head(path: Path, *, max_bytes: int) -> tuple[bytes, str]:
    """The first 132 bytes of ``path`` (enough for every magic number) and its name."""
    try:
        if path.is_dir():
            raise InputError(f"{path.name or path} is a folder, not an image file; choose the files inside it.")
        if path.stat().st_size > max_bytes:
            raise ImageTooLargeError(
                f"{path.name} is {path.stat().st_size:,} bytes, more than any image within MEDLIM_MAX_PIXELS could need."
            )
        with path.open("rb") as handle:
            return handle.read(132), path.name
    except FileNotFoundError as exc:
        raise InputError(f"There is no file at {path}; check the path.") from exc
    except PermissionError as exc:
        raise InputError(f"{path.name} cannot be read (permission denied).") from exc
    except OSError as exc:
        raise InputError(f"{path.name} cannot be read ({exc.strerror or type(exc).__name__}).") from exc
