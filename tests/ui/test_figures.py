"""Display windowing and figures of the viewer (medlim.ui.figures)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.errors import ParameterError
from medlim.ui.figures import (
    default_window,
    downsample_for_display,
    histogram_figure,
    image_figure,
    windowed_pixels,
)


def _grey(raw: np.ndarray, photometric: str = "MONOCHROME2", source_format: str = "dicom") -> ImageRecord:
    raw = raw.astype(np.float32)
    pixels = (raw - raw.min()) / max(float(raw.max() - raw.min()), 1.0)
    meta = ImageMetadata(source_format=source_format, photometric=photometric, bits_stored=12)
    return ImageRecord(pixels=pixels.astype(np.float32), raw=raw, metadata=meta, name="x")


def test_raster_default_window_is_full_range() -> None:
    record = _grey(np.array([[100, 300], [500, 4100]]), source_format="png")
    window = default_window(record)
    assert (window.low, window.high) == (100.0, 4100.0)
    assert window.center == 2100.0  # (100 + 4100) / 2
    assert window.width == 4000.0  # 4100 - 100
    assert not window.from_file


def test_default_window_of_constant_image_has_width_one() -> None:
    window = default_window(_grey(np.full((3, 3), 7), source_format="tiff"))
    assert (window.center, window.width) == (7.0, 1.0)


def test_windowed_pixels_linear_exact_values() -> None:
    # LINEAR, c = 50.5, w = 101: low edge = 50.5 - 0.5 - 50 = 0, scale 1/100.
    record = _grey(np.array([[0, 25, 50, 100, 200]]))
    shown = windowed_pixels(record, center=50.5, width=101.0)
    np.testing.assert_allclose(shown, [[0.0, 0.25, 0.5, 1.0, 1.0]], atol=1e-6)
    assert shown.dtype == np.float32


def test_windowed_pixels_inverts_monochrome1() -> None:
    record = _grey(np.array([[0, 25, 100]]), photometric="MONOCHROME1")
    shown = windowed_pixels(record, center=50.5, width=101.0)
    np.testing.assert_allclose(shown, [[1.0, 0.75, 0.0]], atol=1e-6)


def test_windowed_pixels_narrow_float_window() -> None:
    record = _grey(np.array([[0.0, 0.25, 0.5]]))
    # LINEAR_EXACT, c = 0.25, w = 0.5: (x - 0) / 0.5.
    np.testing.assert_allclose(windowed_pixels(record, center=0.25, width=0.5), [[0.0, 0.5, 1.0]], atol=1e-6)


@pytest.mark.parametrize("width", [0.0, -5.0, float("nan")])
def test_windowed_pixels_rejects_bad_width(width: float) -> None:
    with pytest.raises(ParameterError, match="width"):
        windowed_pixels(_grey(np.zeros((2, 2))), center=0.0, width=width)


def test_colour_images_are_shown_as_decoded() -> None:
    pixels = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    record = ImageRecord(pixels=pixels, raw=pixels * 255, metadata=ImageMetadata(source_format="png", photometric="RGB"))
    assert windowed_pixels(record, center=10.0, width=2.0) is pixels


def test_downsample_block_mean() -> None:
    image = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    shrunk, factor = downsample_for_display(image, max_side=2)
    assert factor == 3  # ceil(5 / 2)
    # One 3x3 block (rows 0-2, columns 0-2): mean of 0,1,2,4,5,6,8,9,10 = 5.
    np.testing.assert_allclose(shrunk, [[5.0]])
    same, one = downsample_for_display(image, max_side=5)
    assert one == 1 and same.shape == (5, 4)


def test_image_figure_is_one_square_pixel_image() -> None:
    figure = image_figure(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    assert [trace.type for trace in figure.data] == ["image"]
    assert figure.layout.yaxis.scaleanchor == "x"
    assert figure.layout.xaxis.title.text == "column (px)"


def test_histogram_counts_and_axis_titles() -> None:
    values = np.array([0, 0, 1, 3, np.nan], dtype=np.float32)
    figure = histogram_figure(values, bins=3, x_title="stored value", window=(0.0, 2.0))
    # Range [0, 3] in 3 bins: [0,1) -> 2, [1,2) -> 1, [2,3] -> 1; NaN ignored.
    assert list(figure.data[0].y) == [2, 1, 1]
    assert figure.layout.xaxis.title.text == "stored value"
    assert figure.layout.yaxis.title.text.startswith("pixels")
    assert len(figure.layout.shapes) == 1


def _dicom_windowed(raw: np.ndarray, center: float, width: float, photometric: str = "MONOCHROME2") -> ImageRecord:
    from medlim.core.io.windowing import apply_window

    shown = apply_window(raw.astype(np.float32), center=center, width=width)
    if photometric == "MONOCHROME1":
        shown = 1.0 - shown
    meta = ImageMetadata(source_format="dicom", photometric=photometric, bits_stored=12)
    return ImageRecord(pixels=shown, raw=raw.astype(np.float32), metadata=meta)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_default_window_is_the_files_linear_window(photometric: str) -> None:
    raw = np.arange(0, 4096, 7, dtype=np.float32).reshape(1, -1)
    record = _dicom_windowed(raw, center=1000.0, width=801.0, photometric=photometric)
    window = default_window(record)
    assert window.from_file
    assert window.center == pytest.approx(1000.0, abs=1e-3)
    assert window.width == pytest.approx(801.0, abs=1e-3)
    assert (window.low, window.high) == (0.0, float(raw.max()))
    np.testing.assert_allclose(windowed_pixels(record, center=window.center, width=window.width), record.pixels, atol=1e-4)


def test_dicom_sigmoid_window_is_recovered_as_sigmoid() -> None:
    from medlim.core.io.windowing import apply_window

    raw = np.arange(0, 4096, 3, dtype=np.float32).reshape(1, -1)
    shown = apply_window(raw, center=2000.0, width=1500.0, function="SIGMOID")
    record = ImageRecord(pixels=shown, raw=raw, metadata=ImageMetadata(source_format="dicom"))
    window = default_window(record)
    assert window.from_file and window.function == "SIGMOID"
    assert window.center == pytest.approx(2000.0, abs=1e-2)
    assert window.width == pytest.approx(1500.0, abs=1e-2)
    redrawn = windowed_pixels(record, center=window.center, width=window.width, function=window.function)
    np.testing.assert_allclose(redrawn, shown, atol=1e-4)


def test_dicom_value_range_or_lut_falls_back_to_full_range() -> None:
    raw = np.arange(0, 4096, 3, dtype=np.float32).reshape(1, -1)
    gamma = (raw / raw.max()) ** 2.2  # a curved VOI LUT: neither linear nor sigmoid
    record = ImageRecord(pixels=gamma.astype(np.float32), raw=raw, metadata=ImageMetadata(source_format="dicom"))
    window = default_window(record)
    assert not window.from_file and window.function == "LINEAR"
    assert (window.center, window.width) == (float(raw.max()) / 2, float(raw.max()))
