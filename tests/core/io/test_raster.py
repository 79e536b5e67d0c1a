"""PNG (8/16-bit), TIFF and JPEG reading; formats chosen by bytes, not suffix."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import tifffile

from medlim.core.io import read_image
from medlim.errors import CorruptFileError, MultiFrameError, TruncatedFileError


def _png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", array)
    assert ok
    return encoded.tobytes()


def test_png_8_bit_grey() -> None:
    stored = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    record = read_image(_png(stored), name="grey.png")
    assert record.metadata.source_format == "png" and record.metadata.bits_stored == 8
    np.testing.assert_allclose(record.pixels, [[0.0, 0.2], [0.4, 1.0]], atol=1e-7)
    np.testing.assert_array_equal(record.raw, stored)
    np.testing.assert_array_equal(record.to_uint8(), stored)


def test_png_16_bit_grey_keeps_16_bits() -> None:
    stored = np.array([[0, 65535], [1000, 4095]], dtype=np.uint16)
    record = read_image(_png(stored))
    assert record.metadata.bits_stored == 16
    np.testing.assert_array_equal(record.raw, stored)
    np.testing.assert_allclose(record.pixels, stored / 65535.0, atol=1e-7)


def test_png_colour_with_alpha_drops_alpha_and_is_rgb() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    bgra = np.dstack([rgb[..., ::-1], np.full((2, 2), 128, np.uint8)])
    record = read_image(_png(bgra))
    assert record.is_color and record.metadata.photometric == "RGB"
    np.testing.assert_array_equal(record.raw, rgb)


def test_tiff_16_bit_and_pages() -> None:
    buffer = io.BytesIO()
    pages = np.array([[[0, 4095], [2048, 65535]], [[1, 2], [3, 4]]], dtype=np.uint16)
    tifffile.imwrite(buffer, pages)
    data = buffer.getvalue()
    with pytest.raises(MultiFrameError, match="2 images"):
        read_image(data, name="stack.tif")
    record = read_image(data, frame=1)
    np.testing.assert_array_equal(record.raw, pages[1])
    single = io.BytesIO()
    tifffile.imwrite(single, pages[0])
    record = read_image(single.getvalue())
    assert record.metadata.source_format == "tiff"
    np.testing.assert_allclose(record.pixels, pages[0] / 65535.0, atol=1e-7)


def test_float_tiff_is_stretched_over_its_range() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32))
    np.testing.assert_allclose(read_image(buffer.getvalue()).pixels, [[0.0, 0.25], [0.5, 1.0]])


def test_jpeg_grey() -> None:
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16), 200, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
    record = read_image(encoded.tobytes())
    assert record.metadata.source_format == "jpeg"
    assert abs(float(record.raw.mean()) - 200.0) <= 1.0


def test_suffix_does_not_override_magic_bytes(tmp_path) -> None:
    path = tmp_path / "actually_png.dcm"
    path.write_bytes(_png(np.zeros((3, 3), np.uint8)))
    record = read_image(path)
    assert record.metadata.source_format == "png" and record.name == "actually_png.dcm"


def test_truncated_png_is_reported() -> None:
    data = _png(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    with pytest.raises((TruncatedFileError, CorruptFileError)):
        read_image(data[: len(data) // 2])


def test_uploaded_file_object_and_bytes_give_the_same_record() -> None:
    data = _png(np.array([[0, 255]], dtype=np.uint8))
    upload = io.BytesIO(data)
    upload.name = "folder/upload.png"
    from_object = read_image(upload)
    assert from_object.name == "upload.png"
    np.testing.assert_array_equal(from_object.pixels, read_image(data).pixels)
    assert read_image(data).name == "upload"


def _float_tiff(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_infinity_are_black_counted_and_left_out_of_the_range(dtype) -> None:
    stored = np.array([[0.0, np.nan, 2.0], [np.inf, 4.0, -np.inf]], dtype=dtype)
    record = read_image(_float_tiff(stored), name="float.tif")
    # Finite values 0, 2, 4 → range [0, 4]; the three non-finite pixels are 0 (black).
    np.testing.assert_allclose(record.pixels, [[0.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    assert np.isfinite(record.pixels).all()
    assert record.metadata.warnings == (
        "3 pixels are not finite numbers (NaN or infinity); they are shown as black "
        "and left out of the display range.",
    )
    np.testing.assert_array_equal(record.raw, stored.astype(np.float32))  # raw keeps the stored values


def test_all_non_finite_image_is_black_with_a_warning() -> None:
    record = read_image(_float_tiff(np.full((2, 2), np.nan, np.float32)), name="nan.tif")
    np.testing.assert_array_equal(record.pixels, np.zeros((2, 2)))
    assert record.metadata.warnings[0].startswith("4 pixels are not finite numbers")


def test_one_non_finite_colour_pixel_is_black_in_every_channel() -> None:
    stored = np.array([[[0.0, 1.0, 2.0], [np.nan, 8.0, 8.0]], [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]], np.float32)
    record = read_image(_float_tiff(stored, photometric="rgb"), name="rgb.tif")
    assert record.is_color
    # Values of finite pixels: 0..2 → [0, 1]; the NaN pixel is black in all three channels (its 8s are left out).
    np.testing.assert_allclose(record.pixels, [[[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    assert record.metadata.warnings[0].startswith("1 pixel is not a finite number")


def test_finite_float_image_has_no_warning() -> None:
    record = read_image(_float_tiff(np.array([[1.0, 2.0]], dtype=np.float32)))
    assert record.metadata.warnings == ()


def test_raster_pixels_and_raw_are_rendered_on_first_access() -> None:
    record = read_image(_png(np.array([[0, 51]], dtype=np.uint8)), name="lazy.png")
    assert "pending" in repr(record)  # nothing float32 made until asked
    np.testing.assert_allclose(record.pixels, [[0.0, 0.2]], atol=1e-7)
    np.testing.assert_array_equal(record.raw, [[0.0, 51.0]])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_a_grey_image_saved_as_rgb_reads_as_grey(fmt: str) -> None:
    """Exporters often write a mammogram or radiograph as RGB with three equal channels: it is grey."""
    from PIL import Image

    grey = (np.arange(48 * 40).reshape(48, 40) % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buffer, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    record = read_image(buffer.getvalue(), name=f"a.{fmt.lower()}")
    assert not record.is_color and record.raw.shape == (48, 40)
    if fmt != "JPEG":  # lossless: the very values
        np.testing.assert_array_equal(record.raw, grey)
    colour = np.stack([grey, grey, grey], axis=-1)
    colour[47, 39, 1] ^= 1  # one channel of one pixel differs: colour, as stored
    buffer = io.BytesIO()
    Image.fromarray(colour).save(buffer, format="PNG")
    assert read_image(buffer.getvalue(), name="b.png").is_color


def test_png_16_bit_colour_keeps_16_bits() -> None:
    """Pillow opens a 16-bit RGB PNG as 8-bit RGB; medlim decodes it with OpenCV and keeps every bit."""
    rgb = np.array([[[65535, 0, 300], [1, 2, 3]], [[40000, 40001, 40002], [7, 8, 9]]], dtype=np.uint16)
    record = read_image(_png(np.ascontiguousarray(rgb[..., ::-1])))
    assert record.is_color and record.metadata.bits_stored == 16
    np.testing.assert_array_equal(record.raw, rgb)
    grey = np.array([[1000, 4095], [0, 300]], np.uint16)  # a 12-bit grey view saved as 16-bit RGB(A)
    for channels in (3, 4):
        stored = np.dstack([grey] * 3 + ([np.full(grey.shape, 65535, np.uint16)] if channels == 4 else []))
        record = read_image(_png(stored))
        assert not record.is_color and record.metadata.bits_stored == 12
        np.testing.assert_array_equal(record.raw, grey)


def test_transparency_reads_as_black_and_drawn_alpha_is_the_image() -> None:
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 255
    opaque_where_drawn = np.where(mask > 0, 255, 0).astype(np.uint8)
    # white strokes on a white, transparent background (an annotation tool's export): strokes only
    white = np.dstack([np.full(mask.shape, 255, np.uint8)] * 3 + [opaque_where_drawn])
    np.testing.assert_array_equal(read_image(_png(white)).raw, mask)
    # black strokes drawn by transparency alone: the alpha channel is the mask
    black = np.dstack([np.zeros(mask.shape, np.uint8)] * 3 + [opaque_where_drawn])
    np.testing.assert_array_equal(read_image(_png(black)).raw, mask)
    # red strokes over a transparent white background: colour where opaque, black elsewhere
    red_bgr = np.dstack([np.where(mask > 0, 0, 255), np.where(mask > 0, 0, 255), np.full(mask.shape, 255)])
    red = read_image(_png(np.dstack([red_bgr, opaque_where_drawn]).astype(np.uint8)))
    assert red.is_color and (red.raw[..., 0] > 0).sum() == (mask > 0).sum() and (red.raw[mask == 0] == 0).all()
    # grey + alpha, alpha opaque everywhere: the grey values as they are
    grey_alpha = read_image(_png(np.dstack([mask, mask, mask, np.full(mask.shape, 255, np.uint8)])))
    np.testing.assert_array_equal(grey_alpha.raw, mask)


def test_pillows_own_pixel_limit_does_not_stand_below_medlims(monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above twice its limit, in its own words
    record = read_image(_png(np.zeros((100, 100), np.uint8)))  # 10,000 px: far under MEDLIM_MAX_PIXELS
    assert record.raw.shape == (100, 100)


def test_a_colour_photographs_transparent_margin_is_white_glass() -> None:
    """H&E (many colours) with a transparent margin: the margin is glass (white), as a scanner's is; a grey image's
    transparency is black (air), as a drawing's is (the test above)."""
    rng = np.random.default_rng(0)
    tissue = rng.integers(60, 230, (6, 6, 3)).astype(np.uint8)  # 36 colours: a photograph, not a drawing
    alpha = np.full((6, 6), 255, np.uint8)
    alpha[:, :2] = 0
    record = read_image(_png(np.dstack([tissue[..., ::-1], alpha])))
    assert record.is_color
    np.testing.assert_array_equal(record.raw[:, :2], 255)
    np.testing.assert_array_equal(record.raw[:, 2:], tissue[:, 2:])
    grey = rng.integers(60, 230, (6, 6)).astype(np.uint8)
    read = read_image(_png(np.dstack([grey, grey, grey, alpha]))).raw
    np.testing.assert_array_equal(read[:, :2], 0)
    np.testing.assert_array_equal(read[:, 2:], grey[:, 2:])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_pixels_as_a_viewer_shows_them(orientation: int) -> None:
    from PIL import Image, ImageOps

    stored = (np.arange(4 * 6 * 3) % 251).astype(np.uint8).reshape(4, 6, 3)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))
    np.testing.assert_array_equal(read_image(buffer.getvalue()).raw, shown)
