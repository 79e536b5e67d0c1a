"""Tests for ``medlim phantom``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from medlim.cli import main


def test_phantom_mammogram_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["phantom", "mammogram", "--out", str(out), "--n", "2", "--seed", "4", "--format", "png"])
    assert code == 0
    err = capsys.readouterr().err
    assert "2/2" in err
    document = json.loads((out / "manifest.json").read_text())
    assert document["seed"] == 4 and document["count"] == 2 and document["params"]["size"] == "small"
    command = document["command"]
    assert command.startswith("medlim phantom mammogram ") and "--seed 4" in command and "--format png" in command
    first = document["rows"][0]
    assert first["view_label"] == "LCC" and document["rows"][1]["view_label"] == "RCC"
    image = cv2.imread(str(out / first["file"]), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(out / first["bac_mask"]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (1024, 832) and image.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    with (out / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == [r["file"] for r in document["rows"]]
    # Synthetic names never reach the tables.
    assert "Phantom^" not in (out / "manifest.csv").read_text()


def test_phantom_mammogram_patients_years_dicom(tmp_path: Path) -> None:
    out = tmp_path / "dcm"
    code = main(["phantom", "mammogram", "--out", str(out), "--patients", "1", "--years", "2", "--seed", "9",
                 "--transfer-syntax", "rle", "--photometric", "MONOCHROME1", "--quiet"])
    assert code == 0
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 8
    dates = set()
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.Modality == "MG" and ds.PhotometricInterpretation == "MONOCHROME1"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        assert ds.PatientID == "PHANTOM-0001"
        dates.add(ds.StudyDate)
    assert len(dates) == 2


def test_phantom_mammogram_for_processing(tmp_path: Path) -> None:
    assert main(["phantom", "mammogram", "--out", str(tmp_path), "--n", "1", "--seed", "2", "--for-processing",
                 "--quiet"]) == 0
    ds = pydicom.dcmread(next(tmp_path.glob("*.dcm")))
    assert ds.PresentationIntentType == "FOR PROCESSING"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2.1"


def test_phantom_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phantom", "mammogram", "--out", str(tmp_path), "--seed", "1"]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["phantom", "mammogram", "--out", str(tmp_path), "--n", "1", "--seed", "-1"]) == 2
    assert main(["phantom", "mammogram", "--out", str(tmp_path), "--n", "1", "--years", "0"]) == 2
