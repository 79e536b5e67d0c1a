"""The image record every reader returns: pixels plus non-identifying metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from medlim.errors import ParameterError

__all__ = ["DISPLAY_WINDOW_KINDS", "DisplayWindow", "ImageMetadata", "ImageRecord", "PIXEL_SPACING_LABELS"]

#: How a reader turned ``raw`` into ``pixels`` (:attr:`DisplayWindow.kind`).
DISPLAY_WINDOW_KINDS: tuple[str, ...] = ("window", "lut", "range")

#: Plain-language meaning of each ``pixel_spacing_source``: where the pixel size is
#: measured. PixelSpacing is at the patient (for a mammogram: the breast);
#: ImagerPixelSpacing is at the detector, larger than at the breast by the
#: geometric magnification, which EstimatedRadiographicMagnificationFactor undoes.
PIXEL_SPACING_LABELS: dict[str, str] = {
    "PixelSpacing": "at the patient/breast",
    "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor": "at the breast (detector spacing ÷ magnification)",
    "ImagerPixelSpacing": "at the detector (not corrected for magnification)",
}


@dataclass(frozen=True)
class DisplayWindow:
    """The grey-level mapping a reader applied to ``raw`` to make ``pixels`` (DICOM PS3.3 C.11.2).

    The reader records it so that a viewer opens on exactly what was applied,
    instead of estimating it back from the pixels.

    Attributes:
        kind: ``"window"`` (the file's Window Center/Width), ``"lut"`` (the
            file's VOI LUT table) or ``"range"`` (no VOI in the file, or a raster:
            ``low``..``high`` of ``raw`` stretched to 0..1).
        center: window centre in raw units. For ``"range"``, ``(low + high) / 2``;
            for ``"lut"``, the centre of the table's input range.
        width: window width in raw units (> 0). For ``"range"``, ``high - low``
            (at least 1e-12); for ``"lut"``, the table's input range.
        function: ``"LINEAR"``, ``"LINEAR_EXACT"`` or ``"SIGMOID"`` such that
            ``apply_window(raw, center=center, width=width, function=function)``
            is what was applied — exact for ``"window"`` and ``"range"``
            (``"range"`` is LINEAR_EXACT), a linear stand-in for ``"lut"``.
        inverted: the result was inverted (MONOCHROME1, or Presentation LUT Shape INVERSE).
        lut_first_mapped: for ``"lut"``, the input value mapped to the first entry.
        lut_entries: for ``"lut"``, the number of table entries.
        lut_bits: for ``"lut"``, the bits per table entry.
    """

    kind: str
    center: float
    width: float
    function: str = "LINEAR"
    inverted: bool = False
    lut_first_mapped: int | None = None
    lut_entries: int | None = None
    lut_bits: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in DISPLAY_WINDOW_KINDS:
            raise ParameterError(f"kind must be one of {DISPLAY_WINDOW_KINDS}; {self.kind!r} is given.")
        if not self.width > 0:
            raise ParameterError(f"width must be positive; {self.width!r} is given.")

    @classmethod
    def value_range(cls, low: float, high: float, *, inverted: bool = False) -> "DisplayWindow":
        """``low`` → black, ``high`` → white, linear in between (LINEAR_EXACT over ``[low, high]``)."""
        width = max(float(high) - float(low), 1e-12)
        return cls("range", (float(low) + float(high)) / 2.0, width, "LINEAR_EXACT", inverted)

    @property
    def exact(self) -> bool:
        """``apply_window`` with these values reproduces ``pixels`` (false for a VOI LUT table)."""
        return self.kind != "lut"

    @property
    def description(self) -> str:
        """In words, for a caption: which mapping and its values."""
        flip = ", inverted" if self.inverted else ""
        if self.kind == "window":
            return f"the file's window (centre {self.center:g}, width {self.width:g}, {self.function}{flip})"
        if self.kind == "lut":
            return (f"the file's VOI LUT ({self.lut_entries} entries from {self.lut_first_mapped}, "
                    f"{self.lut_bits} bits{flip})")
        low, high = self.center - self.width / 2.0, self.center + self.width / 2.0
        return f"the value range {low:g}–{high:g} stretched to black–white{flip}"


@dataclass(frozen=True)
class ImageMetadata:
    """Non-identifying metadata. Never holds names, IDs or birth dates.

    Attributes:
        source_format: ``"dicom"``, ``"png"``, ``"tiff"`` or ``"jpeg"``.
        modality: DICOM Modality (``"MG"``, ``"CR"``, ...) or ``None``.
        view: ``"CC"``, ``"MLO"``, ... (from ViewPosition / view code) or ``None``.
        laterality: ``"L"``, ``"R"`` or ``None``.
        study_date: ISO date ``"YYYY-MM-DD"`` or ``None``.
        bits_stored: bits per sample in the file (8 for 8-bit rasters).
        photometric: DICOM PhotometricInterpretation as read, or
            ``"MONOCHROME2"``/``"RGB"`` for rasters.
        pixel_spacing_mm: (row, column) spacing in mm, or ``None`` when the file
            has none (never guessed).
        pixel_spacing_source: ``"PixelSpacing"`` (at the patient/breast),
            ``"ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"``
            (at the breast, corrected), ``"ImagerPixelSpacing"`` (at the detector) or ``None``.
        patient_key: pseudonymous key (keyed hash of PatientID) or ``None``.
        presentation_intent: ``"FOR PRESENTATION"``, ``"FOR PROCESSING"`` or ``None``.
        number_of_frames: frames in the file (the record holds one).
        frame_index: which frame the pixels are.
        warnings: plain-language warnings (e.g. a "For Processing" mammogram).
        display_window: the mapping from ``raw`` to ``pixels`` the reader applied
            (grey images), or ``None`` (colour, or a record not made by a reader).
    """

    source_format: str
    modality: str | None = None
    view: str | None = None
    laterality: str | None = None
    study_date: str | None = None
    bits_stored: int = 8
    photometric: str = "MONOCHROME2"
    pixel_spacing_mm: tuple[float, float] | None = None
    pixel_spacing_source: str | None = None
    patient_key: str | None = None
    presentation_intent: str | None = None
    number_of_frames: int = 1
    frame_index: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    display_window: DisplayWindow | None = None

    @property
    def pixel_spacing_label(self) -> str | None:
        """Where ``pixel_spacing_mm`` is measured, in words (``None`` without a spacing)."""
        if self.pixel_spacing_source is None:
            return None
        return PIXEL_SPACING_LABELS.get(self.pixel_spacing_source, self.pixel_spacing_source)


class ImageRecord:
    """Decoded image plus metadata (immutable).

    Attributes:
        pixels: display-ready values after the full DICOM chain (modality LUT →
            VOI LUT/window → MONOCHROME1 inversion → presentation LUT):
            ``np.ndarray[H, W]`` float32 in [0, 1] for grey images,
            ``np.ndarray[H, W, 3]`` float32 in [0, 1] for colour.
        raw: stored values after the modality LUT only (``np.ndarray[H, W]`` or
            ``[H, W, 3]``, float32, original units), for re-windowing.
        metadata: non-identifying metadata.
        name: file name (no folders), for display.

    A reader may pass ``render_pixels`` / ``render_raw`` instead of the arrays:
    functions called once, on first access to ``pixels`` / ``raw``. The reader
    uses it only for pure arithmetic on values it has already validated (a
    rescale, a window, a gather through a table it has built), so every error
    still surfaces inside the reader; the saving is that a caller who only needs
    the metadata, or reads many files before looking at one, does not pay for
    two image-sized float32 arrays up front (``benchmarks/bench_io.py`` reports
    both costs). Every reader does so (issue 14): a record holds the decoded
    array plus the float32 images asked for, one at a time
    (``benchmarks/bench_decode_memory.py`` measures the peak). Once both are
    rendered the render functions, and with them the decoded array, are released.
    """

    __slots__ = ("_pixels", "_raw", "_render_pixels", "_render_raw", "metadata", "name")

    # The slots' types (annotations only: a value here would clash with ``__slots__``).
    # Exactly one of ``_pixels`` / ``_render_pixels`` is set, likewise for ``raw``.
    _pixels: np.ndarray | None
    _raw: np.ndarray | None
    _render_pixels: Callable[[], np.ndarray] | None
    _render_raw: Callable[[], np.ndarray] | None
    metadata: ImageMetadata
    name: str

    def __init__(
        self,
        pixels: np.ndarray | None = None,
        raw: np.ndarray | None = None,
        metadata: ImageMetadata | None = None,
        name: str = "",
        *,
        render_pixels: Callable[[], np.ndarray] | None = None,
        render_raw: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if metadata is None:
            raise TypeError("ImageRecord needs metadata.")
        if (pixels is None and render_pixels is None) or (raw is None and render_raw is None):
            raise TypeError("ImageRecord needs pixels and raw, or functions that render them.")
        object.__setattr__(self, "_pixels", pixels)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_render_pixels", None if pixels is not None else render_pixels)
        object.__setattr__(self, "_render_raw", None if raw is not None else render_raw)
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "name", name)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"ImageRecord is immutable; cannot set {key!r}.")

    @property
    def pixels(self) -> np.ndarray:
        if self._render_pixels is not None:
            object.__setattr__(self, "_pixels", self._render_pixels())
            object.__setattr__(self, "_render_pixels", None)
        assert self._pixels is not None  # __init__ keeps the array or the function that renders it
        return self._pixels

    @property
    def raw(self) -> np.ndarray:
        if self._render_raw is not None:
            object.__setattr__(self, "_raw", self._render_raw())
            object.__setattr__(self, "_render_raw", None)
        assert self._raw is not None  # __init__ keeps the array or the function that renders it
        return self._raw

    def __reduce__(self) -> tuple:
        # Pickling (e.g. a UI cache) stores the arrays, never the render function.
        return (_rebuild_record, (self.pixels, self.raw, self.metadata, self.name))

    def __repr__(self) -> str:
        pixels = self._pixels  # None exactly while the render function is pending
        state = "pending" if pixels is None else f"{pixels.dtype}{list(pixels.shape)}"
        return f"ImageRecord(name={self.name!r}, pixels={state}, metadata={self.metadata!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageRecord):
            return NotImplemented
        return (
            self.name == other.name
            and self.metadata == other.metadata
            and np.array_equal(self.pixels, other.pixels)
            and np.array_equal(self.raw, other.raw, equal_nan=True)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3

    def to_uint8(self) -> np.ndarray:
        """Pixels as ``np.ndarray[H, W(, 3)]`` uint8 in 0..255 (rounded; one float32 scratch image)."""
        scaled = np.multiply(self.pixels, np.float32(255.0), dtype=np.float32)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)


def _rebuild_record(pixels: np.ndarray, raw: np.ndarray, metadata: ImageMetadata, name: str) -> ImageRecord:
    return ImageRecord(pixels=pixels, raw=raw, metadata=metadata, name=name)
