from __future__ import annotations

from pathlib import Path

import pytest

from medlim.core.io.files import RASTER_SUFFIXES, collect_files
from medlim.errors import InputError


def test_collect_files_skips_truth_outputs_and_notes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.dcm", "b.png", "b_bac.png", "b_labels.png", "manifest.csv", "README.md", ".hidden.png", "noext"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub" / "c.tif").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in collect_files([tmp_path])]
    assert found == ["a.dcm", "b.png", "noext", "sub/c.tif"]
    rasters = [p.name for p in collect_files([tmp_path], suffixes=RASTER_SUFFIXES, recursive=False)]
    assert rasters == ["b.png"]
    # A file named directly is kept as given, even a mask.
    assert collect_files([tmp_path / "b_bac.png"]) == [tmp_path / "b_bac.png"]
    with pytest.raises(InputError, match="does not exist"):
        collect_files([tmp_path / "missing"])
