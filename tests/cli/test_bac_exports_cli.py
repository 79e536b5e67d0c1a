"""``medlim bac quantify --out DIR --dicom-seg --dicom-sr [--link-to-source] --pdf`` end to end on
a phantom exam with a tiny randomly initialised SCU-Net (issue 16): the files open in pydicom and
highdicom, the SEG is the mask PNG pixel for pixel, the SR holds the JSON readouts, the PDF is one
per exam, and a PNG gets a clear message instead of a SEG."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from medlim.cli import main

#: Attributes of the source that name or place the patient (set on the copies below).
IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-778899",
    "PatientBirthDate": "19580214",
    "InstitutionName": "St Elsewhere Hospital",
    "AccessionNumber": "ACC-20150914-1",
    "ReferringPhysicianName": "House^Gregory",
}


@pytest.fixture(scope="module")
def phantom_exam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", "4", "--seed", "3", "--size", "small"]) == 0
    return folder


@pytest.fixture
def exam(phantom_exam: Path, tmp_path: Path) -> Path:
    """The four views with identifying attributes written into their headers."""
    folder = tmp_path / "exam"
    folder.mkdir()
    for path in sorted(phantom_exam.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword, value in IDENTIFYING.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / path.name.replace("PHANTOM-0001", "view"), enforce_file_format=True)
    return folder


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def pdf_text(pdf: bytes) -> bytes:
    """The PDF's objects outside streams and its decoded page content (reportlab writes text as
    ``(...) Tj`` in ASCII85 + Flate streams); image streams are left out (their pixels are no text)."""
    import re
    import zlib

    from reportlab.pdfbase.pdfutils import asciiBase85Decode

    parts = [re.sub(rb"stream\r?\n.*?endstream", b"", pdf, flags=re.S)]
    for match in re.finditer(rb"<<((?:(?!<<).)*?)>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        if b"/Image" not in match.group(1):
            parts.append(zlib.decompress(asciiBase85Decode(match.group(2).strip())))
    return b"\n".join(parts)


def _measurements(sr_path: str) -> dict[tuple[str, str], float]:
    import highdicom as hd

    report = hd.sr.srread(sr_path)
    (group,) = report.content.get_planar_roi_measurement_groups()
    return {(m.name.value, m.unit.value): m.value for m in group.get_measurements()}


@pytest.mark.slow
def test_quantify_writes_deidentified_seg_sr_and_one_pdf_per_exam(
    exam: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import highdicom as hd

    from medlim.core.io.pseudonym import patient_key

    out = tmp_path / "out"
    assert main(["bac", "quantify", str(exam), "--jsonl", "--no-store", "--device", "cpu", "--out", str(out),
                 "--dicom-seg", "--dicom-sr", "--pdf"]) == 0  # fmt: skip
    lines = _lines(capsys)
    rows, (pdf_line,) = [r for r in lines if "ok" in r], [r for r in lines if "pdf" in r]
    assert len(rows) == 4 and all(r["ok"] and r["dicom_mode"] == "de-identified" for r in rows)
    key = patient_key(IDENTIFYING["PatientID"])
    assert pdf_line == {"pdf": str(out / f"{key}_2015-09-14_report.pdf"), "views": 4}
    for row in rows:
        stem = Path(row["file"]).stem
        assert (row["seg"], row["sr"]) == (str(out / f"{stem}_seg.dcm"), str(out / f"{stem}_sr.dcm"))
        source = pydicom.dcmread(row["file"], stop_before_pixels=True)
        raw = Path(row["seg"]).read_bytes() + Path(row["sr"]).read_bytes()
        for value in [*IDENTIFYING.values(), source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID]:
            assert value.encode() not in raw, value
        seg = hd.seg.segread(row["seg"])
        assert (seg.PatientID, str(seg.PatientName).rstrip("^"), seg.PatientIdentityRemoved) == (key, key, "YES")
        assert seg.StudyDate == "20150914" and seg.PatientBirthDate == "" and "InstitutionName" not in seg
        (series,) = seg.ReferencedSeriesSequence
        (referenced,) = series.ReferencedInstanceSequence
        new_sop = referenced.ReferencedSOPInstanceUID
        assert new_sop.startswith("2.25.") and series.SeriesInstanceUID.startswith("2.25.")
        assert seg.StudyInstanceUID.startswith("2.25.")
        pixels = seg.get_pixels_by_source_instance([new_sop], segment_numbers=[1])[0, :, :, 0]
        mask = cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED)
        assert np.array_equal(pixels.astype(bool), mask == 255) and int(pixels.sum()) == row["am"]
        sr = pydicom.dcmread(row["sr"])
        assert sr.StudyInstanceUID == seg.StudyInstanceUID and sr.PatientID == key
        values = _measurements(row["sr"])
        assert values[("BAC-AM", "{pixels}")] == row["am"] and values[("BAC-TAMX", "{pixels}")] == row["tam_x"]
        assert values[("BAC-AM", "mm2")] == pytest.approx(row["am_mm2"], abs=1e-9)
        assert values[("BAC-TAMX", "mm2")] == pytest.approx(row["tam_x_mm2"], abs=1e-9)
        for code, key_ in (("BAC-PM", "pm"), ("BAC-SIM", "sim"), ("BAC-TSIMX", "tsim_x"), ("BAC-X", "x"),
                           ("BAC-T", "threshold")):  # fmt: skip
            assert values[(code, "1")] == pytest.approx(row[key_], rel=1e-12, abs=1e-9), code
    studies = {pydicom.dcmread(r["seg"]).StudyInstanceUID for r in rows}
    assert len(studies) == 1  # the four views stay one (pseudonymous) study
    pdf = Path(pdf_line["pdf"]).read_bytes()
    text = pdf_text(pdf)
    assert pdf.startswith(b"%PDF") and b"/Type /Page\n" in pdf and b"Tj" in text
    assert b"view_2015" not in text and b"Doe" not in text and b"MRN" not in text and key.encode() in text
    for row in rows:  # the readouts as the JSON prints them
        assert all(f"({row[k]})".encode() in text for k in ("am", "am_mm2", "tam_x", "tam_x_mm2", "pm")), row


def test_link_to_source_references_the_source_and_keeps_its_patient(
    exam: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import highdicom as hd

    lcc = next(exam.glob("*_LCC.dcm"))
    out = tmp_path / "out"
    assert main(["bac", "quantify", str(lcc), "--jsonl", "--no-store", "--device", "cpu", "--out", str(out),
                 "--dicom-sr", "--link-to-source"]) == 0  # fmt: skip
    (row,) = _lines(capsys)
    assert row["dicom_mode"] == "linked to source" and "pdf" not in row
    source = pydicom.dcmread(lcc, stop_before_pixels=True)
    seg = hd.seg.segread(row["seg"])
    assert (seg.StudyInstanceUID, seg.PatientID, str(seg.PatientName)) == (
        source.StudyInstanceUID, "MRN-778899", "Doe^Jane")
    assert seg.AccessionNumber == IDENTIFYING["AccessionNumber"]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
    assert np.array_equal(pixels.astype(bool), cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED) == 255)
    sr = hd.sr.srread(row["sr"])
    (group,) = sr.content.get_planar_roi_measurement_groups()
    frame = group.referenced_segmentation_frame
    assert frame.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert frame.referenced_segment_numbers == [1]
    assert frame.source_image_for_segmentation.referenced_sop_instance_uid == source.SOPInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    series = {s.SeriesInstanceUID for s in evidence.ReferencedSeriesSequence}
    assert source.SeriesInstanceUID in series and seg.SeriesInstanceUID in series


def test_png_input_gets_a_clear_message_and_keeps_its_readouts(
    phantom_exam: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.core.io import read_image

    png = tmp_path / "export.png"
    cv2.imwrite(str(png), read_image(next(phantom_exam.glob("*_LCC.dcm"))).to_uint8())
    out = tmp_path / "out"
    args = ["bac", "quantify", str(png), "--no-store", "--device", "cpu", "--out", str(out), "--dicom-seg"]
    assert main([*args, "--jsonl", "--pdf"]) == 0
    row, pdf_line = _lines(capsys)
    assert row["ok"] and row["am"] >= 0 and "seg" not in row and Path(row["mask"]).is_file()
    assert row["export_error"].startswith(f"{png} is not a DICOM file: DICOM SEG and SR reference")
    assert not list(out.glob("*.dcm"))
    assert pdf_line == {"pdf": str(out / "no-patient-key_no-date_report.pdf"), "views": 1}  # the PDF still comes
    assert b"export.png" not in pdf_text(Path(pdf_line["pdf"]).read_bytes())
    assert main(args) == 0
    assert f"[not exported: {png} is not a DICOM file" in capsys.readouterr().out


def test_export_options_need_out_and_link_needs_dicom(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bac", "quantify", "missing.dcm", "--pdf"]) == 2
    assert "give the folder with --out DIR" in capsys.readouterr().err
    assert main(["bac", "quantify", "missing.dcm", "--out", "x", "--link-to-source"]) == 2
    assert "--link-to-source applies to --dicom-seg/--dicom-sr" in capsys.readouterr().err

