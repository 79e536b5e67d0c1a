"""The decode memory budget: estimated from the header, refused before any pixel is decoded (issue 14)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import ImageFile
from pydicom import uid

import medlim.core.io.dicom as dicom_module
from medlim.core.io import read_image
from medlim.core.io.budget import DecodeCost, check_decode_budget
from medlim.core.io.raster import _pillow_cost
from medlim.errors import DecodeBudgetError, ImageTooLargeError
from medlim.settings import Settings

MIB = 1 << 20


def _settings(budget_mb: int) -> Settings:
    return Settings.from_env({"MEDLIM_DECODE_BUDGET_MB": str(budget_mb), "MEDLIM_PSEUDONYM_KEY": "k"})


def test_peak_is_the_larger_phase_plus_what_is_held() -> None:
    # 100×200 = 20,000 pixels: decoded 20,000 B, decoder buffer 80,000 B, float32 grey 80,000 B, file 5,000 B.
    cost = DecodeCost(height=100, width=200, decoded_bytes=20_000, transient_bytes=80_000,
                      float_values=20_000, held_bytes=5_000)
    assert cost.peak_bytes == 5_000 + max(20_000 + 80_000, 20_000 + 4 * 20_000) == 105_000
    # RGB float32 dominates: 3 values per pixel.
    rgb = DecodeCost(height=100, width=200, decoded_bytes=60_000, transient_bytes=80_000, float_values=60_000)
    assert rgb.peak_bytes == 60_000 + 240_000


def test_pillow_cost_by_mode() -> None:
    # 12000×12000 8-bit grey: Pillow's buffer 1 B/px while copied out, array 1 B/px, float32 4 B/px.
    grey = _pillow_cost("L", height=12_000, width=12_000)
    assert (grey.decoded_bytes, grey.transient_bytes, grey.float_values) == (144_000_000, 144_000_000, 144_000_000)
    assert grey.peak_bytes == 144_000_000 * 5  # 720 MB: within the default 1024 MiB
    sixteen = _pillow_cost("I;16", height=10, width=10)
    assert (sixteen.decoded_bytes, sixteen.transient_bytes, sixteen.float_values) == (200, 200, 100)
    palette = _pillow_cost("P", height=10, width=10)  # converted to RGB strip by strip
    assert (palette.decoded_bytes, palette.transient_bytes, palette.float_values) == (300, 100, 300)


def test_message_names_size_estimate_limit_and_variable() -> None:
    cost = DecodeCost(height=2000, width=3000, decoded_bytes=6_000_000, float_values=6_000_000)
    with pytest.raises(DecodeBudgetError) as caught:
        check_decode_budget(cost, name="big.png", settings=_settings(10))
    message = caught.value.message
    # 6e6 + 24e6 = 30e6 B = 28.6 MiB, rounded up to 29.
    assert "2000×3000" in message and "29 MiB" in message and "10 MiB" in message
    assert "MEDLIM_DECODE_BUDGET_MB" in message
    assert caught.value.limit == 10 and caught.value.variable == "MEDLIM_DECODE_BUDGET_MB"
    assert isinstance(caught.value, ImageTooLargeError)
    check_decode_budget(cost, name="big.png", settings=_settings(29))  # 30e6 B ≤ 29 MiB: accepted


def _png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", array)
    assert ok
    return encoded.tobytes()


def _jpeg(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", array)
    assert ok
    return encoded.tobytes()


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, compression="zlib")
    return buffer.getvalue()


@pytest.fixture
def no_raster_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):  # noqa: ANN202 - stand-in
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", refuse)


def _tiled_tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, tile=(256, 256), compression="zlib")
    return buffer.getvalue()


@pytest.mark.parametrize("encode", [_png, _jpeg, _tiff, _tiled_tiff], ids=["png", "jpeg", "tiff", "tiled-tiff"])
def test_tiny_budget_refuses_rasters_before_decoding(encode, no_raster_decoding, tmp_path) -> None:
    # 2000×2000 grey: 4 MB decoded + 16 MB float32, over a 1 MiB budget; the file itself is small.
    data = encode(np.zeros((2000, 2000), np.uint8))
    assert len(data) < MIB
    with pytest.raises(DecodeBudgetError, match=r"2000×2000 pixels.*1 MiB \(MEDLIM_DECODE_BUDGET_MB\)"):
        read_image(data, name="big", settings=_settings(1))
    path = tmp_path / "big.img"
    path.write_bytes(data)
    with pytest.raises(DecodeBudgetError):
        read_image(path, settings=_settings(1))


def test_tiff_budget_counts_every_sample_of_the_page(no_raster_decoding) -> None:
    # 600×600 RGB uint16: 2,160,000 B decoded + 4,320,000 B float32 = 6.2 MiB > 6 MiB.
    data = _tiff(np.zeros((600, 600, 3), np.uint16))
    with pytest.raises(DecodeBudgetError, match="about 7 MiB"):
        read_image(data, name="rgb16.tif", settings=_settings(6))


@pytest.fixture
def no_dicom_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):  # noqa: ANN202 - stand-in
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(dicom_module, "_native_frame", refuse)
    monkeypatch.setattr(dicom_module, "_decode_frame", refuse)


def test_tiny_budget_refuses_dicom_of_every_syntax_before_decoding(make_dicom, no_dicom_decoding, tmp_path) -> None:
    # Native: the 4 MB file itself is over the budget, refused before pydicom reads it.
    native = make_dicom(np.zeros((2000, 2000), np.uint8))
    with pytest.raises(DecodeBudgetError, match="MEDLIM_DECODE_BUDGET_MB"):
        read_image(native, name="native.dcm", settings=_settings(1))
    # RLE: a few KB on disk, 2000×2000 from the header.
    ds = pydicom.dcmread(io.BytesIO(native))
    ds.compress(uid.RLELossless)
    path = tmp_path / "rle.dcm"
    ds.save_as(path)
    assert path.stat().st_size < MIB
    with pytest.raises(DecodeBudgetError, match=r"2000×2000 pixels.*limit of 1 MiB"):
        read_image(path, settings=_settings(1))


def test_default_budget_still_reads_ordinary_images(make_dicom) -> None:
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4)
    record = read_image(make_dicom(stored), name="small.dcm", settings=_settings(1))
    np.testing.assert_array_equal(record.raw, stored)
