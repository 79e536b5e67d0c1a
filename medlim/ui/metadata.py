"""The non-identifying metadata table shown beside every image.

Built from :class:`medlim.core.io.record.ImageMetadata` only, which by contract
holds no names, IDs or birth dates; the patient appears only as a pseudonymous
key. Pure functions (no streamlit).
"""

from __future__ import annotations

import pandas as pd

from medlim.core.io.record import ImageMetadata, ImageRecord

__all__ = ["spacing_text", "metadata_rows", "metadata_table"]


def spacing_text(metadata: ImageMetadata) -> str:
    """Pixel spacing with unit and where it is measured, or that the file has none.

    Example: ``"0.0700 × 0.0700 mm (row × column), at the detector (not corrected
    for magnification)"``; the wording of the source comes from
    :data:`medlim.core.io.record.PIXEL_SPACING_LABELS`.
    """
    if metadata.pixel_spacing_mm is None:
        return "not recorded in the file (sizes shown in pixels)"
    row, column = metadata.pixel_spacing_mm
    where = metadata.pixel_spacing_label or "source not recorded"
    return f"{row:.4f} × {column:.4f} mm (row × column), {where}"


def _text(value: object | None) -> str:
    return "—" if value is None or value == "" else str(value)


def metadata_rows(record: ImageRecord) -> list[tuple[str, str]]:
    """``(field, value)`` rows describing ``record``, in reading order.

    Covers format, size, modality, view, laterality, study date, bits,
    photometric interpretation, pixel spacing (with its source), presentation
    intent, frames, the pseudonymous patient key and any warnings.
    """
    meta = record.metadata
    height, width = record.pixels.shape[:2]
    channels = record.pixels.shape[2] if record.pixels.ndim == 3 else 1
    size = f"{width} × {height} px" + (f" × {channels} channels" if channels > 1 else "")
    rows: list[tuple[str, str]] = [
        ("File", _text(record.name)),
        ("Format", meta.source_format.upper()),
        ("Size (width × height)", size),
        ("Modality", _text(meta.modality)),
        ("View", _text(meta.view)),
        ("Laterality", _text(meta.laterality)),
        ("Study date", _text(meta.study_date)),
        ("Bits stored", str(meta.bits_stored)),
        ("Photometric interpretation", meta.photometric),
        ("Pixel spacing", spacing_text(meta)),
        ("Presentation intent", _text(meta.presentation_intent)),
        ("Frame", f"{meta.frame_index + 1} of {meta.number_of_frames}"),
        ("Patient key (pseudonymous)", _text(meta.patient_key)),
    ]
    rows.extend(("Warning", warning) for warning in meta.warnings)
    return rows


def metadata_table(record: ImageRecord) -> pd.DataFrame:
    """:func:`metadata_rows` as a two-column table (``Field``, ``Value``), all strings."""
    return pd.DataFrame(metadata_rows(record), columns=["Field", "Value"])
