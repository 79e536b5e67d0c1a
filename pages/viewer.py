"""Image viewer: open DICOM/PNG/TIFF/JPEG images with window/level, zoom,
a histogram and the non-identifying metadata table."""

from __future__ import annotations

import hashlib

import streamlit as st

from medlim.core.io.record import ImageRecord
from medlim.errors import MultiFrameError
from medlim.settings import get_settings
from medlim.ui.errors import show_medlim_errors
from medlim.ui.figures import default_window, downsample_for_display, histogram_figure, image_figure, windowed_pixels
from medlim.ui.loaders import read_image_cached
from medlim.ui.metadata import metadata_table
from medlim.ui.shell import ensure_app_shell
from medlim.ui.widgets import ImageSource, image_source_picker


def _window_controls(record: ImageRecord, key: str) -> tuple[float, float, str]:
    """Centre/width sliders over the raw range; returns ``(center, width, function)``."""
    window = default_window(record)
    span = max(window.high - window.low, 1e-6)
    # Whole raw units for the usual integer-valued images; finer for small float ranges.
    step = 1.0 if span >= 50 else span / 500.0
    origin = f"the file's {window.function.lower()} window" if window.from_file else "the full range"
    st.caption(f"Window/level (opens on {origin}; raw values after the modality LUT).")
    center = st.slider(
        "Window centre (level)",
        min_value=float(window.low),
        max_value=float(window.low + span),
        value=float(min(max(window.center, window.low), window.low + span)),
        step=step,
        key=f"{key}_center",
        help="Raw value shown as mid-grey.",
    )
    width = st.slider(
        "Window width",
        min_value=float(step),
        max_value=float(max(2.0 * span, window.width)),
        value=float(window.width),
        step=step,
        key=f"{key}_width",
        help="Range of raw values spread from black to white; smaller is more contrast.",
    )
    return center, width, window.function


def _show_record(record: ImageRecord, key: str) -> None:
    for warning in record.metadata.warnings:
        st.warning(warning, icon=":material/warning:")
    image_column, side_column = st.columns([3, 2])
    with side_column:
        if record.is_color:
            st.caption("Colour image: shown as decoded (window/level applies to grey images).")
            center, width, function, band = 0.5, 1.0, "LINEAR", None
        else:
            center, width, function = _window_controls(record, key)
            band = (center - width / 2.0, center + width / 2.0)
    with image_column:
        with show_medlim_errors(subject=record.name) as outcome:
            display = windowed_pixels(record, center=center, width=width, function=function)
        if outcome.failed:
            return
        shrunk, factor = downsample_for_display(display)
        st.plotly_chart(
            image_figure(shrunk),
            key=f"{key}_image",
            config={"scrollZoom": True, "displaylogo": False},
        )
        height, width_px = record.pixels.shape[:2]
        note = f" (shown at 1/{factor} resolution)" if factor > 1 else ""
        st.caption(f"{width_px} × {height} px{note}. Drag to zoom, double-click to reset.")
    with side_column:
        unit = "stored value (after modality LUT)" if record.metadata.source_format == "dicom" else "pixel value"
        st.plotly_chart(
            histogram_figure(record.raw, x_title=unit, title="Histogram", window=band),
            key=f"{key}_histogram",
            config={"displaylogo": False},
        )
        st.table(metadata_table(record), hide_index=True)


def _open(source: ImageSource, key: str) -> ImageRecord | None:
    """Read ``source``; for a multi-frame file, show frame 1 and offer the others."""
    frame_key = f"{key}_frame"
    chosen: int | None = st.session_state.get(frame_key)
    frame = None if chosen is None else chosen - 1
    record: ImageRecord | None = None
    with show_medlim_errors(subject=source.name):
        try:
            record = read_image_cached(source.data, source.name, frame)
        except MultiFrameError:
            # The reader wants an explicit frame: open the first and let the reader choose.
            record = read_image_cached(source.data, source.name, 0)
    if record is not None and record.metadata.number_of_frames > 1:
        st.number_input(
            f"Frame to show (1 to {record.metadata.number_of_frames})",
            min_value=1,
            max_value=record.metadata.number_of_frames,
            value=1,
            step=1,
            key=frame_key,
        )
    return record


ensure_app_shell()
st.title("Image viewer")
st.caption("DICOM, PNG (8/16-bit), TIFF and JPEG. Only non-identifying metadata is shown.")
sources = image_source_picker(key="viewer", samples_dir=get_settings().samples_dir)
if not sources:
    st.info("Upload one or more images, or choose a bundled sample, to view them here.")
for index, source in enumerate(sources):
    key = f"viewer_{index}_{hashlib.sha1(source.name.encode()).hexdigest()[:8]}"
    with st.container(border=True):
        st.subheader(source.name)
        record = _open(source, key)
        if record is not None:
            _show_record(record, key)
