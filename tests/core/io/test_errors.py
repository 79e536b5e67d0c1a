"""Bad input raises typed medlim errors with actionable messages."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file

from medlim.core.io import read_image
from medlim.errors import (
    EmptyFileError,
    ImageTooLargeError,
    InputError,
    NoPixelDataError,
    NotDicomImageError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)
from medlim.settings import Settings


def test_empty(tmp_path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(EmptyFileError, match="empty.dcm is empty"):
        read_image(tmp_path / "empty.dcm")
    with pytest.raises(EmptyFileError):
        read_image(b"")


def test_not_an_image_format() -> None:
    with pytest.raises(UnsupportedFormatError, match="not a DICOM, PNG, TIFF, JPEG or NIfTI"):
        read_image(b"%PDF-1.7 this is a report", name="report.pdf")


def test_structured_report_is_not_an_image() -> None:
    with pytest.raises(NotDicomImageError, match="not an image"):
        read_image(get_testdata_file("test-SR.dcm"))


def test_image_without_pixels(make_dicom) -> None:
    data = make_dicom(None, Rows=4, Columns=4)
    with pytest.raises(NoPixelDataError, match="no pixel data"):
        read_image(data)


def test_truncated_pixel_data(make_dicom) -> None:
    data = make_dicom(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    with pytest.raises(TruncatedFileError, match="truncated"):
        read_image(data[:-1000])


def test_unsupported_transfer_syntax(make_dicom) -> None:
    data = make_dicom(np.zeros((4, 4), np.uint8), transfer_syntax=uid.MPEG2MPML)
    with pytest.raises(UnsupportedTransferSyntaxError, match="MPEG2"):
        read_image(data)


def test_absurd_size(make_dicom) -> None:
    settings = Settings.from_env({"MEDLIM_MAX_PIXELS": "10", "MEDLIM_PSEUDONYM_KEY": "k"})
    with pytest.raises(ImageTooLargeError, match="16 pixels.*limit of 10"):
        read_image(make_dicom(np.zeros((4, 4), np.uint8)), settings=settings)
    with pytest.raises(ImageTooLargeError):
        read_image(make_dicom(None, Rows=0, Columns=5, PixelData=b"\x00" * 4, BitsAllocated=8,
                              SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2"))


def test_folder_and_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(InputError, match="no file"):
        read_image(tmp_path / "missing.dcm")


def test_an_image_over_twice_pillows_limit_gets_medlims_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow refuses an image over twice its bomb limit before medlim reads the header; its own words (and its
    limit) reached the pages (session-21 browser probe, a 30000² PNG)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 10,000 px is over twice it
    settings = Settings.from_env({"MEDLIM_MAX_PIXELS": "1000", "MEDLIM_PSEUDONYM_KEY": "k"})
    with pytest.raises(ImageTooLargeError) as refused:
        read_image(buffer.getvalue(), name="huge.png", settings=settings)
    assert refused.value.message == ("huge.png is larger (10,000 pixels) than the limit of 1,000 pixels "
                                     "(MEDLIM_MAX_PIXELS); crop or downsample it first.")


def test_a_bmp_is_named_as_a_format_medlim_does_not_read() -> None:
    import cv2

    ok, data = cv2.imencode(".bmp", np.zeros((8, 8), np.uint8))
    assert ok
    with pytest.raises(UnsupportedFormatError) as refused:
        read_image(data.tobytes(), name="x.bmp")
    assert refused.value.message == ("x.bmp is a BMP image, a format medlim does not read; convert it to PNG (or "
                                     "TIFF, JPEG, DICOM).")
