"""Baseline of thesis §3.1.3: marker-controlled watershed.

Markers are the peaks of the (smoothed) Euclidean distance transform of the
foreground, at least ``min_distance_factor`` × the mean nucleus radius apart;
the watershed of the negated distance map, restricted to the foreground, gives
the instances. The foreground step is the same as the thesis method's.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage
from skimage import measure
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from medlim.microscopy.nuclei.foreground import dapi_channel, foreground_mask, mean_nucleus_area, remove_small_regions
from medlim.microscopy.nuclei.pipeline import NucleiResult

__all__ = ["watershed_nuclei"]


def watershed_nuclei(
    image: np.ndarray,
    *,
    threshold: str | float = "otsu",
    min_distance_factor: float = 0.7,
    smoothing: float = 1.0,
) -> NucleiResult:
    """Marker-controlled watershed on the distance transform.

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
        return NucleiResult(np.zeros(dapi.shape, np.int32), mask, (), 0.0, 1.0, 0, time.perf_counter() - start)
    mask = remove_small_regions(mask, min_area=0.1 * mean_area)
    radius = float(np.sqrt(mean_area / np.pi))
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), smoothing)
    regions = measure.label(mask, connectivity=2)
    peaks = peak_local_max(
        distance, min_distance=max(1, int(min_distance_factor * radius)), labels=regions, exclude_border=False
    )
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=mask).astype(np.int32)
    # A region that received no marker keeps its own label.
    missing = mask & (labels == 0)
    if missing.any():
        extra = measure.label(missing, connectivity=2)
        labels[missing] = extra[missing] + labels.max()
    return NucleiResult(
        labels=labels, foreground=mask, cuts=(), mean_area=mean_area, scale=1.0,
        n_clumps=0, seconds=time.perf_counter() - start,
    )
