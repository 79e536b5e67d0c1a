"""Step 1 of the clumped-nuclei method (thesis §3.1.2): foreground and clumps.

The DAPI stain binds DNA, so nuclei are found in the blue channel by a global
threshold (thesis: "global adaptive threshold" → Otsu here by default; the
authors' code uses a fixed 0.25 of the intensity range, available as
``threshold=0.25``). Holes are filled and regions smaller than a tenth of the
mean single-nucleus area are removed. The mean area is measured on isolated
nuclei, and a region is a clump candidate when its area is at least 1.5× that
mean or its solidity is low.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology

from medlim.errors import ParameterError

__all__ = [
    "dapi_warning",
    "dapi_channel",
    "foreground_mask",
    "mean_nucleus_area",
    "remove_small_regions",
    "clump_candidates",
]


def dapi_channel(image: np.ndarray) -> np.ndarray:
    """The DAPI intensity, scaled to [0, 1].

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB (DAPI in blue, index 2) or
            ``np.ndarray[H, W]`` grey; uint8, uint16 or float.

    Returns:
        ``np.ndarray[H, W]`` float32; integer inputs divided by their dtype
        maximum, floats clipped to [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        channel = image[:, :, 2]
    elif image.ndim == 2:
        channel = image
    else:
        raise ParameterError(f"expected an H×W grey or H×W×3 RGB image, got shape {image.shape}")
    if np.issubdtype(channel.dtype, np.integer):
        return (channel.astype(np.float32) / float(np.iinfo(channel.dtype).max)).astype(np.float32)
    return np.clip(channel.astype(np.float32), 0.0, 1.0)


def foreground_mask(dapi: np.ndarray, *, threshold: str | float = "otsu") -> np.ndarray:
    """Threshold the DAPI channel and fill holes.

    Args:
        dapi: ``np.ndarray[H, W]`` float in [0, 1].
        threshold: ``"otsu"`` (thesis: global adaptive threshold) or a fraction
            in (0, 1) of the intensity range [min, max] (authors' code: 0.25).

    Returns:
        ``np.ndarray[H, W]`` bool, holes filled.
    """
    dapi = np.asarray(dapi, dtype=np.float32)
    low, high = float(dapi.min()), float(dapi.max())
    if high - low < 1e-6:
        return np.zeros(dapi.shape, bool)
    if threshold == "otsu":
        level = float(filters.threshold_otsu(dapi))
    elif isinstance(threshold, (int, float)) and 0.0 < float(threshold) < 1.0:
        level = low + float(threshold) * (high - low)
    else:
        raise ParameterError(f"`threshold` must be 'otsu' or a fraction in (0, 1), got {threshold!r}")
    return ndimage.binary_fill_holes(dapi > level)


def mean_nucleus_area(mask: np.ndarray, *, min_solidity: float = 0.9, min_area: int = 30) -> float:
    """Mean area of single nuclei, estimated from isolated (convex) regions.

    Regions of at least ``min_area`` px with solidity ≥ ``min_solidity`` are
    taken as candidate single nuclei; Otsu's threshold on their areas separates
    single nuclei from the few convex pairs, and the mean area below it is
    returned.

    Returns:
        Mean single-nucleus area in px (0.0 when the mask has no region).
    """
    regions = [r for r in measure.regionprops(measure.label(mask, connectivity=2)) if r.area >= min_area]
    if not regions:
        return 0.0
    singles = np.array([r.area for r in regions if r.solidity >= min_solidity], dtype=np.float64)
    if len(singles) == 0:
        singles = np.array([r.area for r in regions], dtype=np.float64)
    if len(singles) >= 3 and singles.max() > singles.min():
        cut = filters.threshold_otsu(singles)
        below = singles[singles <= cut]
        # Otsu splits a unimodal set too; keep the split only when it is clear.
        if len(below) >= 0.6 * len(singles):
            singles = below
    return float(singles.mean())


def remove_small_regions(mask: np.ndarray, *, min_area: float) -> np.ndarray:
    """Drop connected regions smaller than ``min_area`` px (thesis: mean area / 10)."""
    return morphology.remove_small_objects(np.asarray(mask, bool), max_size=max(0, int(min_area) - 1), connectivity=2)


def clump_candidates(
    mask: np.ndarray,
    *,
    mean_area: float,
    area_factor: float = 1.5,
    max_solidity: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Label the foreground and flag clump candidates.

    A region is a candidate when ``area ≥ area_factor · mean_area`` (thesis 1.5)
    or ``solidity < max_solidity`` (a concave outline; the solidity test of
    thesis §3.2).

    Returns:
        ``(labels, is_clump)``: ``labels`` ``np.ndarray[H, W]`` int32 regions;
        ``is_clump`` ``np.ndarray[n + 1]`` bool indexed by label.
    """
    labels = measure.label(mask, connectivity=2).astype(np.int32)
    is_clump = np.zeros(int(labels.max()) + 1, bool)
    for region in measure.regionprops(labels):
        if region.area >= area_factor * mean_area or region.solidity < max_solidity:
            is_clump[region.label] = True
    return labels, is_clump


#: Share of the nuclei's pixels at the brightest value above which the image is called saturated (the
#: fluorescence phantoms: 0–7 %; one exposed 4× too long, found in the session-21 probe: 47 %, areas +22 %).
SATURATED_SHARE = 0.25


def dapi_warning(pixels: np.ndarray) -> str | None:
    """A plain-language warning when the image is not usable DAPI as it is.

    Args:
        pixels: ``np.ndarray[H, W]`` grey or ``[H, W, 3|4]`` colour, float in [0, 1].

    Returns:
        The warning, or None:

        * a colour image whose blue channel is much dimmer than the red or green one probably holds DAPI
          elsewhere (grey images are used as the DAPI channel as they are);
        * an image of one value everywhere (all black, all white) holds no nucleus;
        * when at least :data:`SATURATED_SHARE` of the nuclei's pixels sit at the brightest value, touching
          nuclei merge and areas read larger.
    """
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        spread = [float(np.percentile(pixels[..., c], 99.5) - np.percentile(pixels[..., c], 5)) for c in range(3)]
        if spread[2] < 0.05 and max(spread[:2]) > 4 * max(spread[2], 1e-3):
            channel = "red" if spread[0] >= spread[1] else "green"
            return (
                f"The blue channel is nearly empty while the {channel} one has signal: medlim reads DAPI "
                "from the blue channel (the counts here are of the blue channel). Export the image with DAPI in blue."
            )
    dapi = dapi_channel(pixels)
    if float(dapi.max()) - float(dapi.min()) < 1.0 / 255.0:
        return "The image holds one value everywhere (empty or fully saturated): there is no nucleus to find."
    nuclei = foreground_mask(dapi)
    share = float((dapi[nuclei] >= float(dapi.max()) - 1.0 / 255.0).mean()) if nuclei.any() else 0.0
    if float(dapi.max()) >= 0.99 and share >= SATURATED_SHARE:
        return (f"{share:.0%} of the nuclei's pixels are at the brightest value (saturated): touching nuclei merge "
                "and areas read larger. Image with a shorter exposure or lower gain.")
    return None
