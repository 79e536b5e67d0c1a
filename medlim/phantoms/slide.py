"""Synthetic whole-slide images with droplets on tile seams, written tile by tile (issue 16, "Pathology").

A :class:`SeamSlide` is a bright-field slide described, not stored: near-white
glass, pink tissue patches, and white round droplets whose centres sit on
chosen seam lines (where overlapping tiles meet, where their cores meet), so
a tiled analysis that counts a droplet twice or cuts it in half shows. Any
rectangle renders on demand (:meth:`SeamSlide.render`), which lets
:func:`write_tiled_tiff` write a pyramidal tiled TIFF of 20,000 × 20,000 px or
more tile by tile, in a few MiB of memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlim.errors import ParameterError

__all__ = ["GLASS_RGB", "TISSUE_RGB", "DROPLET_RGB", "SeamSlide", "seam_droplet_slide", "write_tiled_tiff"]

#: Colours of the synthetic slide (uint8 RGB).
GLASS_RGB = (236, 236, 236)
TISSUE_RGB = (205, 120, 170)
DROPLET_RGB = (252, 252, 252)


@dataclass(frozen=True)
class SeamSlide:
    """A synthetic slide: tissue rectangles and droplet discs on glass.

    Attributes:
        height, width: level-0 size in px.
        tissue: ``np.ndarray[m, 4]`` int64 boxes (top, left, bottom, right), bottom/right exclusive.
        centres: ``np.ndarray[n, 2]`` float64 droplet centres (row, col) px.
        radius: droplet radius in px (a pixel is inside when its centre is within it).
    """

    height: int
    width: int
    tissue: np.ndarray
    centres: np.ndarray
    radius: float

    def render(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """The rectangle's pixels, ``np.ndarray[height, width, 3]`` uint8 RGB."""
        out = np.empty((height, width, 3), np.uint8)
        out[...] = GLASS_RGB
        for box_top, box_left, box_bottom, box_right in self.tissue.tolist():
            rows = slice(max(box_top - top, 0), max(min(box_bottom - top, height), 0))
            cols = slice(max(box_left - left, 0), max(min(box_right - left, width), 0))
            out[rows, cols] = TISSUE_RGB
        reach = int(math.ceil(self.radius)) + 1
        for row, col in self.centres.tolist():
            r0, r1 = max(int(row) - reach - top, 0), min(int(row) + reach + 1 - top, height)
            c0, c1 = max(int(col) - reach - left, 0), min(int(col) + reach + 1 - left, width)
            if r0 >= r1 or c0 >= c1:
                continue
            yy, xx = np.mgrid[r0:r1, c0:c1]
            inside = (yy + top - row) ** 2 + (xx + left - col) ** 2 <= self.radius**2
            out[r0:r1, c0:c1][inside] = DROPLET_RGB
        return out

    def droplet_area(self) -> int:
        """Pixels of one droplet (all have the same radius; centres sit on whole or half pixels alike)."""
        reach = int(math.ceil(self.radius)) + 1
        yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
        frac = self.centres[0] - np.floor(self.centres[0]) if len(self.centres) else np.zeros(2)
        return int(((yy - frac[0]) ** 2 + (xx - frac[1]) ** 2 <= self.radius**2).sum())


def seam_droplet_slide(
    shape: tuple[int, int],
    *,
    seams: Sequence[int],
    radius: float = 14.0,
    patch: int = 160,
    corner: tuple[int, int] = (0, 0),
) -> SeamSlide:
    """Droplets on every crossing of the seam lines (rows and columns alike), each in its own tissue patch.

    Args:
        shape: ``(height, width)`` of the slide.
        seams: positions (px) of seam lines, used along both axes (offset by ``corner``).
        radius: droplet radius in px.
        patch: side of the square tissue patch around each droplet.
        corner: where the seam grid starts (row, col), e.g. a region's corner.

    Raises:
        ParameterError: a droplet or its patch would leave the slide.
    """
    height, width = int(shape[0]), int(shape[1])
    centres = np.array([(corner[0] + r + 0.5, corner[1] + c + 0.5) for r in seams for c in seams], np.float64)
    half = patch // 2
    boxes = np.array([(int(r) - half, int(c) - half, int(r) + half, int(c) + half) for r, c in centres], np.int64)
    if len(boxes) and (boxes[:, :2].min() < 0 or boxes[:, 2].max() > height or boxes[:, 3].max() > width):
        raise ParameterError(f"droplet patches of {patch} px at seams {list(seams)} leave a {height}×{width} slide.")
    return SeamSlide(height=height, width=width, tissue=boxes, centres=centres, radius=float(radius))


def _level_tiles(render: Callable[[int, int, int, int], np.ndarray], shape: tuple[int, int], *, tile: int,
                 factor: int) -> Iterator[np.ndarray]:
    """Tiles of the level ``factor`` times smaller, row by row, each rendered from level 0 and decimated."""
    height, width = -(-shape[0] // factor), -(-shape[1] // factor)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            rows = min(tile, height - top) * factor
            cols = min(tile, width - left) * factor
            full = render(top * factor, left * factor, min(rows, shape[0] - top * factor),
                          min(cols, shape[1] - left * factor))
            small = full[::factor, ::factor]
            out = np.empty((tile, tile, 3), np.uint8)
            out[...] = GLASS_RGB
            out[: small.shape[0], : small.shape[1]] = small
            yield out


def write_tiled_tiff(
    path: Path,
    render: Callable[[int, int, int, int], np.ndarray],
    shape: tuple[int, int],
    *,
    tile: int = 256,
    levels: int = 2,
    compression: str = "deflate",
    spacing_um: float | None = None,
) -> None:
    """Write a pyramidal tiled RGB TIFF tile by tile (level 0 plus ``levels`` halvings as SubIFDs).

    Args:
        path: the file to write.
        render: ``render(top, left, height, width) -> uint8[h, w, 3]`` level-0 pixels of any rectangle.
        shape: ``(height, width)`` of level 0.
        tile: tile side (a multiple of 16).
        levels: sub-resolution levels, each half the previous.
        compression: ``"deflate"``, ``"jpeg"``, ``"lzw"`` or ``"none"`` (imagecodecs).
        spacing_um: level-0 pixel size written as XResolution/YResolution in centimetres.
    """
    import tifffile

    options = {"tile": (tile, tile), "photometric": "rgb", "compression": None if compression == "none" else compression}
    resolution = {} if spacing_um is None else {"resolution": (1e4 / spacing_um, 1e4 / spacing_um),
                                                "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=shape[0] * shape[1] * 3 > 2**31) as tiff:
        tiff.write(_level_tiles(render, shape, tile=tile, factor=1), shape=(*shape, 3), dtype=np.uint8,
                   subifds=levels, **options, **resolution)
        for level in range(1, levels + 1):
            factor = 2**level
            small = (-(-shape[0] // factor), -(-shape[1] // factor), 3)
            tiff.write(_level_tiles(render, shape, tile=tile, factor=factor), shape=small, dtype=np.uint8,
                       subfiletype=1, **options)
