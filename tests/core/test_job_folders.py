"""Folders inside the data roots where pages keep what their jobs read and write (medlim.core.job_folders)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from medlim.core.job_folders import job_folder, job_folders_root, sweep_job_folders, write_job_files
from medlim.errors import InvalidNameError


def test_the_folder_is_in_the_datasets_folder_or_else_the_first_data_root(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.core.paths import is_within_data_roots

    home = Path(os.environ["MEDLIM_HOME"])
    assert job_folders_root() == home / "datasets" / ".medlim-jobs"  # the default roots hold the datasets folder
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(tmp_path / "a") + os.pathsep + str(tmp_path / "b"))
    folder = job_folder("uploads", "bac-1")
    assert folder == tmp_path / "a" / ".medlim-jobs" / "uploads" / "bac-1" and folder.is_dir()
    assert is_within_data_roots(folder)
    with pytest.raises(InvalidNameError):
        job_folder("uploads", "../escape")


def test_uploads_keep_their_order_and_never_leave_the_folder(tmp_path: Path) -> None:
    paths = write_job_files(tmp_path, [("study.zip/a/LCC.dcm", b"1"), ("../../x.png", b"2"), ("a\\b\\.hidden", b"3"),
                                       ("name with spaces & é.png", b"4")])
    assert [p.name for p in paths] == ["00001-LCC.dcm", "00002-x.png", "00003-hidden", "00004-name_with_spaces_.png"]
    assert all(p.parent == tmp_path and p.is_file() for p in paths)
    assert paths[0].read_bytes() == b"1"


def test_old_inputs_are_swept_and_collections_stay() -> None:
    old, new, collection = job_folder("uploads", "old"), job_folder("uploads", "new"), job_folder("collections", "c")
    month_ago = time.time() - 30 * 86_400
    for folder in (old, collection):
        os.utime(folder, (month_ago, month_ago))
    assert sweep_job_folders() == [old]
    assert not old.exists() and new.is_dir() and collection.is_dir()
