"""Figures for the image pages: a zoomable image, a histogram, display windowing.

Pure functions returning plotly figures or arrays (no streamlit), so they can be
tested without a running app. Window/level follows the DICOM linear window
(PS3.3 C.11.2.1.2) through :func:`medlim.core.io.apply_window`, applied to the
record's ``raw`` values (modality LUT only), as in the reader (METHODS.md, image
input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from medlim.core.io.record import ImageRecord
from medlim.errors import ParameterError

__all__ = [
    "WindowSetting",
    "reader_window",
    "default_window",
    "windowed_pixels",
    "downsample_for_display",
    "image_figure",
    "histogram_figure",
]

#: Longest side sent to the browser; larger images are area-averaged for display only.
DISPLAY_MAX_SIDE = 2048


@dataclass(frozen=True)
class WindowSetting:
    """A display window over raw values, and the range the sliders may cover.

    Attributes:
        center: window centre (level), in raw units.
        width: window width, in raw units (> 0).
        low: smallest value the centre slider offers (raw minimum or window edge).
        high: largest value the centre slider offers (``>= low``).
        function: DICOM VOI LUT function, ``"LINEAR"`` or ``"SIGMOID"``.
        from_file: ``True`` when centre/width come from the file's own window.
    """

    center: float
    width: float
    low: float
    high: float
    function: str = "LINEAR"
    from_file: bool = False


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def reader_window(record: ImageRecord, *, tolerance: float = 0.01) -> tuple[float, float, str] | None:
    """The window the reader applied to ``raw`` to make ``pixels``, if it was one.

    The reader applies the file's window (PS3.3 C.11.2.1.2) but the record keeps
    only its result, so the window is recovered by a least-squares line through
    the (raw, display) pairs strictly between black and white:

    * LINEAR maps ``x`` to ``(x - (c - 0.5)) / (w - 1) + 0.5``: slope ``a`` and
      intercept ``b`` give ``w = 1 / a + 1``, ``c = (0.5 - b) / a + 0.5``;
    * SIGMOID maps ``x`` to ``1 / (1 + exp(-4 (x - c) / w))``, so
      ``logit(p) = 4 (x - c) / w`` is a line: ``w = 4 / a``, ``c = -b / a``.

    A mapping that fits neither within ``tolerance`` (a VOI LUT table, the value
    range of a file without a window) gives ``None``.

    Args:
        record: a decoded grey image (colour images give ``None``).
        tolerance: largest allowed deviation from the fit, in display units [0, 1].

    Returns:
        ``(center, width, function)`` for :func:`medlim.core.io.apply_window`
        (``function`` is ``"LINEAR"`` or ``"SIGMOID"``), rounded to 1e-3 raw
        units, or ``None``.
    """
    if record.is_color:
        return None
    raw = np.asarray(record.raw, dtype=np.float64).ravel()
    shown = np.asarray(record.pixels, dtype=np.float64).ravel()
    if record.metadata.photometric == "MONOCHROME1":
        shown = 1.0 - shown  # the reader inverts after windowing
    stride = max(1, raw.size // 1_000_000)  # a million pairs pin a line; keeps large mammograms fast
    raw, shown = raw[::stride], shown[::stride]
    inside = np.isfinite(raw) & (shown > 0.01) & (shown < 0.99)
    x, p = raw[inside], shown[inside]
    if np.unique(x).size < 2:
        return None
    slope, intercept = np.polyfit(x, p, 1)
    if slope > 0 and np.max(np.abs(slope * x + intercept - p)) <= tolerance:
        return round(float((0.5 - intercept) / slope + 0.5), 3), round(float(1.0 / slope + 1.0), 3), "LINEAR"
    slope, intercept = np.polyfit(x, np.log(p / (1.0 - p)), 1)
    if slope > 0 and np.max(np.abs(1.0 / (1.0 + np.exp(-(slope * x + intercept))) - p)) <= tolerance:
        return round(float(-intercept / slope), 3), round(float(4.0 / slope), 3), "SIGMOID"
    return None


def default_window(record: ImageRecord) -> WindowSetting:
    """The window the viewer opens with.

    For DICOM, the file's window as the reader applied it (:func:`reader_window`).
    Otherwise (rasters, VOI LUT tables, files without a window) the full range of
    ``raw``: centre = (min + max) / 2, width = max − min (at least 1), LINEAR.

    Args:
        record: a decoded image.

    Returns:
        The default :class:`WindowSetting`; ``low``/``high`` cover both the raw
        range and the window.
    """
    low, high = _finite_range(record.raw)
    window = reader_window(record) if record.metadata.source_format == "dicom" else None
    if window is not None:
        center, width, function = window
        low, high = min(low, center - width / 2.0), max(high, center + width / 2.0)
        return WindowSetting(center, width, low, high, function=function, from_file=True)
    return WindowSetting((low + high) / 2.0, max(high - low, 1.0), low, high)


def windowed_pixels(record: ImageRecord, *, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Display values of ``record`` under a window.

    Grey images are windowed from ``record.raw`` (then inverted for
    MONOCHROME1, so bright stays dense as in the reader's ``pixels``); colour
    images are returned as decoded (``record.pixels``).

    Args:
        record: a decoded image.
        center: window centre in raw units.
        width: window width in raw units, > 0.
        function: ``"LINEAR"`` (LINEAR_EXACT is used below width 1, where LINEAR
            is undefined) or ``"SIGMOID"``.

    Returns:
        ``np.ndarray[H, W]`` (grey) or ``[H, W, 3]`` (colour), float32 in [0, 1].

    Raises:
        ParameterError: ``width`` is not positive, ``center`` is not finite, or
            ``function`` is unknown.
    """
    if not np.isfinite(center):
        raise ParameterError(f"Window centre must be a finite number; {center!r} is given.")
    if not (np.isfinite(width) and width > 0):
        raise ParameterError(f"Window width must be a positive number; {width!r} is given.")
    if record.is_color:
        return record.pixels
    from medlim.core.io import apply_window

    if function.upper() == "LINEAR" and width < 1.0:
        function = "LINEAR_EXACT"
    display = np.asarray(apply_window(record.raw, center=center, width=width, function=function), dtype=np.float32)
    if record.metadata.photometric == "MONOCHROME1":
        display = 1.0 - display
    return display


