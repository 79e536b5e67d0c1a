"""The image record every reader returns: pixels plus non-identifying metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ImageMetadata", "ImageRecord", "PIXEL_SPACING_LABELS"]

#: Plain-language meaning of each ``pixel_spacing_source``: where the pixel size is
#: measured. PixelSpacing is at the patient (for a mammogram: the breast);
#: ImagerPixelSpacing is at the detector, larger than at the breast by the
#: geometric magnification, which EstimatedRadiographicMagnificationFactor undoes.
PIXEL_SPACING_LABELS: dict[str, str] = {
    "PixelSpacing": "at the patient/breast",
    "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor": "at the breast (detector spacing ÷ magnification)",
    "ImagerPixelSpacing": "at the detector (not corrected for magnification)",
}


@dataclass(frozen=True)
class ImageMetadata:
    """Non-identifying metadata. Never holds names, IDs or birth dates.

    Attributes:
        source_format: ``"dicom"``, ``"png"``, ``"tiff"`` or ``"jpeg"``.
        modality: DICOM Modality (``"MG"``, ``"CR"``, ...) or ``None``.
        view: ``"CC"``, ``"MLO"``, ... (from ViewPosition / view code) or ``None``.
        laterality: ``"L"``, ``"R"`` or ``None``.
        study_date: ISO date ``"YYYY-MM-DD"`` or ``None``.
        bits_stored: bits per sample in the file (8 for 8-bit rasters).
        photometric: DICOM PhotometricInterpretation as read, or
            ``"MONOCHROME2"``/``"RGB"`` for rasters.
        pixel_spacing_mm: (row, column) spacing in mm, or ``None`` when the file
            has none (never guessed).
        pixel_spacing_source: ``"PixelSpacing"`` (at the patient/breast),
            ``"ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"``
            (at the breast, corrected), ``"ImagerPixelSpacing"`` (at the detector) or ``None``.
        patient_key: pseudonymous key (keyed hash of PatientID) or ``None``.
        presentation_intent: ``"FOR PRESENTATION"``, ``"FOR PROCESSING"`` or ``None``.
        number_of_frames: frames in the file (the record holds one).
        frame_index: which frame the pixels are.
        warnings: plain-language warnings (e.g. a "For Processing" mammogram).
    """

    source_format: str
    modality: str | None = None
    view: str | None = None
    laterality: str | None = None
    study_date: str | None = None
    bits_stored: int = 8
    photometric: str = "MONOCHROME2"
    pixel_spacing_mm: tuple[float, float] | None = None
    pixel_spacing_source: str | None = None
    patient_key: str | None = None
    presentation_intent: str | None = None
    number_of_frames: int = 1
    frame_index: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pixel_spacing_label(self) -> str | None:
        """Where ``pixel_spacing_mm`` is measured, in words (``None`` without a spacing)."""
        if self.pixel_spacing_source is None:
            return None
        return PIXEL_SPACING_LABELS.get(self.pixel_spacing_source, self.pixel_spacing_source)


@dataclass(frozen=True)
class ImageRecord:
    """Decoded image plus metadata.

    Attributes:
        pixels: display-ready values after the full DICOM chain (modality LUT →
            VOI LUT/window → MONOCHROME1 inversion → presentation LUT):
            ``np.ndarray[H, W]`` float32 in [0, 1] for grey images,
            ``np.ndarray[H, W, 3]`` float32 in [0, 1] for colour.
        raw: stored values after the modality LUT only (``np.ndarray[H, W]`` or
            ``[H, W, 3]``, float32, original units), for re-windowing.
        metadata: non-identifying metadata.
        name: file name (no folders), for display.
    """

    pixels: np.ndarray
    raw: np.ndarray
    metadata: ImageMetadata
    name: str = ""

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3

    def to_uint8(self) -> np.ndarray:
        """Pixels as ``np.ndarray[H, W(, 3)]`` uint8 in 0..255 (rounded)."""
        return np.clip(np.rint(self.pixels * 255.0), 0, 255).astype(np.uint8)
