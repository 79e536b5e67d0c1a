"""The non-identifying metadata table (medlim.ui.metadata)."""

from __future__ import annotations

import numpy as np

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.ui.metadata import metadata_table, spacing_text


def _record(**meta: object) -> ImageRecord:
    pixels = np.zeros((6, 8), dtype=np.float32)
    return ImageRecord(pixels=pixels, raw=pixels, metadata=ImageMetadata(source_format="dicom", **meta), name="a.dcm")


def test_spacing_absent_is_said_not_guessed() -> None:
    assert spacing_text(ImageMetadata(source_format="png")).startswith("not recorded")


def test_spacing_labels_detector_and_breast() -> None:
    detector = ImageMetadata(source_format="dicom", pixel_spacing_mm=(0.07, 0.07), pixel_spacing_source="ImagerPixelSpacing")
    assert spacing_text(detector) == (
        "0.0700 × 0.0700 mm (row × column), at the detector (not corrected for magnification)"
    )
    breast = ImageMetadata(
        source_format="dicom",
        pixel_spacing_mm=(0.0625, 0.0625),
        pixel_spacing_source="ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor",
    )
    assert "at the breast" in spacing_text(breast) and "0.0625 × 0.0625 mm" in spacing_text(breast)


def test_table_rows_and_warnings() -> None:
    table = metadata_table(
        _record(
            modality="MG",
            view="CC",
            laterality="L",
            presentation_intent="FOR PROCESSING",
            patient_key="pk-1",
            warnings=("For Processing image",),
        )
    )
    values = dict(zip(table["Field"], table["Value"]))
    assert values["Size (width × height)"] == "8 × 6 px"
    assert values["Modality"] == "MG" and values["Laterality"] == "L"
    assert values["Study date"] == "—"
    assert values["Frame"] == "1 of 1"
    assert values["Patient key (pseudonymous)"] == "pk-1"
    assert values["Warning"] == "For Processing image"
    assert not any("name" in field.lower() and field != "File" for field in table["Field"])
