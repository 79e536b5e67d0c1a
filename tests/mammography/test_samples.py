"""Sample exams grouped by file name; uploads with zip archives expanded in memory (medlim.mammography.samples)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from medlim.errors import ArchiveBudgetError, InputError
from medlim.mammography.samples import expand_uploads, sample_exams


def test_sample_exams_group_views_and_skip_ground_truth(tmp_path: Path) -> None:
    folder = tmp_path / "mammograms" / "dicom"
    folder.mkdir(parents=True)
    for name in ("P1_2018_LCC.dcm", "P1_2018_RCC.dcm", "P1_2018_LCC_bac.png", "P1_2018_LCC_lookalike.png",
                 "P1_2019_LCC.dcm", "manifest.csv"):  # fmt: skip
        (folder / name).write_bytes(b"x")
    (tmp_path / "nuclei").mkdir()
    (tmp_path / "nuclei" / "cells.png").write_bytes(b"x")
    exams = sample_exams(tmp_path)
    assert [[p.name for p in e.files] for e in exams] == [["P1_2018_LCC.dcm", "P1_2018_RCC.dcm"], ["P1_2019_LCC.dcm"]]
    assert exams[0].label == "P1 2018 — 2 views (LCC, RCC; mammograms/dicom)"
    assert exams[1].label == "P1 2019 — 1 view (LCC; mammograms/dicom)"
    assert sample_exams(tmp_path / "absent") == []


def test_bundled_samples_are_four_view_exams() -> None:
    root = Path(__file__).resolve().parents[2] / "data_samples"
    exams = [e for e in sample_exams(root) if "dicom" in e.label]
    assert exams and all(len(e.files) == 4 for e in exams)


def test_expand_uploads_reads_zip_members_in_memory() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("exam/LCC.dcm", b"dicom")
        archive.writestr("exam/LCC_bac.png", b"mask")
        archive.writestr("exam/notes.txt", b"text")
        archive.writestr("__MACOSX/exam/._LCC.dcm", b"fork")
    files = expand_uploads([("study.zip", buffer.getvalue()), ("RCC.dcm", b"r")])
    assert files == [("study.zip/exam/LCC.dcm", b"dicom"), ("RCC.dcm", b"r")]
    with pytest.raises(InputError, match="bad.zip"):
        expand_uploads([("bad.zip", b"not a zip")])


def test_zip_bomb_is_refused_before_it_is_read() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("exam/LCC.dcm", bytes(200 << 20))  # 200 MiB of zeros, ~200 KB compressed
    with pytest.raises(ArchiveBudgetError, match="MEDLIM_ZIP_MAX_RATIO") as caught:
        expand_uploads([("exam.zip", buffer.getvalue())])
    assert caught.value.message.startswith("exam.zip")
