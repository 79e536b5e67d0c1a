"""Whole-slide segmentation in overlapping tiles, objects on tile borders kept once (issue 16, "Pathology").

Nuclei (thesis §3.1) and steatosis droplets (thesis §3.2.3) are found in
images far larger than memory: :func:`segment_slide` reads a region (or the
whole slide) tile by tile from a :class:`medlim.core.io.slide.Slide`, skips
tiles with no tissue on a low-resolution level, runs the room's per-tile
segmenter and keeps each object from exactly one tile — the tile whose *core*
(the tile minus half the overlap on every side that has a neighbour,
:func:`medlim.core.tiling.overlapping_tiles`) holds its centroid. With an
overlap wider than the largest object, that tile sees the object whole, so
its area, outline and features equal those of a single-image run (the same
rule :mod:`medlim.microscopy.steatosis.inference` uses inside one image).

Only one tile's pixels and labels exist at a time; what is kept per object is
its measurements and outline (:class:`SlideObjects`), never a slide-sized
label image, so memory is bounded by the tile size plus the objects found.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlim.core.tiling import Tile, overlapping_tiles
from medlim.errors import ParameterError
from medlim.microscopy.objects import ObjectShapes, measure_shapes
from medlim.microscopy.qupath import label_polygons

__all__ = ["Region", "parse_region", "TileSegmentation", "SlideObjects", "segment_slide", "bright_field_foreground"]


@dataclass(frozen=True)
class Region:
    """A rectangle of a slide in level-0 px (``top``/``left`` its corner)."""

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.top, self.left) < 0 or min(self.height, self.width) < 1:
            raise ParameterError(f"a region needs x, y ≥ 0 and w, h ≥ 1; {self.as_text()} is given.")

    def as_text(self) -> str:
        """``"x,y,w,h"`` as ``--region`` takes it."""
        return f"{self.left},{self.top},{self.width},{self.height}"

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


def parse_region(text: str) -> Region:
    """``"x,y,w,h"`` (level-0 px, x to the right) → :class:`Region`.

    Raises:
        ParameterError: not four whole numbers, or a negative corner / empty size.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ParameterError(f"a region is x,y,w,h in pixels (e.g. 0,0,4096,4096); {text!r} is given.") from None
    return Region(top=y, left=x, height=h, width=w)


@dataclass(frozen=True)
class TileSegmentation:
    """What a room's segmenter returns for one tile.

    Attributes:
        labels: ``np.ndarray[h, w]`` int objects 1..n (0 = none), every label present.
        extra: the room's per-object values, name → ``np.ndarray[n]`` (object ``k`` at ``k − 1``).
        tissue: ``np.ndarray[h, w]`` bool tissue mask, or ``None`` (tissue is not measured).
    """

    labels: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    tissue: np.ndarray | None = None


@dataclass(frozen=True)
class SlideObjects:
    """The objects of a slide region, each from the one tile that owns it.

    Attributes:
        shapes: their measurements, centroids in level-0 slide px, ids 1..n in tile order.
        outlines: one shapely outline per object, in slide px.
        extra: the room's per-object values, joined over tiles.
        tissue_px: tissue pixels of the region (each counted once, in its tile's core).
        region: the region processed.
        tiles: tiles segmented; skipped: tiles with no tissue on the overview.
        seconds: wall time.
    """

    shapes: ObjectShapes
    outlines: tuple[Any, ...]
    extra: Mapping[str, np.ndarray]
    tissue_px: float
    region: Region
    tiles: int
    skipped: int
    seconds: float

    def __len__(self) -> int:
        return len(self.shapes)


def bright_field_foreground(rgb: np.ndarray) -> np.ndarray:
    """Stained tissue on a bright-field overview: not near-white glass (``np.ndarray[h, w]`` bool).

    A pixel is tissue when its darkest channel is below 215/255 or its
    saturation is above 0.08 (glass is bright and grey).
    """
    rgb = np.asarray(rgb)[..., :3].astype(np.float32)
    brightest, darkest = rgb.max(axis=2), rgb.min(axis=2)
    saturation = (brightest - darkest) / np.maximum(brightest, 1.0)
    return (darkest < 215) | (saturation > 0.08)


def _core_window(box: Tile) -> tuple[slice, slice]:
    """The part of the tile that its core covers, in tile px."""
    top, left, bottom, right = box.core
    rows = (max(box.top, math.ceil(top)) if math.isfinite(top) else box.top,
            min(box.bottom, math.ceil(bottom)) if math.isfinite(bottom) else box.bottom)
    cols = (max(box.left, math.ceil(left)) if math.isfinite(left) else box.left,
            min(box.right, math.ceil(right)) if math.isfinite(right) else box.right)
    return slice(rows[0] - box.top, rows[1] - box.top), slice(cols[0] - box.left, cols[1] - box.left)


def _has_tissue(box: Tile, mask: np.ndarray | None, downsample: float, region: Region) -> bool:
    """Whether the overview mask shows tissue under the tile (one overview pixel of margin)."""
    if mask is None:
        return True
    top = int((region.top + box.top) / downsample) - 1
    left = int((region.left + box.left) / downsample) - 1
    bottom = int(math.ceil((region.top + box.bottom) / downsample)) + 1
    right = int(math.ceil((region.left + box.right) / downsample)) + 1
    return bool(mask[max(top, 0):bottom, max(left, 0):right].any())


