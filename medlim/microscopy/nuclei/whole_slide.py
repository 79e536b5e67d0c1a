"""Clumped nuclei on whole slides and large fields, tile by tile (thesis §3.1, issue 16 "Pathology").

:func:`segment_nuclei_slide` runs the thesis method (or the watershed
baseline) on overlapping tiles of a :class:`medlim.core.io.slide.Slide`
(:func:`medlim.microscopy.slides.segment_slide`): a nucleus is kept from the
tile whose core holds its centroid, so nuclei on tile seams count once with
their whole outline (the default 128 px overlap is about three nucleus
diameters at the thesis magnification). Tiles with no DAPI signal on the
overview level are skipped. The result keeps the per-object table and the
outlines, never a slide-sized label image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ParameterError
from medlim.microscopy.objects import NO_SPACING, MicronSpacing, ObjectTable

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.io.slide import Slide
    from medlim.microscopy.nuclei.pipeline import NucleiParams
    from medlim.microscopy.qupath import ObjectExports
    from medlim.microscopy.slides import Region, TileSegmentation

__all__ = ["NucleiSlideResult", "fluorescence_foreground", "segment_nuclei_slide"]


@dataclass(frozen=True)
class NucleiSlideResult:
    """The nuclei of a slide region.

    Attributes:
        objects: the per-object table (slide px; µm when the pixel size is known).
        outlines: one shapely outline per row, slide px.
        method: ``"thesis"``, ``"watershed"`` or ``"watershed-basic"``.
        tiles, skipped: tiles segmented and tiles skipped for having no signal.
        seconds: wall time.
    """

    objects: ObjectTable
    outlines: tuple[Any, ...]
    method: str
    tiles: int
    skipped: int
    seconds: float

    @property
    def count(self) -> int:
        return len(self.objects)

    def exports(self) -> ObjectExports:
        """The per-nucleus CSV and QuPath GeoJSON."""
        from medlim.microscopy.nuclei.measure import nuclei_exports

        return nuclei_exports(self.outlines, self.objects)

    def to_json(self) -> dict[str, object]:
        """The readout of the region as the CLI prints it."""
        area = self.objects.values("area_px2") if self.count else np.zeros(0)
        return {"count": self.count, "from_split_clumps": sum(bool(r["from_split_clump"]) for r in self.objects.rows),
                "mean_area_px2": round(float(area.mean()), 1) if self.count else 0.0, "tiles": self.tiles,
                "skipped_tiles": self.skipped, "seconds": round(self.seconds, 3), **self.objects.spacing.to_json()}


def fluorescence_foreground(rgb: np.ndarray) -> np.ndarray:
    """Where a fluorescence overview shows DAPI: the blue channel above half its Otsu threshold (bool[h, w])."""
    from skimage.filters import threshold_otsu

    from medlim.microscopy.nuclei.foreground import dapi_channel

    dapi = dapi_channel(np.asarray(rgb))
    if float(dapi.max()) - float(dapi.min()) < 1e-3:
        return np.zeros(dapi.shape, bool)
    return dapi > max(0.5 * float(threshold_otsu(dapi)), 0.02)


def _segmenter(method: str, params: NucleiParams | None) -> Callable[[np.ndarray], TileSegmentation]:
    from medlim.microscopy.nuclei import watershed
    from medlim.microscopy.nuclei.measure import split_clump_labels
    from medlim.microscopy.nuclei.pipeline import NucleiParams, segment_nuclei
    from medlim.microscopy.slides import TileSegmentation

    baselines = {"watershed": watershed.watershed_nuclei,
                 "watershed-basic": watershed.watershed_basic_nuclei}

    def segment(pixels: np.ndarray) -> TileSegmentation:
        image = pixels.astype(np.float32) / 255.0
        if method == "thesis":
            labels = segment_nuclei(image, params=params or NucleiParams()).labels
        else:
            labels = baselines[method](image).labels
        labels = _consecutive(labels)
        split = split_clump_labels(labels)
        flags = np.array([k in split for k in range(1, int(labels.max(initial=0)) + 1)], bool)
        return TileSegmentation(labels=labels, extra={"from_split_clump": flags})

    return segment


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..n in order (the slide tiler expects every label present)."""
    present = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max(initial=0)) + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lookup[labels]


def segment_nuclei_slide(
    slide: Slide,
    *,
    method: str = "thesis",
    params: NucleiParams | None = None,
    region: Region | None = None,
    tile: int = 1024,
    overlap: int = 128,
    spacing: MicronSpacing = NO_SPACING,
    progress: Callable[[int, int], None] | None = None,
) -> NucleiSlideResult:
    """Segment the nuclei of a slide region tile by tile, nuclei on tile seams kept once.

    Args:
        slide: an open slide (RGB with DAPI in blue, or grey).
        method: ``"thesis"``, ``"watershed"`` or ``"watershed-basic"``.
        params: the thesis method's parameters (thesis defaults when None).
        region: the part to process (None: the whole slide, tiles without signal skipped).
        tile, overlap: tile side and overlap in px; the overlap must exceed the largest nucleus.
        spacing: the slide's pixel size.
        progress: ``progress(done, total)`` per tile.
    """
    from medlim.microscopy.nuclei.measure import nucleus_object_table
    from medlim.microscopy.slides import segment_slide

    if method not in ("thesis", "watershed", "watershed-basic"):
        raise ParameterError(f"method must be 'thesis', 'watershed' or 'watershed-basic', {method!r} is given.")
    found = segment_slide(slide, _segmenter(method, params), region=region, tile=tile, overlap=overlap,
                          foreground=fluorescence_foreground, progress=progress)
    flags = np.asarray(found.extra.get("from_split_clump", np.zeros(0, bool)), bool)
    table = nucleus_object_table(found.shapes, flags, spacing=spacing)
    return NucleiSlideResult(objects=table, outlines=found.outlines, method=method, tiles=found.tiles,
                             skipped=found.skipped, seconds=found.seconds)
