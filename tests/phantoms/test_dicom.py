"""Tests for the phantom DICOM writer: tags, stored values, compression, re-reading."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from medlim.errors import ParameterError
from medlim.phantoms.dicom import (
    STYLES,
    DicomStyle,
    presentation_from_stored,
    stored_from_presentation,
    write_mammogram_dicom,
)
from medlim.phantoms.mammogram import MammogramPhantom, generate_mammogram
from tests.phantoms.goldens import expect_golden


@lru_cache(maxsize=None)
def _phantom(index: int) -> MammogramPhantom:
    return generate_mammogram(seed=21, index=index, size="small", bac_fraction=1.0)


def test_linear_window_round_trip_by_hand() -> None:
    # 12 bits, slope 1, intercept 0: window maps raw 0.02·4095 = 81.9 → 0 and 0.96·4095 → 1.
    style = DicomStyle(bits_stored=12, window="linear")
    centre, width = style.window_center_width()
    assert width == pytest.approx(0.94 * 4095 + 1.0)
    assert centre == pytest.approx(81.9 + 0.5 + 0.5 * 0.94 * 4095)
    stored = stored_from_presentation(np.array([[0.0, 0.5, 1.0]]), style)
    np.testing.assert_array_equal(stored, [[82, round(81.9 + 0.5 * 0.94 * 4095), round(0.96 * 4095)]])
    np.testing.assert_allclose(presentation_from_stored(stored, style), [[0.0, 0.5, 1.0]], atol=5e-4)


def test_monochrome1_stores_inverted_values() -> None:
    mono2 = DicomStyle(bits_stored=16, window="none")
    mono1 = dataclasses.replace(mono2, photometric="MONOCHROME1")
    values = np.array([[0.0, 0.25, 1.0]])
    np.testing.assert_array_equal(stored_from_presentation(values, mono2), [[0, 16384, 65535]])
    np.testing.assert_array_equal(stored_from_presentation(values, mono1), [[65535, 49151, 0]])
    np.testing.assert_allclose(presentation_from_stored(stored_from_presentation(values, mono1), mono1), values,
                               atol=1e-4)


@pytest.mark.parametrize("name", sorted(STYLES))
def test_styles_round_trip_the_presentation_image(name: str) -> None:
    ph = _phantom(0)
    style = STYLES[name]
    shown = presentation_from_stored(stored_from_presentation(ph.image, style), style)
    inside = ph.breast_mask
    error = np.abs(shown - ph.image)[inside]
    assert error.mean() < 2e-3 and error.max() < 0.02


def _write(tmp_path: Path, index: int, style: DicomStyle) -> tuple[MammogramPhantom, pydicom.Dataset]:
    ph = _phantom(index)
    path = write_mammogram_dicom(ph, tmp_path / f"{index}.dcm", style=style)
    return ph, pydicom.dcmread(path)


@pytest.mark.parametrize("index", [0, 3])
def test_mg_tags(tmp_path: Path, index: int) -> None:
    ph, ds = _write(tmp_path, index, STYLES["A"])
    meta = ph.metadata
    assert ds.Modality == "MG"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography – For Presentation
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.ImageLaterality == meta.laterality
    assert ds.ViewPosition == meta.view
    code = ds.ViewCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == (
        {"CC": "399162004", "MLO": "399368009"}[meta.view], "SCT")
    assert ds.AnatomicRegionSequence[0].CodeValue == "76752008" and ds.OrganExposed == "BREAST"
    assert ds.StudyDate == meta.study_date.replace("-", "")
    assert ds.PatientID == meta.patient_id and ds.PatientID.startswith("PHANTOM-")
    assert str(ds.PatientName) == meta.patient_name and str(ds.PatientName).startswith("Phantom^")
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientBirthDate == ""
    for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
        assert UID(uid).is_valid
    assert (ds.Rows, ds.Columns) == ph.image.shape
    assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and ds.HighBit == 11
    assert ds.VOILUTFunction == "SIGMOID" and "WindowCenter" in ds
    assert ds.pixel_array.shape == ph.image.shape and ds.pixel_array.max() <= 4095


def test_uids_are_deterministic_and_distinct(tmp_path: Path) -> None:
    _, a = _write(tmp_path, 0, STYLES["C"])
    _, b = _write(tmp_path, 0, STYLES["C"])
    _, c = _write(tmp_path, 1, STYLES["C"])
    assert a.SOPInstanceUID == b.SOPInstanceUID != c.SOPInstanceUID
    assert a.StudyInstanceUID == c.StudyInstanceUID  # same exam


@pytest.mark.parametrize("name", sorted(STYLES))
def test_pixels_re_read_and_spacing_tags(tmp_path: Path, name: str) -> None:
    style = STYLES[name]
    ph, ds = _write(tmp_path, 1, style)
    spacing = ph.metadata.pixel_spacing_mm
    assert ds.BitsStored == style.bits_stored and ds.PhotometricInterpretation == style.photometric
    np.testing.assert_array_equal(ds.pixel_array, stored_from_presentation(ph.image, style))
    if style.spacing_tags in ("pixel", "both"):
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([spacing, spacing])
    else:
        assert "PixelSpacing" not in ds
    if style.spacing_tags in ("imager", "both"):
        ratio = float(ds.ImagerPixelSpacing[0]) / float(ds.EstimatedRadiographicMagnificationFactor)
        assert ratio == pytest.approx(spacing, rel=1e-5)
        assert float(ds.ImagerPixelSpacing[0]) > spacing
    if style.window == "none":
        assert "WindowCenter" not in ds
    if style.photometric == "MONOCHROME1":
        assert ds.PresentationLUTShape == "INVERSE"


@pytest.mark.parametrize("syntax,uid", [("rle", "1.2.840.10008.1.2.5"), ("jpeg2000", "1.2.840.10008.1.2.4.90")])
def test_compressed_transfer_syntaxes_are_lossless(tmp_path: Path, syntax: str, uid: str) -> None:
    style = dataclasses.replace(STYLES["B"], transfer_syntax=syntax)
    ph, ds = _write(tmp_path, 2, style)
    assert ds.file_meta.TransferSyntaxUID == uid
    np.testing.assert_array_equal(ds.pixel_array, stored_from_presentation(ph.image, style))


def test_for_processing_variant(tmp_path: Path) -> None:
    style = dataclasses.replace(STYLES["C"], presentation_intent="FOR PROCESSING")
    _, ds = _write(tmp_path, 0, style)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2.1"
    assert ds.PresentationIntentType == "FOR PROCESSING"
    assert "WindowCenter" not in ds


def test_bad_style_values() -> None:
    with pytest.raises(ParameterError, match="13"):
        DicomStyle(bits_stored=13)
    with pytest.raises(ParameterError):
        DicomStyle(window="log")
    with pytest.raises(ParameterError):
        DicomStyle(transfer_syntax="jpeg-ls")


def test_project_reader_gives_back_the_presentation_image(tmp_path: Path) -> None:
    reader = pytest.importorskip("medlim.core.io.reader")
    for name in sorted(STYLES):
        ph, _ = _write(tmp_path, 3, STYLES[name])
        record = reader.read_image(tmp_path / "3.dcm")
        assert record.metadata.modality == "MG"
        assert record.metadata.laterality == ph.metadata.laterality and record.metadata.view == ph.metadata.view
        assert record.metadata.pixel_spacing_mm == pytest.approx((0.28, 0.28))
        error = np.abs(record.pixels - ph.image)[ph.breast_mask]
        assert error.mean() < 4e-3, name


def test_encoder_failure_falls_back_to_uncompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.phantoms.dicom import encode, mammogram_dataset

    ds = mammogram_dataset(_phantom(0), style=STYLES["C"])

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no encoder here")

    monkeypatch.setattr(type(ds), "compress", broken)
    with pytest.warns(RuntimeWarning, match="uncompressed"):
        assert encode(ds, "jpeg2000") == "explicit"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    with pytest.raises(ParameterError):
        encode(ds, "jpeg-ls")


@pytest.mark.parametrize(
    ("style", "intent", "expected"),
    [
        # sha256 of the written file (seed 11, image 2; the pydicom implementation UID pinned), recorded from the
        # generator before it was split into named steps (issue 17) and checked equal to it; per CPU class
        # (tests/phantoms/goldens.py), the AVX2 digests recorded 2026-12-08 from the unchanged generator.
        ("A", "FOR PRESENTATION", {"avx512": "b148c5e06bda2d4372dc3f5482a2e10057e8ea2ae82c772d368e603e94748771",
                                 "avx2": "b89877c32be278760cff9ce3cf7d07f60244c0805d71f4d56d7a981c7921ff48"}),
        ("B", "FOR PRESENTATION", {"avx512": "ca83c01f92d2044c00b58177c93af9fd0b53b76a5efbc80357529b0785e53611",
                                 "avx2": "8d41c7a5ffe2749db62152e79f9f523cc0cc64ad32d5cca95db12798305f47e4"}),
        ("C", "FOR PRESENTATION", {"avx512": "26be25d515253ccc65a0470c437c8bea2e25b84761ff434e81167b09d34526c6",
                                 "avx2": "516e9699735126e59c3492ce9429b98ac50224c3550a5c33dc3b98ffab0ea817"}),
        ("D", "FOR PRESENTATION", {"avx512": "6851f4fef3de76c773c07e5de79fa59f5938a772c5793983411931e9bccb36f5",
                                 "avx2": "61d1436c16d59a49a36d48362b9f94f089d5afaf74adfda03c7697ca433a3568"}),
        ("B", "FOR PROCESSING", {"avx512": "55390126fa01eb37ab5004c0be5327f6fc39d33b23724556bddb7db5f02aca19",
                               "avx2": "4df2130c21ed255054f8bddaf6d6af9766141c619496cb094da5bc33ab3ed01e"}),
    ],
)
def test_golden_datasets(style: str, intent: str, expected: dict[str, str]) -> None:
    import hashlib
    import io

    from medlim.phantoms.dicom import mammogram_dataset

    style_object = dataclasses.replace(STYLES[style], presentation_intent=intent)
    ds = mammogram_dataset(generate_mammogram(seed=11, index=2), style=style_object)
    ds.file_meta.ImplementationClassUID = "1.2.3"  # pydicom's own UID changes with its version
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    expect_golden(hashlib.sha256(buffer.getvalue()).hexdigest(), expected)
