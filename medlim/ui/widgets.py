"""Input widgets shared by the pages: choose images by upload or bundled sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from medlim.ui.loaders import list_samples

__all__ = ["ImageSource", "image_source_picker"]


@dataclass(frozen=True)
class ImageSource:
    """One chosen image file: its display name and its bytes."""

    name: str
    data: bytes


def image_source_picker(*, key: str, samples_dir: Path, multiple: bool = True) -> list[ImageSource]:
    """Upload widget plus a bundled-sample picker; returns the chosen files.

    The uploader accepts any file type on purpose: DICOM files often have no
    suffix, and the reader decides by magic bytes.

    Args:
        key: widget key prefix, unique on the page.
        samples_dir: folder of bundled samples (may be absent).
        multiple: allow several files.

    Returns:
        Uploaded files first, then chosen samples (names relative to ``samples_dir``).
    """
    uploaded = st.file_uploader(
        "Upload images (DICOM, PNG, TIFF or JPEG)",
        accept_multiple_files=multiple,
        key=f"{key}_upload",
        help="Files are read in memory for this session; patient names and IDs are never shown.",
    )
    files = [] if uploaded is None else (uploaded if isinstance(uploaded, list) else [uploaded])
    sources = [ImageSource(name=file.name, data=file.getvalue()) for file in files]

    samples = list_samples(samples_dir)
    if samples:
        labels = {path.relative_to(samples_dir).as_posix(): path for path in samples}
        if multiple:
            chosen = st.multiselect("…or open bundled samples", list(labels), key=f"{key}_samples")
        else:
            one = st.selectbox("…or open a bundled sample", list(labels), index=None, key=f"{key}_samples")
            chosen = [] if one is None else [one]
        sources.extend(ImageSource(name=label, data=labels[label].read_bytes()) for label in chosen)
    else:
        st.caption(f"No bundled samples found in `{samples_dir}`.")
    return sources
