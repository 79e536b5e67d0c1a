"""Cached loaders for the pages: image reading, bundled samples, model versions.

Data are cached with ``st.cache_data`` (keyed on the bytes, so re-running a
page after a slider move does not decode again); models, when pages load them,
with ``st.cache_resource``. Every cache is bounded and expires
(:mod:`medlim.ui.caching`); decoded uploads are kept per session, so they go
when the browser disconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medlim.core.io.record import ImageRecord
from medlim.ui.caching import bounded_cache_data

__all__ = [
    "READ_CACHE_ENTRIES",
    "SAMPLE_SUFFIXES",
    "ModelVersion",
    "read_image_cached",
    "list_samples",
    "model_versions",
]

#: File suffixes offered as bundled samples (the reader itself goes by magic bytes).
SAMPLE_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg"})


#: Decoded images kept per session (an 8000 × 8000 image takes about 256 MB).
READ_CACHE_ENTRIES = 8


@bounded_cache_data(max_entries=READ_CACHE_ENTRIES, scope="session", show_spinner="Reading image…")
def read_image_cached(data: bytes, name: str, frame: int | None = None) -> ImageRecord:
    """:func:`medlim.core.io.read_image` on uploaded bytes, cached on the content in this session.

    Args:
        data: the file's bytes.
        name: the file name (display only; no folders).
        frame: frame of a multi-frame file, or ``None``.

    Raises:
        MedlimError: as :func:`medlim.core.io.read_image` (not cached).
    """
    from medlim.core.io import read_image

    return read_image(data, name=name, frame=frame)


def list_samples(samples_dir: Path) -> list[Path]:
    """Image files under ``samples_dir`` (recursively, sorted); ``[]`` if it is absent."""
    if not samples_dir.is_dir():
        return []
    return sorted(
        path
        for path in samples_dir.rglob("*")
        if path.is_file() and path.suffix.lower() in SAMPLE_SUFFIXES and not path.name.startswith(".")
    )


@dataclass(frozen=True)
class ModelVersion:
    """A model in the weights registry, as shown on the home page."""

    name: str
    version: str
    task: str
    intended_use: str


def model_versions() -> list[ModelVersion]:
    """Models in the weights registry (``Settings.weights_dir``); ``[]`` when none are registered.

    Raises:
        MedlimError: the manifest exists but cannot be read.
    """
    try:
        from medlim.core import weights
    except ModuleNotFoundError as exc:
        if exc.name == "medlim.core.weights":
            return []  # registry not installed in this checkout
        raise
    return [
        ModelVersion(
            name=str(entry.name),
            version=str(entry.version),
            task=str(getattr(entry, "task", "")),
            intended_use=str(getattr(entry, "intended_use", "")),
        )
        for entry in weights.Registry.load().list()
    ]