def downsample_for_display(image: np.ndarray, *, max_side: int = DISPLAY_MAX_SIDE) -> tuple[np.ndarray, int]:
    """Shrink ``image`` by an integer factor so its longest side is ``<= max_side``.

    Block averaging (area), for display only: measurements always use full resolution.

    Args:
        image: ``np.ndarray[H, W]`` or ``[H, W, C]``, any numeric dtype.
        max_side: largest side allowed, >= 1.

    Returns:
        ``(shrunk, factor)``: float32 array and the integer factor (1 = unchanged).
    """
    if max_side < 1:
        raise ParameterError(f"max_side must be >= 1; {max_side} is given.")
    height, width = image.shape[:2]
    factor = max(1, int(np.ceil(max(height, width) / max_side)))
    if factor == 1:
        return image.astype(np.float32, copy=False), 1
    h_crop, w_crop = (height // factor) * factor, (width // factor) * factor
    blocks = image[:h_crop, :w_crop].astype(np.float32, copy=False)
    shape = (h_crop // factor, factor, w_crop // factor, factor) + image.shape[2:]
    return blocks.reshape(shape).mean(axis=(1, 3)), factor


def image_figure(display: np.ndarray, *, title: str | None = None, height: int = 640) -> go.Figure:
    """A zoomable (box zoom, pan, double-click reset) figure of a display image.

    Args:
        display: ``np.ndarray[H, W]`` or ``[H, W, 3]``, float in [0, 1].
        title: figure title.
        height: figure height in pixels.

    Returns:
        A plotly figure with one ``Image`` trace (PNG-encoded, square pixels,
        origin top-left, axes in pixel coordinates of ``display``).
    """
    import plotly.express as px

    as_uint8 = np.clip(np.rint(np.asarray(display, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    figure = px.imshow(as_uint8, binary_string=True, binary_format="png", zmin=0, zmax=255)
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        dragmode="zoom",
        xaxis_title="column (px)",
        yaxis_title="row (px)",
    )
    figure.update_yaxes(scaleanchor="x", scaleratio=1)
    return figure


def histogram_figure(
    values: np.ndarray,
    *,
    bins: int = 256,
    x_title: str = "value",
    title: str | None = None,
    window: tuple[float, float] | None = None,
) -> go.Figure:
    """Histogram of finite ``values`` as a bar chart (counts on a log axis).

    Args:
        values: any-shaped numeric array (e.g. ``record.raw``).
        bins: number of equal-width bins, >= 1.
        x_title: x-axis title (quantity and unit).
        title: figure title.
        window: optional ``(low, high)`` display window drawn as a shaded band.

    Returns:
        A plotly figure with one ``Bar`` trace of ``bins`` bars.
    """
    if bins < 1:
        raise ParameterError(f"bins must be >= 1; {bins} is given.")
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    figure = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2.0,
            y=counts,
            width=np.diff(edges),
            marker_color="#4C72B0",
            hovertemplate="value %{x:.4g}<br>pixels %{y}<extra></extra>",
        )
    )
    if window is not None:
        figure.add_vrect(x0=window[0], x1=window[1], fillcolor="#DD8452", opacity=0.2, line_width=0)
    figure.update_layout(
        title=title,
        height=280,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis_title=x_title,
        yaxis_title="pixels (log scale)",
        yaxis_type="log",
        yaxis_dtick=1,  # label powers of ten only
        bargap=0,
        showlegend=False,
    )
    return figure