#: A tile is looked at as an overview level would show it: averaged over blocks of this many px a side.
TILE_CHECK_BLOCK = 8


def _tile_shows_tissue(pixels: np.ndarray, foreground: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether ``foreground`` finds anything on the tile averaged over :data:`TILE_CHECK_BLOCK`-px blocks.

    A slide without a pyramid (a plain tiled TIFF) has no overview to skip glass by, so every tile went through
    the network: a 20,000² px blank tiled TIFF ran for over ten minutes and found nothing. The tile just read is
    checked instead, at the coarseness of an overview (a speck of dust in one pixel does not make a tile tissue;
    tissue wider than a block does).
    """
    import cv2

    rgb = np.ascontiguousarray(np.asarray(pixels)[..., :3])
    height, width = rgb.shape[:2]
    size = (max(1, width // TILE_CHECK_BLOCK), max(1, height // TILE_CHECK_BLOCK))
    return bool(np.asarray(foreground(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)), bool).any())


def _owned(found: TileSegmentation, box: Tile, region: Region) -> tuple[ObjectShapes, list[Any], dict[str, np.ndarray]]:
    """The tile's objects whose centroid its core holds, moved to slide px."""
    shapes = measure_shapes(found.labels)
    centroid = shapes.centroid + np.array([box.top, box.left])
    owned = np.array([box.owns(float(r), float(c)) for r, c in centroid], bool).reshape(-1)
    chosen = shapes.take(owned).shifted(top=box.top + region.top, left=box.left + region.left)
    outlines = label_polygons(found.labels, chosen.ids.tolist(), top=box.top + region.top,
                              left=box.left + region.left)
    extra = {name: np.asarray(values)[chosen.ids - 1] for name, values in found.extra.items()}
    return chosen, outlines, extra


def _overview_mask(slide: Any, foreground: Callable[[np.ndarray], np.ndarray] | None,
                   max_side: int) -> tuple[np.ndarray | None, float]:
    if foreground is None or len(slide.level_shapes) < 2:
        return None, 1.0
    level = slide.overview_level(max_side=max_side)
    if level == 0:
        return None, 1.0
    overview, downsample = slide.overview(max_side=max_side)
    return np.asarray(foreground(overview), bool), downsample


def segment_slide(
    slide: Any,
    segment: Callable[[np.ndarray], TileSegmentation],
    *,
    region: Region | None = None,
    tile: int = 1024,
    overlap: int = 128,
    foreground: Callable[[np.ndarray], np.ndarray] | None = bright_field_foreground,
    overview_side: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> SlideObjects:
    """Segment a slide region tile by tile; every object comes from the one tile whose core holds its centroid.

    Args:
        slide: an open :class:`medlim.core.io.slide.Slide`.
        segment: the room's segmenter, ``np.ndarray[h, w, 3]`` uint8 RGB → :class:`TileSegmentation`.
        region: the part to process (None: the whole slide).
        tile: tile side in px.
        overlap: overlap of neighbouring tiles in px; must exceed the largest object.
        foreground: overview RGB → bool tissue mask; tiles with none are skipped (None: none skipped).
            Used when the slide has a pyramid level no longer than ``overview_side``.
        overview_side: longest side of the overview level read for the mask.
        progress: ``progress(done, total)`` after each tile.

    Raises:
        ParameterError: a region outside the slide, or bad tile / overlap.
    """
    start = time.perf_counter()
    region = region or Region(0, 0, slide.height, slide.width)
    if region.top + region.height > slide.height or region.left + region.width > slide.width:
        raise ParameterError(f"region {region.as_text()} (x,y,w,h) reaches outside the slide "
                             f"({slide.width}×{slide.height} px).")
    if tile < 64:
        raise ParameterError(f"`tile` must be at least 64 px, {tile!r} is given.")
    boxes = overlapping_tiles((region.height, region.width), tile=tile, overlap=overlap)
    mask, downsample = _overview_mask(slide, foreground, overview_side)
    parts: list[ObjectShapes] = []
    outlines: list[Any] = []
    extras: dict[str, list[np.ndarray]] = {}
    tissue_px, skipped = 0.0, 0
    for done, box in enumerate(boxes, start=1):
        pixels = None
        if _has_tissue(box, mask, downsample, region):
            pixels = slide.read_region(region.top + box.top, region.left + box.left, box.bottom - box.top,
                                       box.right - box.left)
            if mask is None and foreground is not None and not _tile_shows_tissue(pixels, foreground):
                pixels = None  # no pyramid to skip it by: the tile itself, seen as an overview would see it
        if pixels is not None:
            found = segment(pixels)
            del pixels
            shapes, tile_outlines, extra = _owned(found, box, region)
            parts.append(shapes)
            outlines.extend(tile_outlines)
            for name, values in extra.items():
                extras.setdefault(name, []).append(values)
            if found.tissue is not None:
                tissue_px += float(np.count_nonzero(found.tissue[_core_window(box)]))
        else:
            skipped += 1
        if progress is not None:
            progress(done, len(boxes))
    shapes = ObjectShapes.concat(parts)
    shapes = ObjectShapes(ids=np.arange(1, len(shapes) + 1, dtype=np.int64), values=shapes.values)
    return SlideObjects(shapes=shapes, outlines=tuple(outlines),
                        extra={name: np.concatenate(values) for name, values in extras.items()},
                        tissue_px=tissue_px, region=region, tiles=len(boxes) - skipped, skipped=skipped,
                        seconds=time.perf_counter() - start)
