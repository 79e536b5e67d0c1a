"""``medlim image info``: one JSON object per file, never a crash, nothing identifying."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from pydicom import uid
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset

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


# ------------------------------------------------------------------ issue 14: hardening

#: Modules whose import alone costs hundreds of MiB; ``image info`` needs none of them.
HEAVY_MODULES = ("torch", "torchvision", "faiss", "sklearn", "plotly", "streamlit")

#: Runs ``python -m medlim ARGS`` in this process, then prints which heavy modules were imported.
_RUN_AND_LIST_MODULES = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["medlim", *json.loads(sys.argv[1])]
try:
    runpy.run_module("medlim", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""

#: Runs ``python -m medlim ARGS`` as a child of a small process and reports the child's peak RSS
#: (a child's ru_maxrss starts at its parent's, so pytest itself must not be the parent).
_RUN_AND_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "medlim", *json.loads(sys.argv[1])], capture_output=True, text=True)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "out": done.stdout, "err": done.stderr, "peak_kib": peak_kib}))
"""


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=environment,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_image_info_does_not_import_torch_or_other_heavy_modules(tmp_path) -> None:
    path = tmp_path / "small.png"
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    path.write_bytes(encoded.tobytes())
    args = ["image", "info", "--jsonl", str(path)]
    done = _python(_RUN_AND_LIST_MODULES, json.dumps(args), json.dumps(HEAVY_MODULES))
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["ok"] is True, done.stderr
    assert json.loads(lines[-1]) == []  # none of HEAVY_MODULES was imported


def test_a_malformed_setting_exits_2_with_its_name(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MEDLIM_MAX_PIXELS", "abc")
    assert main(["image", "info", "--jsonl", str(tmp_path / "x.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "MEDLIM_MAX_PIXELS must be a positive whole number; 'abc' is given." in captured.err


def test_running_out_of_memory_is_an_error_row(tmp_path, monkeypatch, capsys) -> None:
    def exhausted(*_args, **_kwargs):  # noqa: ANN202 - stand-in for numpy failing to allocate
        raise MemoryError

    monkeypatch.setattr("medlim.cli.image.read_image", exhausted)
    monkeypatch.setenv("MEDLIM_DECODE_BUDGET_MB", "2048")
    row = _jsonl(capsys, str(tmp_path / "huge.png"))[0]
    assert (row["ok"], row["error"]) == (False, "MemoryError")
    assert "not enough memory to decode" in row["message"]
    assert "lower MEDLIM_DECODE_BUDGET_MB (now 2,048 MiB)" in row["message"]


def test_rows_carry_the_readers_warnings(tmp_path, capsys) -> None:
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.array([[np.nan, 1.0], [2.0, np.inf]], dtype=np.float32))
    row = _jsonl(capsys, str(path))[0]
    assert row["ok"] is True
    assert row["warnings"] == [
        "2 pixels are not finite numbers (NaN or infinity); they are shown as black and left out of the display range."
    ]
    assert main(["image", "info", str(path)]) == 0
    assert "1 warning(s)" in capsys.readouterr().out


def test_budget_refusal_is_a_row_naming_the_variable(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "wide.png"
    ok, encoded = cv2.imencode(".png", np.zeros((1000, 1000), np.uint8))
    path.write_bytes(encoded.tobytes())
    monkeypatch.setenv("MEDLIM_DECODE_BUDGET_MB", "1")
    row = _jsonl(capsys, str(path))[0]
    assert row["error"] == "DecodeBudgetError"
    assert "1000×1000" in row["message"] and "MEDLIM_DECODE_BUDGET_MB" in row["message"]


@pytest.mark.parametrize("dtype", [pytest.param(np.uint8, marks=pytest.mark.slow), np.uint16])
def test_a_12000_square_png_stays_within_1_2_gb(tmp_path, dtype) -> None:
    # A smooth 12000×12000 PNG is a few hundred KB on disk: the size of the decode, not of the file, matters.
    rows = np.arange(12_000, dtype=np.uint32)[:, None]
    image = ((rows // 50 + np.arange(12_000, dtype=np.uint32)[None, :] // 50) % 200).astype(dtype)
    path = tmp_path / "bomb.png"
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    del image, rows
    assert path.stat().st_size < 2_000_000
    done = _python(_RUN_AND_MEASURE, json.dumps(["image", "info", "--jsonl", str(path)]))
    report = json.loads(done.stdout)
    assert report["rc"] == 0, report["err"]
    row = json.loads(report["out"])
    assert row["ok"] is True or row["error"] in {cls.__name__ for cls in _subclasses(MedlimError)}
    assert report["peak_kib"] * 1024 <= 1.2e9, f"peak RSS {report['peak_kib'] / 1024:.0f} MiB"


def test_a_tiff_stating_microns_per_pixel_shows_them(tmp_path, capsys) -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    tifffile.imwrite(tmp_path / "he.tif", image, photometric="rgb", resolution=(40000, 40000),
                     resolutionunit="CENTIMETER")  # 1e4 µm / 40000 = 0.25 µm per pixel
    tifffile.imwrite(tmp_path / "plain.tif", image, photometric="rgb")
    stated, plain = _jsonl(capsys, str(tmp_path / "he.tif"), str(tmp_path / "plain.tif"))
    assert (stated["pixel_size_um"], stated["pixel_size_from"]) == (0.25, "TIFF XResolution/YResolution (cm)")
    assert plain["pixel_size_um"] is None and plain["pixel_size_from"] is None
    assert main(["image", "info", str(tmp_path / "he.tif")]) == 0
    assert "0.25 µm/px (TIFF XResolution/YResolution (cm))" in capsys.readouterr().out
