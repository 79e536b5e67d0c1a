"""The mammography page's DICOM SEG/SR and PDF downloads (AppTest; issue 16).

The page offers ``<view>_seg.dcm``, ``<view>_sr.dcm`` (the mode chosen explicitly:
de-identified by default, or "return to PACS") and the exam's PDF, built by the
room's functions: the SEG equals the one ``medlim bac quantify --dicom-seg``
writes for the same file, weights and cut-off (same UIDs, same pixels).
A tiny randomly initialised SCU-Net stands in for trained weights.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from streamlit.testing.v1 import AppTest

from medlim.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "mammography.py")
TIMEOUT = 120  # first runs import torch; inference of a 1024×832 image takes seconds on a busy CPU
IDENTIFYING = {"PatientName": "Doe^Jane", "PatientID": "MRN-778899", "InstitutionName": "St Elsewhere Hospital",
               "AccessionNumber": "ACC-20150914-1", "ReferringPhysicianName": "House^Gregory",
               "PatientBirthDate": "19580214"}  # fmt: skip


@pytest.fixture(scope="module")
def lcc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (1024×832) left CC phantom whose header names a patient and a hospital."""
    folder = tmp_path_factory.mktemp("exports")
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", "1", "--seed", "5", "--size", "small",
                 "--quiet"]) == 0  # fmt: skip
    (path,) = folder.glob("*.dcm")
    ds = pydicom.dcmread(path)
    for keyword, value in IDENTIFYING.items():
        setattr(ds, keyword, value)
    named = folder / "Doe_Jane_LCC.dcm"
    ds.save_as(named, enforce_file_format=True)
    return named


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    directory = tmp_path / "weights"
    fields = {
        "name": "scunet-bac", "version": "0-test", "task": "bac-segmentation", "architecture": "scunet",
        "preset": "thesis",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0]},
        "output_type": "probability", "thresholds": {"output": 0.5},
        "params": {"overlap": 64, "merge": "max", "skip": True, "output_activation": "sigmoid", "x": 100.0},
    }  # fmt: skip
    save_weights(Registry.load(directory), fields, build_scunet().eval().state_dict())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
    return directory


def _offers(recorded: list[dict]) -> dict[str, object]:
    """The latest offered data of each file name."""
    return {offer["file_name"]: offer["data"] for offer in recorded}


def _seg_pixels(data: bytes) -> tuple[pydicom.Dataset, np.ndarray]:
    import highdicom as hd

    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(data)))
    sop = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    return seg, seg.get_pixels_by_source_instance([sop], segment_numbers=[1])[0, :, :, 0]


def test_page_offers_the_clis_seg_sr_and_pdf_in_the_mode_the_reader_chooses(
    lcc_file: Path, registry: Path, tmp_path: Path, recorded_downloads: list[dict],
    capsys: pytest.CaptureFixture[str],
) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload(lcc_file.name, lcc_file.read_bytes(), "application/dicom").run()
    assert not at.exception and not at.error
    mode = at.radio(key="bac_dicom_mode")
    assert mode.value == "De-identified copy (default)" and len(mode.options) == 2
    offers = _offers(recorded_downloads)
    seg_bytes, sr_bytes = offers["LCC_seg.dcm"](), offers["LCC_sr.dcm"]()
    for value in IDENTIFYING.values():
        assert value.encode() not in seg_bytes + sr_bytes, value

    out = tmp_path / "cli"
    capsys.readouterr()
    assert main(["bac", "quantify", str(lcc_file), "--jsonl", "--no-store", "--device", "cpu", "--out", str(out),
                 "--dicom-seg", "--dicom-sr", "--pdf"]) == 0  # fmt: skip
    row, pdf_line = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    page_seg, page_pixels = _seg_pixels(seg_bytes)
    cli_seg, cli_pixels = _seg_pixels(Path(row["seg"]).read_bytes())
    assert (page_seg.SOPInstanceUID, page_seg.StudyInstanceUID) == (cli_seg.SOPInstanceUID, cli_seg.StudyInstanceUID)
    assert np.array_equal(page_pixels, cli_pixels) and int(page_pixels.sum()) == row["am"]
    assert np.array_equal(page_pixels.astype(bool), cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED) == 255)
    assert pydicom.dcmread(io.BytesIO(sr_bytes)).SOPInstanceUID == pydicom.dcmread(row["sr"]).SOPInstanceUID

    pdf = offers[Path(pdf_line["pdf"]).name]()
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type /Page\n", pdf)) == 2

    at.radio(key="bac_dicom_mode").set_value("Return to PACS (linked to the source study)").run()
    linked_seg, _ = _seg_pixels(_offers(recorded_downloads)["LCC_seg.dcm"]())
    source = pydicom.dcmread(lcc_file, stop_before_pixels=True)
    assert (linked_seg.StudyInstanceUID, linked_seg.PatientID) == (source.StudyInstanceUID, "MRN-778899")
    assert linked_seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
        source.SOPInstanceUID)


def test_png_gets_no_dicom_downloads_but_a_clear_caption_and_the_pdf(
    lcc_file: Path, registry: Path, tmp_path: Path, recorded_downloads: list[dict]
) -> None:
    from medlim.core.io import read_image

    ok, png = cv2.imencode(".png", read_image(lcc_file).to_uint8())
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload("export.png", png.tobytes(), "image/png").run()
    assert not at.exception and not at.error
    captions = [c.value for c in at.caption]
    assert any(c.startswith("DICOM SEG and SR are made from DICOM mammograms only") and "is a PNG file" in c
               for c in captions)  # fmt: skip
    names = set(_offers(recorded_downloads))
    assert not any(name.endswith(".dcm") for name in names)
    (pdf_name,) = [name for name in names if name.endswith(".pdf")]
    assert pdf_name == "no-patient-key_no-date_report.pdf"
    assert _offers(recorded_downloads)[pdf_name]().startswith(b"%PDF-")
