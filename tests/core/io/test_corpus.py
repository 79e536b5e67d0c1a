"""Acceptance (issue 2): every file of pydicom's test corpus decodes or raises a MedlimError.

No other exception type may escape ``read_image``. Multi-frame files must raise
MultiFrameError without a frame and decode with ``frame=0``.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_files

from medlim.core.io import ImageRecord, read_image
from medlim.errors import MedlimError, MultiFrameError


@functools.cache
def corpus_files() -> tuple[str, ...]:
    """pydicom's bundled test files (cached: listing them probes the download cache)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "download failures": no network in tests, bundled files only
        return tuple(sorted(get_testdata_files()))


def _check_record(record: ImageRecord) -> None:
    assert isinstance(record, ImageRecord)
    assert record.pixels.dtype == np.float32 and record.raw.dtype == np.float32
    assert record.pixels.ndim in (2, 3) and record.pixels.shape[:2] == record.raw.shape[:2]
    assert np.isfinite(record.pixels).all()
    assert float(record.pixels.min()) >= 0.0 and float(record.pixels.max()) <= 1.0


def test_corpus_is_large_enough() -> None:
    assert len(corpus_files()) > 100


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: Path(path).name)
def test_every_corpus_file_decodes_or_raises_a_medlim_error(path: str) -> None:
    try:
        record = read_image(path)
    except MultiFrameError:
        record = read_image(path, frame=0)
    except MedlimError as exc:
        assert exc.message and Path(path).name in exc.message or "folder" in exc.message
        return
    _check_record(record)


def test_known_corpus_outcomes() -> None:
    """A few files whose outcome is known, so the acceptance test cannot pass vacuously."""
    outcomes = {}
    for path in corpus_files():
        try:
            read_image(path, frame=0)
            outcomes[Path(path).name] = "ok"
        except MedlimError as exc:
            outcomes[Path(path).name] = type(exc).__name__
    assert outcomes["CT_small.dcm"] == "ok"
    assert outcomes["JPEG2000.dcm"] == "ok"
    assert outcomes["rtstruct.dcm"] == "NotDicomImageError"
    assert outcomes["MR_truncated.dcm"] == "TruncatedFileError"
    assert outcomes["README.txt"] == "UnsupportedFormatError"
    assert sum(value == "ok" for value in outcomes.values()) >= 80
