"""The committed mammogram samples match their recorded seeds."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pydicom
import pytest

from medlim.phantoms.dicom import STYLES, stored_from_presentation
from medlim.phantoms.mammogram import generate_mammogram
from medlim.phantoms.samples import DICOM_PLAN, PNG_SEED, SAMPLE_SEED
from medlim.settings import project_root
from tests.phantoms.goldens import assert_regenerated

SAMPLES = project_root() / "data_samples" / "mammograms"


def _need_samples() -> None:
    if not (SAMPLES / "dicom" / "manifest.json").is_file():
        pytest.skip("data_samples/mammograms is not present")


def test_dicom_samples_record_their_seed_and_plan() -> None:
    _need_samples()
    document = json.loads((SAMPLES / "dicom" / "manifest.json").read_text())
    assert document["seed"] == SAMPLE_SEED and len(document["rows"]) == len(DICOM_PLAN) == 8
    syntaxes = set()
    photometrics = set()
    for row in document["rows"]:
        ds = pydicom.dcmread(SAMPLES / "dicom" / row["file"])
        syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
        photometrics.add(ds.PhotometricInterpretation)
        assert ds.PatientID == "PHANTOM-0001" and ds.StudyDate == row["study_date"].replace("-", "")
    assert "RLE Lossless" in syntaxes and "MONOCHROME1" in photometrics
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 8 * 1024 * 1024


def test_first_dicom_sample_regenerates_exactly() -> None:
    _need_samples()
    document = json.loads((SAMPLES / "dicom" / "manifest.json").read_text())
    row = document["rows"][0]
    phantom = generate_mammogram(seed=SAMPLE_SEED, index=0, **document["params"])
    style_name, _, _ = DICOM_PLAN[0]
    ds = pydicom.dcmread(SAMPLES / "dicom" / row["file"])
    assert_regenerated(ds.pixel_array, stored_from_presentation(phantom.image, STYLES[style_name]))
    mask = cv2.imread(str(SAMPLES / "dicom" / row["bac_mask"]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask > 0, phantom.bac_mask)
    assert phantom.bac_mask.any()


def test_png_samples() -> None:
    _need_samples()
    document = json.loads((SAMPLES / "png" / "manifest.json").read_text())
    assert document["seed"] == PNG_SEED
    row = document["rows"][0]
    image = cv2.imread(str(SAMPLES / "png" / row["file"]), cv2.IMREAD_UNCHANGED)
    phantom = generate_mammogram(seed=PNG_SEED, index=row["index"], **document["params"])
    assert_regenerated(image, np.clip(np.rint(phantom.image * 255), 0, 255).astype(np.uint8))
