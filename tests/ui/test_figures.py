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


def test_raster_opens_on_its_full_range_not_its_bit_depth() -> None:
    from medlim.core.io.record import DisplayWindow

    raw = np.array([[100, 300], [500, 4100]], dtype=np.float32)
    meta = ImageMetadata(source_format="png", display_window=DisplayWindow.value_range(0.0, 65535.0))
    window = default_window(ImageRecord(pixels=raw / 65535.0, raw=raw, metadata=meta))
    assert (window.center, window.width, window.from_file) == (2100.0, 4000.0, False)


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


def _dicom_windowed(raw: np.ndarray, center: float, width: float, photometric: str = "MONOCHROME2",
                    function: str = "LINEAR") -> ImageRecord:  # fmt: skip
    """A DICOM-like record whose reader applied (and recorded) a window."""
    from medlim.core.io.record import DisplayWindow
    from medlim.core.io.windowing import apply_window

    shown = apply_window(raw.astype(np.float32), center=center, width=width, function=function)
    inverted = photometric == "MONOCHROME1"
    if inverted:
        shown = 1.0 - shown
    meta = ImageMetadata(source_format="dicom", photometric=photometric, bits_stored=12,
                         display_window=DisplayWindow("window", center, width, function, inverted))  # fmt: skip
    return ImageRecord(pixels=shown, raw=raw.astype(np.float32), metadata=meta)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_default_window_is_the_window_the_reader_recorded(photometric: str) -> None:
    raw = np.arange(0, 4096, 7, dtype=np.float32).reshape(1, -1)
    record = _dicom_windowed(raw, center=1000.0, width=801.0, photometric=photometric)
    window = default_window(record)
    assert window.from_file and window.exact
    assert (window.center, window.width, window.function) == (1000.0, 801.0, "LINEAR")
    assert (window.low, window.high) == (0.0, float(raw.max()))
    assert "centre 1000, width 801" in window.description
    np.testing.assert_allclose(windowed_pixels(record, center=window.center, width=window.width), record.pixels, atol=1e-6)


def test_dicom_sigmoid_window_is_taken_as_recorded() -> None:
    raw = np.arange(0, 4096, 3, dtype=np.float32).reshape(1, -1)
    record = _dicom_windowed(raw, center=2000.0, width=1500.0, function="SIGMOID")
    window = default_window(record)
    assert window.from_file and (window.center, window.width, window.function) == (2000.0, 1500.0, "SIGMOID")
    redrawn = windowed_pixels(record, center=window.center, width=window.width, function=window.function)
    np.testing.assert_allclose(redrawn, record.pixels, atol=1e-6)


def test_recorded_window_wins_even_where_pixels_would_not_fit_a_line() -> None:
    """Before issue 17 the window was re-estimated with np.polyfit: a clipped, noisy image fell back to
    the full range. The reader's record is the contract now."""
    from medlim.core.io.record import DisplayWindow

    raw = np.random.default_rng(0).uniform(0, 4000, (64, 64)).astype(np.float32)
    pixels = np.random.default_rng(1).random((64, 64), dtype=np.float32)  # nothing a line could fit
    meta = ImageMetadata(source_format="dicom", display_window=DisplayWindow("window", 1234.0, 567.0))
    window = default_window(ImageRecord(pixels=pixels, raw=raw, metadata=meta))
    assert window.from_file and (window.center, window.width) == (1234.0, 567.0)


def test_record_without_a_window_or_with_a_lut_opens_as_recorded() -> None:
    from medlim.core.io.record import DisplayWindow

    raw = np.arange(0, 4096, 3, dtype=np.float32).reshape(1, -1)
    gamma = ((raw / raw.max()) ** 2.2).astype(np.float32)  # a curved VOI LUT
    unknown = default_window(ImageRecord(pixels=gamma, raw=raw, metadata=ImageMetadata(source_format="dicom")))
    assert not unknown.from_file and unknown.function == "LINEAR"
    assert (unknown.center, unknown.width) == (float(raw.max()) / 2, float(raw.max()))
    lut = DisplayWindow("lut", 2047.5, 4095.0, "LINEAR_EXACT", lut_first_mapped=0, lut_entries=4096, lut_bits=12)
    window = default_window(ImageRecord(pixels=gamma, raw=raw, metadata=ImageMetadata(source_format="dicom",
                                                                                    display_window=lut)))  # fmt: skip
    assert window.from_file and not window.exact and "VOI LUT" in window.description


