"""Figures for the image pages: a zoomable image, a histogram, display windowing.

Pure functions returning plotly figures or arrays (no streamlit), so they can be
tested without a running app. Window/level follows the DICOM linear window
(PS3.3 C.11.2.1.2) through :func:`medlim.core.io.apply_window`, applied to the
record's ``raw`` values (modality LUT only), as in the reader (METHODS.md, image
input). The viewer opens on the window the reader recorded as applied
(:class:`medlim.core.io.record.DisplayWindow`, issue 17: one reader contract),
never on one estimated back from the pixels.
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
    "windowed_region",
    "block_max",
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
        function: VOI LUT function, ``"LINEAR"``, ``"LINEAR_EXACT"`` or ``"SIGMOID"``.
        from_file: ``True`` when centre/width are what the reader applied (the
            file's window, the value range it stretched, or a VOI LUT's input range).
        exact: windowing ``raw`` with these values gives the reader's ``pixels``
            (false for a VOI LUT table, which a window only approximates).
        description: what the reader applied, in words (``""`` when unknown).
    """

    center: float
    width: float
    low: float
    high: float
    function: str = "LINEAR"
    from_file: bool = False
    exact: bool = False
    description: str = ""


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def reader_window(record: ImageRecord) -> tuple[float, float, str] | None:
    """The window the reader recorded as applied to ``raw`` to make ``pixels``.

    Args:
        record: a decoded image.

    Returns:
        ``(center, width, function)`` for :func:`medlim.core.io.apply_window`, or
        ``None`` for colour images, records without a recorded window and VOI
        LUT tables (which a window does not reproduce).
    """
    window = record.metadata.display_window
    if window is None or not window.exact or record.is_color:
        return None
    return float(window.center), float(window.width), window.function


def default_window(record: ImageRecord) -> WindowSetting:
    """The window the viewer opens with: for DICOM, what the reader applied.

    A grey DICOM opens on the record's
    :attr:`~medlim.core.io.record.ImageMetadata.display_window` (the file's
    window, the value range the reader stretched, or a VOI LUT's input range).
    Rasters — whose applied window is their bit depth, which leaves a 12-bit
    image in a 16-bit PNG nearly black — and records without a recorded window
    open on the full range of ``raw``: centre = (min + max) / 2,
    width = max − min (at least 1), LINEAR.

    Args:
        record: a decoded image.

    Returns:
        The default :class:`WindowSetting`; ``low``/``high`` cover both the raw
        range and the window.
    """
    low, high = _finite_range(record.raw)
    dicom = record.metadata.source_format == "dicom"
    window = record.metadata.display_window if dicom and not record.is_color else None
    if window is not None:
        low, high = min(low, window.center - window.width / 2.0), max(high, window.center + window.width / 2.0)
        return WindowSetting(
            float(window.center), float(window.width), low, high, function=window.function, from_file=True,
            exact=window.exact, description=window.description,
        )  # fmt: skip
    return WindowSetting((low + high) / 2.0, max(high - low, 1.0), low, high)


def windowed_pixels(record: ImageRecord, *, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Display values of ``record`` under a window.

    Grey images are windowed from ``record.raw`` (then inverted when the reader
    inverted — MONOCHROME1 or an INVERSE presentation LUT — so bright stays dense
    as in the reader's ``pixels``); colour images are returned as decoded
    (``record.pixels``).

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
    return windowed_region(record, center=center, width=width, function=function)


def _inverted(record: ImageRecord) -> bool:
    """Whether the reader inverted the image (MONOCHROME1 or an INVERSE presentation LUT)."""
    window = record.metadata.display_window
    return window.inverted if window is not None else record.metadata.photometric == "MONOCHROME1"


def windowed_region(
    record: ImageRecord,
    *,
    center: float,
    width: float,
    function: str = "LINEAR",
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Display values of a grey record (or of a ``region`` of it) under a window.

    Windowing only the region a zoomed view shows keeps a full-resolution crop
    of a large mammogram fast.

    Args:
        record: a decoded grey image.
        center, width, function: as :func:`windowed_pixels`.
        region: ``(rows, cols)`` slices, or ``None`` for the whole image.

    Returns:
        ``np.ndarray[h, w]`` float32 in [0, 1], inverted when the reader inverted.

    Raises:
        ParameterError: a bad window (see :func:`windowed_pixels`).
    """
    if not np.isfinite(center):
        raise ParameterError(f"Window centre must be a finite number; {center!r} is given.")
    if not (np.isfinite(width) and width > 0):
        raise ParameterError(f"Window width must be a positive number; {width!r} is given.")
    from medlim.core.io import apply_window

    if function.upper() == "LINEAR" and width < 1.0:
        function = "LINEAR_EXACT"
    raw = record.raw if region is None else record.raw[region]
    display = np.asarray(apply_window(raw, center=center, width=width, function=function), dtype=np.float32)
    if _inverted(record):
        display = np.subtract(np.float32(1.0), display, out=display)
    return display


def block_max(mask: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a boolean mask by an integer ``factor`` keeping any set pixel (block maximum).

    Thin arteries stay visible on a downsampled display, where averaging would
    wash them out. Crops to whole blocks like :func:`downsample_for_display`.

    Args:
        mask: ``np.ndarray[H, W]`` of bool (or 0/nonzero).
        factor: integer >= 1.

    Returns:
        ``np.bool_[H // factor, W // factor]``.
    """
    if factor < 1:
        raise ParameterError(f"factor must be >= 1; {factor} is given.")
    mask = np.asarray(mask) != 0
    if factor == 1:
        return mask
    rows, cols = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    blocks = mask[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.any(axis=(1, 3))


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
            marker_color="#0072B2",  # Okabe–Ito blue
            hovertemplate="value %{x:.4g}<br>pixels %{y}<extra></extra>",
        )
    )
    if window is not None:
        figure.add_vrect(x0=window[0], x1=window[1], fillcolor="#E69F00", opacity=0.2, line_width=0)  # Okabe–Ito orange
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
