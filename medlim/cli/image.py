"""``medlim image info FILES... [--jsonl] [--frame N]``: what the reader makes of each file.

Issue 2 ("Image input"): one JSON object per file with ``file, ok, error,
message`` and, when the file decodes, ``shape, dtype, modality, photometric,
bits_stored, view, laterality, study_date, patient_key`` (plus pixel spacing and
warnings). A file that cannot be read is a result (``ok: false``, ``error`` the
``MedlimError`` class name), not a failure of the command: the exit status is 0
unless the command itself is misused. Only non-identifying metadata is printed.

Issue 14 ("Hardening"): the settings are read once, before any file (a bad
``MEDLIM_*`` variable exits 2 with its name); an image that runs the computer
out of memory is an error row (``error: "MemoryError"``), not a traceback; each
record is dropped before the next file is read, so at most one image is held.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from medlim.core.io import ImageRecord, read_image
from medlim.errors import MedlimError
from medlim.settings import Settings, get_settings

__all__ = ["register", "image_info", "INFO_FIELDS"]

#: Keys of every ``image info`` object, in output order.
INFO_FIELDS: tuple[str, ...] = (
    "file",
    "ok",
    "error",
    "message",
    "shape",
    "dtype",
    "modality",
    "photometric",
    "bits_stored",
    "view",
    "laterality",
    "study_date",
    "patient_key",
    "frames",
    "pixel_spacing_mm",
    "pixel_spacing_at",
    "pixel_size_um",
    "pixel_size_from",
    "presentation_intent",
    "warnings",
)


def image_info(
    files: Iterable[str], *, frame: int | None = None, settings: Settings | None = None
) -> Iterator[dict[str, Any]]:
    """Describe each file as the reader sees it (one dict per file, keys :data:`INFO_FIELDS`).

    Args:
        files: paths.
        frame: frame to read from multi-frame files (``None``: single-frame only).
        settings: limits and the pseudonym secret (:func:`get_settings` when ``None``,
            read once before the first file).

    Yields:
        Plain JSON-ready dicts; ``ok`` False with ``error``/``message`` when the
        file raised a :class:`MedlimError` or ran out of memory (``"MemoryError"``).

    Raises:
        ParameterError: a ``MEDLIM_*`` variable is malformed (before any file is read).
    """
    settings = settings or get_settings()
    for file in files:
        info: dict[str, Any] = dict.fromkeys(INFO_FIELDS)
        info.update(file=str(file), ok=False, warnings=[])
        try:
            _describe(read_image(file, frame=frame, settings=settings), info)
            _describe_microns(file, info)
        except MedlimError as exc:
            info.update(error=type(exc).__name__, message=exc.message)
        except MemoryError:
            info.update(
                error="MemoryError",
                message=(
                    f"not enough memory to decode {file}; lower MEDLIM_DECODE_BUDGET_MB (now "
                    f"{settings.decode_budget_mb:,} MiB) so that such images are refused before decoding, "
                    "or free memory and try again."
                ),
            )
        yield info


def _describe(record: ImageRecord, info: dict[str, Any]) -> None:
    """Fill ``info`` from a decoded record (the caller does not keep the record)."""
    meta = record.metadata
    info.update(
        ok=True,
        message="decoded",
        shape=list(record.pixels.shape),
        dtype=str(record.pixels.dtype),
        modality=meta.modality,
        photometric=meta.photometric,
        bits_stored=meta.bits_stored,
        view=meta.view,
        laterality=meta.laterality,
        study_date=meta.study_date,
        patient_key=meta.patient_key,
        frames=meta.number_of_frames,
        pixel_spacing_mm=list(meta.pixel_spacing_mm) if meta.pixel_spacing_mm else None,
        pixel_spacing_at=meta.pixel_spacing_label,
        presentation_intent=meta.presentation_intent,
        warnings=list(meta.warnings),
    )


def _describe_microns(file: str, info: dict[str, Any]) -> None:
    """The pixel size a TIFF states in µm (what the microscopy rooms use), from its header."""
    from medlim.core.io.slide import file_spacing_um

    try:
        found = file_spacing_um(file)
    except OSError:
        found = None
    if found is not None:
        info.update(pixel_size_um=round(float(found[0]), 6), pixel_size_from=found[1])


def _table_row(info: dict[str, Any]) -> list[str]:
    if not info["ok"]:
        return [info["file"], info["error"], info["message"]]
    shape = "×".join(str(size) for size in info["shape"])
    parts = [
        shape,
        info["modality"] or "-",
        info["photometric"],
        f"{info['bits_stored']} bit",
        "/".join(filter(None, (info["laterality"], info["view"]))) or "-",
        info["study_date"] or "-",
        f"patient {info['patient_key']}" if info["patient_key"] else "no patient key",
    ]
    if info["pixel_spacing_mm"]:
        row_mm, column_mm = info["pixel_spacing_mm"]
        parts.append(f"{row_mm:g}×{column_mm:g} mm {info['pixel_spacing_at']}")
    if info["pixel_size_um"]:
        parts.append(f"{info['pixel_size_um']:g} µm/px ({info['pixel_size_from']})")
    if info["presentation_intent"] == "FOR PROCESSING":
        parts.append("FOR PROCESSING")
    if info["warnings"]:
        parts.append(f"{len(info['warnings'])} warning(s) (see --jsonl)")
    return [info["file"], "ok", ", ".join(parts)]


def _run_info(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.jsonl:
        for info in image_info(args.files, frame=args.frame):
            out.write(json.dumps(info, ensure_ascii=False) + "\n")
        return 0
    rows = [_table_row(info) for info in image_info(args.files, frame=args.frame)]
    file_width = min(max((len(row[0]) for row in rows), default=4), 60)
    status_width = max((len(row[1]) for row in rows), default=2)
    for file, status, details in rows:
        out.write(f"{file:<{file_width}}  {status:<{status_width}}  {details}\n")
    return 0


def _frame_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frame must be a whole number; {text!r} is given.") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--frame must be 0 or more; {value} is given.")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``image`` (with subcommand ``info``) to the ``medlim`` command line."""
    image = subparsers.add_parser("image", help="inspect images as the reader sees them")
    image_commands = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    info = image_commands.add_parser(
        "info",
        help="describe each file (format, size, non-identifying metadata, or why it cannot be read)",
    )
    info.add_argument("files", nargs="+", metavar="FILE", help="DICOM, PNG, TIFF or JPEG files")
    info.add_argument("--jsonl", action="store_true", help="one JSON object per line instead of a table")
    info.add_argument("--frame", type=_frame_number, default=None, help="frame of multi-frame files (from 0)")
    info.set_defaults(func=_run_info)