def test_windowed_region_windows_only_the_crop_and_inverts_as_the_reader() -> None:
    from medlim.core.io.record import DisplayWindow
    from medlim.ui.figures import windowed_region

    raw = np.array([[0, 25, 50], [75, 100, 125]], dtype=np.float32)
    meta = ImageMetadata(source_format="dicom", photometric="MONOCHROME2",
                         display_window=DisplayWindow("window", 50.5, 101.0, inverted=True))  # INVERSE shape
    record = ImageRecord(pixels=np.zeros_like(raw), raw=raw, metadata=meta)
    region = (slice(1, 2), slice(0, 2))
    # LINEAR c = 50.5, w = 101: (x - 0) / 100, then inverted: 75 → 0.25, 100 → 0.0.
    np.testing.assert_allclose(windowed_region(record, center=50.5, width=101.0, region=region), [[0.25, 0.0]])


def test_block_max_keeps_a_one_pixel_artery() -> None:
    from medlim.ui.figures import block_max

    mask = np.zeros((8, 9), bool)
    mask[5, 2] = True
    shrunk = block_max(mask, 4)
    assert shrunk.shape == (2, 2)
    assert shrunk.tolist() == [[False, False], [True, False]]
    with pytest.raises(ParameterError, match="factor"):
        block_max(mask, 0)


# ----------------------------------------------------------------------------- BAC figures (medlim.ui.mammography)


def test_overview_mask_at_display_size_equals_block_max_of_the_full_mask() -> None:
    from medlim.ui.figures import block_max
    from medlim.ui.mammography import overlay_base

    rng = np.random.default_rng(3)
    probability = (rng.random((2100, 1700), dtype=np.float32) ** 30).astype(np.float32)
    base = overlay_base(np.zeros((2100, 1700), np.float32), probability, max_side=1024)
    assert base.factor == 3 and base.probability_max.shape == (700, 566) and base.shape == (2100, 1700)
    for threshold in (0.0, 0.5, 0.9):
        np.testing.assert_array_equal(base.mask(threshold), block_max(probability > threshold, 3))


def test_overlay_figure_places_full_resolution_coordinates_in_colour_blind_safe_magenta() -> None:
    import base64

    import cv2

    from medlim.ui.mammography import OVERLAY_RGB, overlay_base, overlay_figure

    probability = np.zeros((12, 16), np.float32)
    probability[5, 6] = 0.9
    base = overlay_base(np.linspace(0, 1, 12 * 16, dtype=np.float32).reshape(12, 16), probability, max_side=4)
    assert base.factor == 4
    figure = overlay_figure(base, threshold=0.5, opacity=0.3)
    grey, overlay, targets = figure.data
    # Displayed pixel (0, 0) covers full-resolution rows 0..3: its centre is 1.5.
    assert (grey.x0, grey.y0, grey.dx, grey.dy) == (1.5, 1.5, 4, 4)
    assert overlay.opacity == 0.3 and targets.type == "scatter" and targets.marker.opacity == 0.0
    png = base64.b64decode(overlay.source.split(",", 1)[1])
    rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert rgba.shape == (3, 4, 4) and tuple(rgba[1, 1]) == (*OVERLAY_RGB, 255) and rgba[0, 0, 3] == 0
    assert OVERLAY_RGB == (255, 0, 255)  # magenta, never red on green
    assert figure.layout.xaxis.title.text == "column (px)" and figure.layout.yaxis.title.text == "row (px)"
    assert [t.name for t in overlay_figure(base, threshold=0.5, show_mask=False).data] == ["mammogram", "zoom here"]
    with pytest.raises(ParameterError, match="opacity"):
        overlay_figure(base, threshold=0.5, opacity=1.5)


