"""Image input: one reader for DICOM, PNG, TIFF and JPEG, returning pixels plus
non-identifying metadata (issue 2, "Image input"; METHODS.md §1).

DICOM LUTs, windowing and MONOCHROME1 inversion happen once, here; nothing
downstream re-implements them. No streamlit, no analysis.
"""

from __future__ import annotations

from medlim.core.io.dicom import FOR_PROCESSING_WARNING, mammography_view, pixel_spacing
from medlim.core.io.formats import sniff_format
from medlim.core.io.pseudonym import patient_key
from medlim.core.io.reader import read_image, read_labels
from medlim.core.io.record import PIXEL_SPACING_LABELS, ImageMetadata, ImageRecord
from medlim.core.io.windowing import VOI_FUNCTIONS, apply_lut, apply_value_range, apply_window

__all__ = [
    "ImageMetadata",
    "ImageRecord",
    "PIXEL_SPACING_LABELS",
    "FOR_PROCESSING_WARNING",
    "VOI_FUNCTIONS",
    "read_image",
    "read_labels",
    "apply_window",
    "apply_lut",
    "apply_value_range",
    "sniff_format",
    "patient_key",
    "pixel_spacing",
    "mammography_view",
]
