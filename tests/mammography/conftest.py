"""Fixtures of the BAC room's tests: a hand-made analysis, without a model."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from medlim.core.io.record import ImageMetadata, ImageRecord

#: p per pixel, I per pixel (thesis preset: TAM counts I > X).
PROBABILITY = np.array([[0.9, 0.7, 0.2], [0.95, 0.1, 0.6]], dtype=np.float32)
GREY = np.array([[150, 90, 200], [100, 255, 120]], dtype=np.uint8)


def make_analysis(
    *,
    view: str | None = "CC",
    laterality: str | None = "L",
    study_date: str | None = "2020-01-02",
    patient_key: str | None = "pk1",
    spacing: tuple[float, float] | None = (0.1, 0.2),
    threshold: float = 0.5,
    x: float = 100.0,
    name: str = "DOE_JANE_LCC.dcm",
    probability: np.ndarray = PROBABILITY,
    grey: np.ndarray = GREY,
    preset: str = "thesis",
):
    """A :class:`BacAnalysis` of the 2×3 image above (breast: every pixel) and its record."""
    from medlim.mammography.analysis import BacAnalysis, requantify

    prediction = SimpleNamespace(
        probability=probability,
        preprocessed=SimpleNamespace(grey=grey, breast_mask=np.ones(grey.shape, bool)),
        preset=preset,
    )
    analysis = BacAnalysis(
        name=name, prediction=prediction, metrics=None, view=view, laterality=laterality, study_date=study_date,
        patient_key=patient_key, pixel_spacing_mm=spacing, spacing_source="PixelSpacing" if spacing else None,
        weights="scunet-bac v2", warnings=("a warning",), seconds=1.23456,
    )  # fmt: skip
    import dataclasses

    analysis = dataclasses.replace(analysis, metrics=requantify(analysis, threshold=threshold, x=x))
    meta = ImageMetadata(source_format="dicom", modality="MG", view=view, laterality=laterality,
                         study_date=study_date, patient_key=patient_key, pixel_spacing_mm=spacing,
                         pixel_spacing_source="PixelSpacing" if spacing else None)  # fmt: skip
    record = ImageRecord(pixels=grey / 255.0, raw=grey.astype(np.float32), metadata=meta, name=name)
    return analysis, record


@pytest.fixture
def tiny_analysis() -> Callable[..., tuple]:
    """:func:`make_analysis` as a fixture."""
    return make_analysis
