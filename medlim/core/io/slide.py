"""Whole-slide images read lazily, tile by tile, and the pixel size TIFF files state (issue 16, "Pathology").

Microscopy pixel size (:func:`tiff_spacing_um`, :func:`file_spacing_um`), first found of:

1. OME-TIFF: ``Pixels/@PhysicalSizeX`` and ``@PhysicalSizeY`` with their
   ``…Unit`` (µm when absent, OME's default);
2. Aperio SVS: ``MPP = …`` in the ImageDescription;
3. ImageJ TIFF: ``unit=micron`` in its description, XResolution in pixels per µm;
4. TIFF ``XResolution``/``YResolution`` with ``ResolutionUnit`` centimetre or
   inch (NDPI and most scanners write centimetres). A resolution unit of
   "none", or a size coarser than :data:`MAX_MICROSCOPY_UM` (72 dpi is 353 µm:
   a print setting, not a microscope's pixel), is no pixel size.

Different x and y sizes are averaged (square pixels are assumed downstream).

Whole slides (:class:`Slide`, :func:`open_slide`): SVS, NDPI, OME-TIFF and
tiled / pyramidal TIFF through tiffslide (tifffile + zarr, codecs from
imagecodecs: JPEG, JPEG 2000, deflate, LZW…). Only the tiles a region covers
are decoded, so the memory a read takes is that of the region asked for, and
the decode budget (:mod:`medlim.core.io.budget`) is checked per region — a
slide of any size is readable tile by tile, never whole.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from medlim.core.io.budget import DecodeCost, check_decode_budget
from medlim.errors import CorruptFileError, InputError, ParameterError, UnsupportedFormatError
from medlim.settings import Settings, get_settings

__all__ = [
    "MAX_MICROSCOPY_UM",
    "SLIDE_SUFFIXES",
    "tiff_spacing_um",
    "file_spacing_um",
    "is_slide",
    "Slide",
    "open_slide",
]

#: Coarsest pixel size read as a microscope's, µm (a 1.25× overview is about 8 µm).
MAX_MICROSCOPY_UM = 50.0
#: File suffixes that are whole-slide formats whatever their layout.
SLIDE_SUFFIXES: tuple[str, ...] = (".svs", ".ndpi", ".scn", ".bif")
#: Micrometres per unit of OME's length units and of TIFF's ResolutionUnit.
_OME_UNITS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "Å": 1e-4, "mm": 1e3, "cm": 1e4, "m": 1e6}
_TIFF_UNITS = {2: (25400.0, "inch"), 3: (10000.0, "cm")}


def _usable(x_um: float, y_um: float, detail: str) -> tuple[float, str] | None:
    if not all(math.isfinite(v) and 0 < v <= MAX_MICROSCOPY_UM for v in (x_um, y_um)):
        return None
    if not math.isclose(x_um, y_um, rel_tol=0.01):
        return (x_um + y_um) / 2, f"{detail}; x {x_um:.4g} µm and y {y_um:.4g} µm averaged"
    return (x_um + y_um) / 2, detail


def _ome_spacing(xml: str) -> tuple[float, str] | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    sizes = []
    for axis in ("X", "Y"):
        unit = pixels.attrib.get(f"PhysicalSize{axis}Unit", "µm")
        try:
            sizes.append(float(pixels.attrib.get(f"PhysicalSize{axis}", pixels.attrib["PhysicalSizeX"])) * _OME_UNITS[unit])
        except (KeyError, ValueError):
            return None
    return _usable(sizes[0], sizes[1], "OME-TIFF PhysicalSizeX/Y")


def _rational(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]) / float(value[1]) if value[1] else math.nan
    return float(value)


def _tag_spacing(page: Any, *, imagej_micron: bool) -> tuple[float, str] | None:
    tags = page.tags
    if "XResolution" not in tags:
        return None
    x_res = _rational(tags["XResolution"].value)
    y_res = _rational(tags["YResolution"].value) if "YResolution" in tags else x_res
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    if not (x_res > 0 and y_res > 0):
        return None
    if imagej_micron:
        return _usable(1 / x_res, 1 / y_res, "ImageJ TIFF resolution (µm)")
    if unit not in _TIFF_UNITS:
        return None
    per_unit, name = _TIFF_UNITS[unit]
    return _usable(per_unit / x_res, per_unit / y_res, f"TIFF XResolution/YResolution ({name})")


def tiff_spacing_um(tiff: Any) -> tuple[float, str] | None:
    """The pixel size an open ``tifffile.TiffFile`` states for its first image, µm, and where it was found.

    Returns:
        ``(µm, detail)`` or ``None`` when the file states no microscope pixel size.
    """
    try:
        if getattr(tiff, "is_ome", False) and tiff.ome_metadata:
            found = _ome_spacing(tiff.ome_metadata)
            if found is not None:
                return found
        page = tiff.pages[0]
        description = str(getattr(page, "description", "") or "")
        aperio = re.search(r"\bMPP\s*=\s*([0-9.eE+-]+)", description) if description.startswith("Aperio") else None
        if aperio is not None:
            found = _usable(float(aperio.group(1)), float(aperio.group(1)), "Aperio SVS MPP")
            if found is not None:
                return found
        imagej = getattr(tiff, "imagej_metadata", None) or {}
        micron = str(imagej.get("unit", "")).lower() in ("micron", "microns", "um", "µm")
        return _tag_spacing(page, imagej_micron=micron)
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError):
        return None


def file_spacing_um(source: str | Path | bytes) -> tuple[float, str] | None:
    """The pixel size a TIFF file (path or bytes) states, µm; ``None`` for other formats or none stated.

    Only the header is read.
    """
    import io

    import tifffile

    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:4])
        opened: Any = io.BytesIO(bytes(source))
    else:
        with open(source, "rb") as handle:
            head = handle.read(4)
        opened = str(source)
    if head[:2] not in (b"II", b"MM"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(opened) as tiff:
                return tiff_spacing_um(tiff)
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError):
        return None


def _first_tiff_page(path: Path) -> tuple[bool, int] | None:
    """``(tiled, pixels)`` of a ``.tif``/``.tiff`` file's first page (header only); ``None`` for another file
    or one tifffile cannot open."""
    import tifffile

    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(str(path)) as tiff:
                page = tiff.pages.first
                length, width = page.shaped[2:4]  # (separate samples, depth, length, width, samples)
                return bool(getattr(page, "is_tiled", False)), int(length) * int(width)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, AttributeError):
        return None


def is_slide(path: str | Path) -> bool:
    """Whether ``path`` is read as a whole slide: a whole-slide suffix, or a TIFF whose first page is tiled."""
    path = Path(path)
    if path.suffix.lower() in SLIDE_SUFFIXES:
        return True
    page = _first_tiff_page(path)
    return page is not None and page[0]


#: A tiled TIFF with at most this many pixels on its first page is read whole, as any image is: the same
#: detections, labels image and training-data check as the same pixels in a plain file (a 512 px tiled TIFF
#: lost 16 of 505 droplets along its edges through the whole-slide path).
WHOLE_READ_PIXELS = 4096 * 4096


def read_whole(path: str | Path) -> bool:
    """Whether a file :func:`is_slide` calls a slide is small enough to read whole: a TIFF (not a scanner
    format) whose first page holds at most :data:`WHOLE_READ_PIXELS` pixels."""
    page = _first_tiff_page(Path(path))
    return page is not None and page[1] <= WHOLE_READ_PIXELS


@dataclass(frozen=True)
class _Levels:
    dimensions: tuple[tuple[int, int], ...]
    downsamples: tuple[float, ...]


class Slide:
    """An open whole-slide image: levels, pixel size, and region reads that decode only the tiles they cover.

    Holds the open file (real state); use as a context manager or call :meth:`close`.

    Attributes:
        name: the file name, for messages.
        height, width: level-0 size in px.
        spacing: ``(µm, detail)`` the file states, or ``None``.
    """

    def __init__(self, handle: Any, *, name: str, settings: Settings) -> None:
        self._handle = handle
        self._settings = settings
        self.name = name
        width, height = (int(v) for v in handle.dimensions)
        self.height, self.width = height, width
        self._levels = _Levels(tuple((int(h), int(w)) for w, h in handle.level_dimensions),
                               tuple(float(d) for d in handle.level_downsamples))
        self.spacing = tiff_spacing_um(handle.ts_tifffile)

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    @property
    def level_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(height, width)`` of every pyramid level, full resolution first."""
        return self._levels.dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Downsample factor of every level (level 0: 1)."""
        return self._levels.downsamples

    def overview_level(self, *, max_side: int = 4096) -> int:
        """The finest level whose longer side is at most ``max_side`` (else the coarsest level)."""
        for level, (height, width) in enumerate(self.level_shapes):
            if max(height, width) <= max_side:
                return level
        return len(self.level_shapes) - 1

    def read_region(self, top: int, left: int, height: int, width: int, *, level: int = 0) -> np.ndarray:
        """Pixels of a region as ``np.ndarray[height, width, 3]`` uint8 RGB, decoding only the tiles it covers.

        Args:
            top, left: the region's corner in level-0 px.
            height, width: its size in px *of that level*.
            level: pyramid level.

        Raises:
            ParameterError: a region outside the slide or an unknown level.
            DecodeBudgetError: the region alone is over ``MEDLIM_DECODE_BUDGET_MB``.
            CorruptFileError: the tiles cannot be decoded.
        """
        if not 0 <= level < len(self.level_shapes):
            raise ParameterError(f"level must be in 0..{len(self.level_shapes) - 1}, {level!r} is given.")
        if height < 1 or width < 1 or top < 0 or left < 0 or top >= self.height or left >= self.width:
            raise ParameterError(f"region at ({top}, {left}) of {height}×{width} px lies outside {self.name} "
                                 f"({self.height}×{self.width} px).")
        pixels = height * width
        # tiffslide decodes the covering tiles into one array, then the caller converts it: twice the region.
        check_decode_budget(DecodeCost(height=height, width=width, decoded_bytes=pixels * 4, transient_bytes=pixels * 4),
                            name=self.name, settings=self._settings)
        try:
            region = self._handle.read_region((int(left), int(top)), int(level), (int(width), int(height)),
                                              as_array=True)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise CorruptFileError(f"{self.name}: the region at ({top}, {left}) cannot be decoded "
                                   f"({type(exc).__name__}); the slide may be damaged.") from exc
        region = np.asarray(region)
        if region.ndim == 2:
            region = np.repeat(region[..., None], 3, axis=2)
        if region.dtype != np.uint8:
            top_value = float(np.iinfo(region.dtype).max) if np.issubdtype(region.dtype, np.integer) else 1.0
            region = np.clip(region.astype(np.float32) * (255.0 / top_value), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(region[..., :3])

    def overview(self, *, max_side: int = 4096) -> tuple[np.ndarray, float]:
        """The whole slide at a low-resolution level: ``(np.ndarray[h, w, 3] uint8, downsample)``."""
        level = self.overview_level(max_side=max_side)
        height, width = self.level_shapes[level]
        return self.read_region(0, 0, height, width, level=level), self.level_downsamples[level]


def open_slide(path: str | Path, *, settings: Settings | None = None) -> Slide:
    """Open a whole-slide image (SVS, NDPI, OME-TIFF, tiled/pyramidal TIFF) without decoding its pixels.

    Raises:
        InputError: no such file; UnsupportedFormatError: not a slide format tiffslide reads.
    """
    import tiffslide

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: no such file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle = tiffslide.TiffSlide(str(path))
    except Exception as exc:  # tiffslide raises many types for unreadable files; all mean "not a slide"
        raise UnsupportedFormatError(f"{path.name} cannot be opened as a whole-slide image "
                                     f"({type(exc).__name__}); SVS, NDPI, OME-TIFF and tiled TIFF are read.") from exc
    return Slide(handle, name=path.name, settings=settings or get_settings())