def test_zoom_centre_from_a_click_or_a_box_and_crop_box_stays_inside() -> None:
    from medlim.ui.mammography import crop_box, zoom_centre

    shape = (4096, 3328)
    assert zoom_centre({"points": [{"x": 100.4, "y": 2000.6}], "box": []}, shape) == (2001, 100)
    assert zoom_centre({"points": [], "box": [{"x": [0, 200], "y": [4000, 5000]}]}, shape) == (4095, 100)
    assert zoom_centre({"points": [], "box": []}, shape) is None and zoom_centre(None, shape) is None
    assert crop_box(shape, (2001, 100), 512) == (1745, 0, 2257, 512)
    assert crop_box((300, 400), (10, 10), 512) == (0, 0, 300, 400)


def test_zoom_figure_is_full_resolution_at_the_crop_origin() -> None:
    from medlim.ui.mammography import zoom_figure

    figure = zoom_figure(np.zeros((4, 5), np.float32), np.ones((4, 5), np.float32), origin=(100, 200), threshold=0.5)
    grey, mask = figure.data
    assert (grey.x0, grey.y0, grey.dx) == (200, 100, 1) and mask.name == "calcification mask"


def test_history_figure_uses_colour_blind_safe_colours_and_titles_its_axes() -> None:
    from medlim.mammography.exam import ExamSummary, ViewReadout, group_exams, longitudinal_changes
    from medlim.mammography.history import PatientHistory
    from medlim.ui.mammography import VIEW_COLOURS, change_rows, history_figure

    views = [ViewReadout("K", date, "L", view, tam, 1000) for date, view, tam in
             (("2018-01-01", "CC", 10), ("2018-01-01", "MLO", 12), ("2019-01-01", "CC", 40), ("2019-01-01", "MLO", 42))]
    exams = group_exams(views)
    summary = ExamSummary(tuple(exams), tuple(longitudinal_changes(exams)), ())
    history = PatientHistory("K", "w", "1", (), summary)
    figure = history_figure(history)
    assert [t.name for t in figure.data] == ["LCC", "LMLO", "Exam: Σ TAM_100 / breast area", "Change: real change"]
    assert [t.line.color for t in figure.data[:2]] == [VIEW_COLOURS["LCC"], VIEW_COLOURS["LMLO"]]
    assert figure.data[3].marker.color == "#D55E00"  # Okabe–Ito vermillion, beside grey, never beside green
    # Totals 0.022 → 0.082: Δ = 0.060 > noise max(|0.010 − 0.012|, |0.040 − 0.042|) = 0.002, so real.
    assert list(figure.data[2].y) == pytest.approx([0.022, 0.082])
    assert figure.layout.xaxis.title.text == "exam date" and "TAM_100" in figure.layout.yaxis.title.text
    assert change_rows(history.changes)[0]["Flag"] == "real change"


def test_weights_options_mark_the_task_default_and_the_users_models() -> None:
    from types import SimpleNamespace

    from medlim.ui.mammography import weights_option_label, weights_options

    def listed(version: str, default: bool, source: str = "shipped"):
        return SimpleNamespace(entry=SimpleNamespace(name="scunet-bac", version=version), task_default=default,
                               source=source)  # fmt: skip

    models = [listed("1", False), listed("2", True), listed("3", False, "user")]
    assert weights_options(models) == (["scunet-bac@1", "scunet-bac@2", "scunet-bac@3"], "scunet-bac@2")
    assert weights_option_label("scunet-bac@2", models) == "scunet-bac@2 (default)"
    assert weights_option_label("scunet-bac@3", models) == "scunet-bac@3 (yours)"
    assert weights_options([listed("1", False)]) == (["scunet-bac@1"], None)


def test_mask_png_is_255_where_p_exceeds_the_cutoff() -> None:
    import cv2

    from medlim.ui.mammography import mask_png

    probability = np.array([[0.2, 0.6], [0.5, 0.9]], np.float32)
    mask = cv2.imdecode(np.frombuffer(mask_png(probability, threshold=0.5), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.tolist() == [[0, 255], [0, 255]]  # p > t, strictly
