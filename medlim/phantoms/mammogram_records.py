"""What a mammogram phantom is: its metadata, look-alikes and ground truth (records only).

The generator (:mod:`medlim.phantoms.mammogram`) makes these records and the
DICOM writer (:mod:`medlim.phantoms.dicom`) reads them; both import this
module, so neither needs the other. No real person is behind any of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MammogramMetadata", "Lookalike", "MammogramPhantom"]


@dataclass(frozen=True)
class MammogramMetadata:
    """What a phantom image is (no real person behind any of it).

    Attributes:
        seed, index: the generator inputs.
        patient_index: 0-based patient number within the series.
        patient_id: synthetic pseudonym, e.g. ``"PHANTOM-0003"``.
        patient_name: synthetic name, e.g. ``"Phantom^0003"``.
        exam_index: 0-based yearly exam number.
        study_date: ISO ``"YYYY-MM-DD"``; exams are one year apart.
        laterality: ``"L"`` or ``"R"``.
        view: ``"CC"`` or ``"MLO"``.
        view_label: ``"RMLO"`` etc., as burned into the image.
        size: size name; ``shape`` (rows, cols); ``pixel_spacing_mm`` at the breast.
        density: fibroglandular density in [0, 1]; ``birads_density`` ``"a".."d"``.
        has_bac: the patient has BAC at some exam; ``progressing``: it grows.
        bac_length_mm: visible calcified length along the vessels (mm, breast frame).
        bac_area_px: pixels in the BAC mask.
        style: vendor-style name (storage and look, see :mod:`medlim.phantoms.dicom`).
        tone_gamma, noise_sigma, blur_sigma_px: the rendering choices.
        chest_wall: ``"left"`` or ``"right"`` image edge.
    """

    seed: int
    index: int
    patient_index: int
    patient_id: str
    patient_name: str
    exam_index: int
    study_date: str
    laterality: str
    view: str
    view_label: str
    size: str
    shape: tuple[int, int]
    pixel_spacing_mm: float
    density: float
    birads_density: str
    has_bac: bool
    progressing: bool
    bac_length_mm: float
    bac_area_px: int
    style: str
    tone_gamma: float
    noise_sigma: float
    blur_sigma_px: float
    chest_wall: str


@dataclass(frozen=True)
class Lookalike:
    """One look-alike (not BAC), in image pixels.

    Attributes:
        kind: a key of :data:`~medlim.phantoms.mammogram.LOOKALIKE_CODES`.
        row, col: centre (pixels, float).
        size_px: diameter or length in pixels.
    """

    kind: str
    row: float
    col: float
    size_px: float


@dataclass(frozen=True)
class MammogramPhantom:
    """One synthetic mammogram and its exact ground truth.

    Attributes:
        image: presentation image ``np.ndarray[H, W]`` float32 in [0, 1],
            brighter = denser; background 0; the burned-in label is 1.
        bac_mask: ``np.ndarray[H, W]`` bool, the calcified artery pixels.
        breast_mask: ``np.ndarray[H, W]`` bool, the breast (pectoral muscle
            included, label and background excluded).
        pectoral_mask: ``np.ndarray[H, W]`` bool (all False on CC views).
        lookalike_mask: ``np.ndarray[H, W]`` uint8 codes of :data:`~medlim.phantoms.mammogram.LOOKALIKE_CODES`
            (never set where ``bac_mask`` is).
        label_mask: ``np.ndarray[H, W]`` bool, the burned-in view label.
        lookalikes: the look-alikes drawn.
        metadata: what the image is.
    """

    image: np.ndarray
    bac_mask: np.ndarray
    breast_mask: np.ndarray
    pectoral_mask: np.ndarray
    lookalike_mask: np.ndarray
    label_mask: np.ndarray
    lookalikes: tuple[Lookalike, ...]
    metadata: MammogramMetadata
