"""Watershed baselines of thesis §3.1.3: a strong one and the basic one.

``watershed`` (:func:`watershed_nuclei`, issue 13 "Methods against strong
baselines") splits clumps the way CellProfiler's IdentifyPrimaryObjects does
with its "Shape" declumping: the distance transform of the foreground, smoothed
by a Gaussian whose width is scaled to the expected nucleus size, seeded by its
h-maxima (peaks that stand at least ``h`` above the saddle joining them to a
higher peak) with ``h`` scaled to the same size, flooded by a watershed
restricted to the foreground; objects smaller than a minimum size give
up their marker and are flooded into their neighbours. The expected size is the
mean single-nucleus area measured on the foreground's isolated objects
(:func:`~medlim.microscopy.nuclei.foreground.mean_nucleus_area`, the thesis
method's own estimate), so the settings carry from one magnification to another.

Its three factors were tuned on the validation phantoms the thesis method's
parameters were chosen on (``medlim.phantoms.fluorescence`` seeds 1000–1019,
index 0, 512×688; :data:`~medlim.microscopy.nuclei.evaluation.DEVELOPMENT_SEEDS`)
by ``benchmarks/eval_nuclei_watershed.py``: best mean object F1 over a grid of
h ∈ {0.01, 0.02, 0.03, 0.05, 0.075} × r, σ ∈ {0, 0.05, 0.1} × r and minimum size
∈ {0.1, 0.2, 0.3, 0.5} × the mean area (r = √(area/π)), after a first grid
(h 0.05–0.2 r, σ 0–0.3 r) peaked at its edge; see :data:`WATERSHED_SELECTION`.

``watershed-basic`` (:func:`watershed_basic_nuclei`) is the baseline medlim
shipped before: peaks of the distance map smoothed by 1 px, at least 0.7 r
apart (``peak_local_max``), no minimum object size.

The foreground step of both is the thesis method's (Otsu, holes filled,
regions under a tenth of the mean area removed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import measure
from skimage.feature import peak_local_max
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.foreground import dapi_channel, foreground_mask, mean_nucleus_area, remove_small_regions
from medlim.microscopy.nuclei.pipeline import NucleiResult

__all__ = [
    "WATERSHED_SELECTION",
    "WatershedParams",
    "split_by_watershed",
    "watershed_basic_nuclei",
    "watershed_nuclei",
]

#: How :class:`WatershedParams`' defaults were chosen (validation only; the held-out figures are in the README).
WATERSHED_SELECTION = (
    "h 0.01 r, sigma 0.05 r, minimum size 0.2 x mean area: best mean object F1 (0.814; Table 3.1 Jaccard 0.844) "
    "on validation phantoms (medlim.phantoms.fluorescence seeds 1000-1019, index 0, 512x688) over the grid "
    "h {0.01, 0.02, 0.03, 0.05, 0.075} r x sigma {0, 0.05, 0.1} r x minimum size {0.1, 0.2, 0.3, 0.5} area "
    "(benchmarks/eval_nuclei_watershed.py; minimum size 0.1 ties with 0.2 to 3 decimals in both scores, 0.3 has "
    "Jaccard 0.839; next best h 0.02 r, sigma 0: 0.810). A first grid, h {0.05..0.2} r x sigma {0..0.3} r, peaked "
    "at its edge (h 0.05 r, sigma 0: 0.788). Same images: thesis method 0.896, watershed-basic 0.744"
)


@dataclass(frozen=True)
class WatershedParams:
    """Settings of the strong watershed, each scaled to the expected nucleus size.

    Attributes:
        threshold: foreground threshold (as :func:`foreground_mask`; the thesis method's Otsu).
        h_factor: h of the h-maxima markers, in units of the expected radius r (px).
        sigma_factor: Gaussian sigma of the distance map, in units of r (0: no smoothing).
        min_size_factor: objects below this fraction of the expected area are merged
            into their neighbours (their marker is dropped).
    """

    threshold: str | float = "otsu"
    h_factor: float = 0.01
    sigma_factor: float = 0.05
    min_size_factor: float = 0.2

    def __post_init__(self) -> None:
        for name in ("h_factor", "sigma_factor", "min_size_factor"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 10.0:
                raise ParameterError(f"`{name}` must be a number in [0, 10), {value!r} is given.")


def _empty(dapi: np.ndarray, mask: np.ndarray, start: float) -> NucleiResult:
    return NucleiResult(np.zeros(dapi.shape, np.int32), mask, (), 0.0, 1.0, 0, time.perf_counter() - start)


def _flood(distance: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Watershed of ``−distance`` from ``markers`` inside ``mask``; a region without a marker keeps its own label."""
    labels = watershed(-distance, markers, mask=mask).astype(np.int32)
    missing = mask & (labels == 0)
    if missing.any():
        extra = measure.label(missing, connectivity=2)
        labels[missing] = extra[missing] + labels.max()
    return labels


def _h_maxima(surface: np.ndarray, h: float) -> np.ndarray:
    """The h-maxima: regional maxima of the h-maximum transform R(f − h) (reconstruction by dilation under f).

    Soille's definition (Morphological Image Analysis, 2003, §6.3.4).
    ``skimage.morphology.h_maxima`` marks instead the pixels at least ``h`` above
    R(f − h) — the tops of the domes — which keeps two equal peaks apart however
    shallow the saddle between them (two markers in one elongated nucleus); the
    plateau of R(f − h) over such a pair is one regional maximum, one marker.
    """
    surface = surface.astype(np.float64, copy=False)
    domes = reconstruction(surface - h, surface, method="dilation")
    return local_maxima(domes, connectivity=2, allow_borders=True).astype(bool)


def split_by_watershed(
    mask: np.ndarray, *, mean_area: float, params: WatershedParams, distance: np.ndarray | None = None
) -> np.ndarray:
    """Instance labels of a foreground mask: h-maxima markers on the smoothed distance map, then a watershed.

    Args:
        mask: ``np.ndarray[H, W]`` bool foreground (small regions already removed).
        mean_area: expected nucleus area in px (> 0).
        params: the factors.
        distance: the mask's Euclidean distance transform, when already computed.

    Returns:
        ``np.ndarray[H, W]`` int32 labels, 0 = background.
    """
    radius = float(np.sqrt(mean_area / np.pi))
    distance = ndimage.distance_transform_edt(mask) if distance is None else distance
    if params.sigma_factor > 0:
        distance = ndimage.gaussian_filter(distance, params.sigma_factor * radius)
    markers = measure.label(_h_maxima(distance, max(params.h_factor * radius, 1e-3)) & mask,
                            connectivity=2).astype(np.int32)
    labels = _flood(distance, markers, mask)
    sizes = np.bincount(labels.ravel())
    small = np.nonzero(sizes < params.min_size_factor * mean_area)[0]
    small = small[small > 0]
    if len(small) and markers.max() > 0:
        # a fragment gives up its marker and is flooded into its neighbours
        markers[np.isin(labels, small) & (markers > 0)] = 0
        markers = measure.label(markers > 0, connectivity=2).astype(np.int32)
        labels = _flood(distance, markers, mask)
    return labels


def watershed_nuclei(image: np.ndarray, *, params: WatershedParams | None = None) -> NucleiResult:
    """The strong watershed baseline (CellProfiler-style declumping, size-aware settings).

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB (DAPI in blue) or ``[H, W]`` grey.
        params: settings (default: the tuned :class:`WatershedParams`).

    Returns:
        :class:`NucleiResult` (no cuts; ``n_clumps`` = foreground regions split into several nuclei).
    """
    start = time.perf_counter()
    params = WatershedParams() if params is None else params
    dapi = dapi_channel(image)
    mask = foreground_mask(dapi, threshold=params.threshold)
    mean_area = mean_nucleus_area(mask)
    if mean_area <= 0:
        return _empty(dapi, mask, start)
    mask = remove_small_regions(mask, min_area=0.1 * mean_area)
    labels = split_by_watershed(mask, mean_area=mean_area, params=params)
    regions = measure.label(mask, connectivity=2)
    pairs = np.unique(np.stack([regions[mask], labels[mask]]), axis=1)
    split = int(np.count_nonzero(np.bincount(pairs[0]) > 1))
    return NucleiResult(labels=labels, foreground=mask, cuts=(), mean_area=mean_area, scale=1.0,
                        n_clumps=split, seconds=time.perf_counter() - start)


def watershed_basic_nuclei(
    image: np.ndarray,
    *,
    threshold: str | float = "otsu",
    min_distance_factor: float = 0.7,
    smoothing: float = 1.0,
) -> NucleiResult:
    """The basic marker-controlled watershed (``--method watershed-basic``, medlim's earlier baseline).

    Markers are the peaks of the distance map smoothed by ``smoothing`` px, at
    least ``min_distance_factor`` × the mean nucleus radius apart.

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB (DAPI in blue) or ``[H, W]`` grey.
        threshold: foreground threshold (as :func:`foreground_mask`).
        min_distance_factor: marker spacing in units of the mean nucleus radius.
        smoothing: Gaussian sigma (px) applied to the distance map.

    Returns:
        :class:`NucleiResult` (no cuts).
    """
    start = time.perf_counter()
    dapi = dapi_channel(image)
    mask = foreground_mask(dapi, threshold=threshold)
    mean_area = mean_nucleus_area(mask)
    if mean_area <= 0:
        return _empty(dapi, mask, start)
    mask = remove_small_regions(mask, min_area=0.1 * mean_area)
    radius = float(np.sqrt(mean_area / np.pi))
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), smoothing)
    regions = measure.label(mask, connectivity=2)
    peaks = peak_local_max(
        distance, min_distance=max(1, int(min_distance_factor * radius)), labels=regions, exclude_border=False
    )
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = _flood(distance, markers, mask)
    return NucleiResult(
        labels=labels, foreground=mask, cuts=(), mean_area=mean_area, scale=1.0,
        n_clumps=0, seconds=time.perf_counter() - start,
    )
