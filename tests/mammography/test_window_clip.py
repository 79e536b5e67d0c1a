"""A DICOM display window that shows part of the breast as black is named in the warnings (probe of 2026-12-07).

The breast is found in the stored values (what differs from the air), so the share of it a window blackens can
be counted; the phantom's own window shows all of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlim.core.io import read_image
from medlim.mammography.analysis import WINDOW_CLIP_SHARE, check_mammogram, window_clip_note, window_clip_share


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    phantom = generate_mammogram(seed=5, index=0, size="small")
    return write_mammogram_dicom(phantom, tmp_path_factory.mktemp("clip") / "view.dcm")


def _windowed(view: Path, tmp: Path, center: float, width: float) -> Path:
    ds = pydicom.dcmread(view)
    ds.WindowCenter, ds.WindowWidth = center, width
    path = tmp / f"w{center:g}_{width:g}.dcm"
    ds.save_as(path)
    return path


def test_the_files_own_window_shows_the_whole_breast(view: Path) -> None:
    record = read_image(view)
    assert record.metadata.display_window is not None and record.metadata.display_window.kind == "window"
    assert window_clip_share(record) == 0.0 and window_clip_note(record) is None
    assert not any("display window" in warning for warning in check_mammogram(record))


def test_a_narrow_window_that_blackens_the_fat_is_named(view: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(view)
    stored = ds.pixel_array.astype(np.float64)
    air = float(np.median(stored[:4]))  # the top rows are air
    breast = np.abs(stored - air) > 0.01 * np.ptp(stored)
    inverted = ds.PhotometricInterpretation == "MONOCHROME1"  # higher stored values are darker
    # a window whose black end lies at the breast's median value: about half of the breast turns black
    median = float(np.median(stored[breast]))
    center = median - 500 if inverted else median + 500
    record = read_image(_windowed(view, tmp_path, center, 1000))
    share = window_clip_share(record)
    shown = np.asarray(record.pixels)
    expected = np.count_nonzero(breast & (shown <= 0)) / np.count_nonzero(breast)  # on the full grid
    assert share == pytest.approx(expected, abs=0.02) and 0.3 < share < 0.7
    note = window_clip_note(record)
    assert note is not None and f"centre {center:g}, width 1000" in note and f"{share:.0%} of the breast" in note
    assert note in check_mammogram(record)
    assert WINDOW_CLIP_SHARE == 0.1
