"""``medlim image info``: one JSON object per file, never a crash, nothing identifying."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom import uid

from medlim.cli import main
from medlim.errors import MedlimError

REQUIRED = ("file", "ok", "error", "message", "shape", "dtype", "modality", "photometric", "bits_stored",
            "view", "laterality", "study_date", "patient_key")


def _identifying_mammogram(tmp_path):  # noqa: ANN202 - test helper
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = uid.generate_uid()
    ds.Modality, ds.ViewPosition, ds.ImageLaterality, ds.StudyDate = "MG", "MLO", "R", "20240115"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "ID-987654", "19610704"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 2, 3, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(6, dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    path = tmp_path / "Doe_Jane.dcm"  # a file name may itself identify: it is the user's own input
    ds.save_as(path, enforce_file_format=True)
    return path


def _jsonl(capsys, *args: str) -> list[dict]:
    assert main(["image", "info", "--jsonl", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_one_object_per_file_with_the_contract_fields(tmp_path, capsys) -> None:
    mammogram = _identifying_mammogram(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    rows = _jsonl(capsys, str(mammogram), str(tmp_path / "empty.png"), get_testdata_file("rtdose.dcm"))
    assert len(rows) == 3
    good, empty, multi = rows
    assert all(key in row for row in rows for key in REQUIRED)
    assert good["ok"] is True and good["error"] is None
    assert good["shape"] == [2, 3] and good["dtype"] == "float32"
    assert (good["modality"], good["photometric"], good["bits_stored"]) == ("MG", "MONOCHROME2", 12)
    assert (good["view"], good["laterality"], good["study_date"]) == ("MLO", "R", "2024-01-15")
    assert len(good["patient_key"]) == 16
    assert (empty["ok"], empty["error"]) == (False, "EmptyFileError") and "empty" in empty["message"]
    assert multi["error"] == "MultiFrameError" and "--frame" in multi["message"]
    assert _jsonl(capsys, "--frame", "2", get_testdata_file("rtdose.dcm"))[0]["ok"] is True


def test_no_identifying_value_in_json_or_table(tmp_path, capsys) -> None:
    mammogram = _identifying_mammogram(tmp_path)
    for args in (["--jsonl", str(mammogram)], [str(mammogram)]):
        assert main(["image", "info", *args]) == 0
        captured = capsys.readouterr()
        text = (captured.out + captured.err).replace(str(mammogram), "<file>")
        for value in ("Doe", "Jane", "987654", "19610704", "1961-07-04"):
            assert value not in text
        assert "2024-01-15" in text


def test_table_output(capsys) -> None:
    assert main(["image", "info", get_testdata_file("CT_small.dcm"), get_testdata_file("rtstruct.dcm")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert " ok " in lines[0] and "128×128" in lines[0] and "CT" in lines[0]
    assert "NotDicomImageError" in lines[1]


def test_misuse_exits_nonzero(capsys) -> None:
    with pytest.raises(SystemExit) as no_files:
        main(["image", "info"])
    assert no_files.value.code == 2
    with pytest.raises(SystemExit) as bad_frame:
        main(["image", "info", "--frame", "-1", "x.dcm"])
    assert bad_frame.value.code == 2


def test_never_crashes_on_the_pydicom_corpus(capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = sorted(get_testdata_files())
    rows = _jsonl(capsys, *files)
    assert [row["file"] for row in rows] == files
    errors = {row["error"] for row in rows if not row["ok"]}
    medlim_errors = {cls.__name__ for cls in _subclasses(MedlimError)}
    assert errors <= medlim_errors
    assert sum(row["ok"] for row in rows) >= 80


def _subclasses(cls: type) -> set[type]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found
