"""Weak droplet labels: the clumped-nuclei method adapted to bright field, then screening (thesis §3.2.2).

Thesis §3.2.2, "Training Data Preparation": the colour image is turned grey
and binarised by a normalised threshold, non-tissue background is excluded,
connected regions with solidity > 0.95 are kept whole (not overlapped), and
the others are split with the nuclei method of §3.1 (curvature voting,
ellipse-fit connections, dividing curves along intensity valleys). Droplets
are bright and the membranes between them dark, so the grey image plays the
role of the DAPI channel.

Non-tissue background (glass, vessel lumina) is white too. A droplet is at
most ``max_droplet_radius`` px in radius, so a white region whose largest
inscribed disc is wider than that is background (a clump of droplets is not:
its inscribed disc is one droplet's). This replaces the tissue detection the
thesis does not spell out.

The thesis then has a pathologist delete the masks that do not match the
histology. Here an automatic screening rule stands in (see
:class:`ScreeningRule`): a mask is kept only when it is droplet-like — area
within bounds, solidity ≥ 0.90 (under-split clumps are concave),
eccentricity ≤ 0.90 (sinusoids and slivers are elongated), extent
(area / bounding box) ≥ 0.55, and contrast: the mask's mean normalised grey
exceeds that of a thin ring just outside it by ≥ 0.12 (a droplet is ringed by
its darker membrane and tissue; specks cut out of pale, thinly cut tissue by
the threshold are not). Rejected masks are left out of the training targets,
as the deleted ones were in the thesis, and the training crops avoid the
areas they cover (:mod:`.train`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage import filters, measure, morphology
from skimage.segmentation import expand_labels

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.foreground import mean_nucleus_area
from medlim.microscopy.nuclei.pipeline import REFERENCE_NUCLEUS_AREA, NucleiParams, split_clumps

__all__ = [
    "WeakLabelParams",
    "ScreeningRule",
    "WeakLabels",
    "grey_image",
    "white_mask",
    "background_mask",
    "weak_labels",
    "screen_masks",
]


@dataclass(frozen=True)
class WeakLabelParams:
    """Parameters of the bright-field adaptation.

    Attributes:
        threshold: a fraction in (0, 1) of the grey image's [1st, 99.5th]
            percentile range (project default 0.78: droplets are near white,
            tissue texture reaches ~0.7 of the range), or ``"otsu"``.
        max_solidity: regions with solidity above this are single droplets
            (thesis 0.95).
        max_droplet_radius: px; white regions with a wider inscribed disc are
            non-tissue background.
        min_area: px; smaller white specks are dropped.
        grow: px each final mask is grown by (into background only): the
            threshold stops inside the droplet's membrane rim, which belongs
            to the droplet (project choice 1 px; 0 is the bare thesis recipe).
        nuclei: parameters handed to the nuclei method's clump splitting
            (:func:`medlim.microscopy.nuclei.pipeline.split_clumps`); its length
            scale is set from the mean droplet area as in the nuclei pipeline.
    """

    threshold: str | float = 0.78
    max_solidity: float = 0.95
    max_droplet_radius: float = 45.0
    min_area: int = 12
    grow: int = 1
    nuclei: NucleiParams = field(default_factory=lambda: NucleiParams(min_part_fraction=0.2, area_factor=1.5))

    def __post_init__(self) -> None:
        if self.threshold != "otsu" and not (isinstance(self.threshold, (int, float)) and 0 < self.threshold < 1):
            raise ParameterError(f"`threshold` must be 'otsu' or a fraction in (0, 1), {self.threshold!r} is given.")
        if not 0 < self.max_solidity <= 1:
            raise ParameterError(f"`max_solidity` must be in (0, 1], {self.max_solidity} is given.")
        if not self.max_droplet_radius > 0:
            raise ParameterError(f"`max_droplet_radius` must be positive, {self.max_droplet_radius} is given.")


@dataclass(frozen=True)
class ScreeningRule:
    """The automatic stand-in for the pathologist's review of weak masks.

    A mask is kept when ``min_area ≤ area ≤ max_area``, solidity ≥
    ``min_solidity``, eccentricity ≤ ``max_eccentricity`` and extent ≥
    ``min_extent``, its mean normalised grey exceeds that of the ring
    ``ring`` px wide just outside it by at least ``min_contrast`` (checked
    when the normalised image is given), and it does not touch the
    tissue/background border.
    """

    min_area: float = 20.0
    max_area: float = float(np.pi * 45.0**2)
    min_solidity: float = 0.90
    max_eccentricity: float = 0.90
    min_extent: float = 0.55
    min_contrast: float = 0.12
    ring: int = 3


@dataclass(frozen=True)
class WeakLabels:
    """Weak labels of one image.

    Attributes:
        labels: ``np.ndarray[H, W]`` int32, every mask of the method (before screening).
        kept: ``np.ndarray[n + 1]`` bool indexed by label, True where the
            screening rule keeps the mask (index 0 False).
        tissue: ``np.ndarray[H, W]`` bool, tissue (droplets included).
        mean_area: mean single-droplet area in px² used for the length scale.
    """

    labels: np.ndarray
    kept: np.ndarray
    tissue: np.ndarray
    mean_area: float

    @property
    def screened(self) -> np.ndarray:
        """``np.ndarray[H, W]`` int32 labels of the kept masks only, renumbered 1..k."""
        lookup = np.zeros(len(self.kept), np.int32)
        lookup[self.kept] = np.arange(1, int(self.kept.sum()) + 1, dtype=np.int32)
        return lookup[self.labels]


def grey_image(image: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image.

    Args:
        image: ``np.ndarray[H, W, 3]`` uint8 or float in [0, 1]; or ``[H, W]`` grey.

    Returns:
        ``np.ndarray[H, W]`` float32 in [0, 1].
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.clip(0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2], 0, 1)
    if image.ndim == 2:
        return np.clip(image, 0, 1)
    raise ParameterError(f"expected an H×W×3 RGB or H×W grey image, got shape {image.shape}")


def white_mask(grey: np.ndarray, *, threshold: str | float = 0.78) -> tuple[np.ndarray, np.ndarray]:
    """Binarise the grey image by a normalised threshold.

    Returns:
        ``(mask, normalised)``: bright pixels (bool ``[H, W]``) and the grey
        image stretched so its 1st/99.5th percentiles map to 0/1 (float32).
    """
    low, high = np.percentile(grey, [1, 99.5])
    if high - low < 1e-3:
        return np.zeros(grey.shape, bool), np.zeros(grey.shape, np.float32)
    normalised = np.clip((grey - low) / (high - low), 0, 1).astype(np.float32)
    level = float(filters.threshold_otsu(normalised)) if threshold == "otsu" else float(threshold)
    return normalised > level, normalised


def background_mask(white: np.ndarray, *, max_droplet_radius: float = 45.0) -> np.ndarray:
    """White regions too wide to be a droplet (glass, vessel lumina).

    Args:
        white: ``np.ndarray[H, W]`` bool bright pixels.
        max_droplet_radius: px.

    Returns:
        ``np.ndarray[H, W]`` bool: the whole connected white regions whose
        largest inscribed disc has a radius above ``max_droplet_radius``.
    """
    regions = measure.label(white, connectivity=1)
    if regions.max() == 0:
        return np.zeros(white.shape, bool)
    depth = ndimage.distance_transform_edt(white)
    widest = ndimage.maximum(depth, regions, index=np.arange(1, regions.max() + 1))
    wide = np.zeros(regions.max() + 1, bool)
    wide[1:] = np.asarray(widest) > max_droplet_radius
    return wide[regions]


def screen_masks(labels: np.ndarray, tissue: np.ndarray, *, rule: ScreeningRule = ScreeningRule(),
                 normalised: np.ndarray | None = None) -> np.ndarray:
    """Apply the screening rule to every mask.

    Args:
        labels: ``np.ndarray[H, W]`` int instance labels.
        tissue: ``np.ndarray[H, W]`` bool tissue mask.
        rule: the screening bounds.
        normalised: ``np.ndarray[H, W]`` float grey image in [0, 1] for the
            contrast check (None skips it).

    Returns:
        ``np.ndarray[labels.max() + 1]`` bool, True for kept masks.
    """
    labels = np.asarray(labels)
    kept = np.zeros(int(labels.max()) + 1, bool)
    edge = ndimage.binary_dilation(~np.asarray(tissue, bool), iterations=2)
    touches = np.zeros_like(kept)
    touches[np.unique(labels[edge])] = True
    contrast = np.full(kept.shape, np.inf)
    if normalised is not None and labels.max() > 0:
        index = np.arange(1, int(labels.max()) + 1)
        ring_labels = np.where(labels > 0, 0, expand_labels(labels, distance=rule.ring)) * np.asarray(tissue, bool)
        with np.errstate(invalid="ignore", divide="ignore"):  # a mask without a ring gives NaN: not judged
            inside = np.asarray(ndimage.mean(normalised, labels, index=index))
            around = np.asarray(ndimage.mean(normalised, ring_labels, index=index))
        contrast[1:] = np.where(np.isfinite(around), inside - around, np.inf)
    for region in measure.regionprops(labels):
        ok = (
            rule.min_area <= region.area <= rule.max_area
            and region.solidity >= rule.min_solidity
            and region.eccentricity <= rule.max_eccentricity
            and region.extent >= rule.min_extent
            and contrast[region.label] >= rule.min_contrast
            and not touches[region.label]
        )
        kept[region.label] = ok
    kept[0] = False
    return kept


def _clump_flags(regions: np.ndarray, *, max_solidity: float) -> np.ndarray:
    """``np.ndarray[n + 1]`` bool indexed by region label: True where the solidity is not above ``max_solidity``
    (thesis §3.2.2: those are split, the others kept whole)."""
    is_clump = np.zeros(int(regions.max()) + 1, bool)
    for k, window in enumerate(ndimage.find_objects(regions), start=1):
        if window is None:
            continue
        props = measure.regionprops((regions[window] == k).astype(np.uint8))[0]
        is_clump[k] = not props.solidity > max_solidity
    return is_clump


def weak_labels(
    image: np.ndarray,
    *,
    params: WeakLabelParams = WeakLabelParams(),
    rule: ScreeningRule = ScreeningRule(),
) -> WeakLabels:
    """Weak droplet masks of one H&E image (thesis §3.2.2), with screening flags.

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1].
        params: the bright-field adaptation's parameters.
        rule: the screening rule.

    Returns:
        :class:`WeakLabels`.
    """
    grey = grey_image(image)
    white, normalised = white_mask(grey, threshold=params.threshold)
    white = ndimage.binary_opening(white, structure=morphology.disk(1))
    background = background_mask(white, max_droplet_radius=params.max_droplet_radius)
    tissue = ~ndimage.binary_dilation(background, iterations=2)
    droplets = morphology.remove_small_objects(white & tissue, max_size=params.min_area - 1)
    droplets = ndimage.binary_fill_holes(droplets)
    regions = measure.label(droplets, connectivity=1).astype(np.int32)
    if regions.max() == 0:
        return WeakLabels(labels=np.zeros(grey.shape, np.int32), kept=np.zeros(1, bool), tissue=tissue, mean_area=0.0)
    mean_area = mean_nucleus_area(droplets, min_solidity=params.max_solidity, min_area=params.min_area)
    mean_area = max(mean_area, float(params.min_area))
    scale = float(np.clip(np.sqrt(mean_area / REFERENCE_NUCLEUS_AREA), 0.1, 10.0))
    is_clump = _clump_flags(regions, max_solidity=params.max_solidity)
    labels, _cuts = split_clumps(regions, is_clump, normalised, mean_area=mean_area, scale=scale, params=params.nuclei)
    if params.grow > 0:
        labels = expand_labels(labels, distance=params.grow) * tissue
    kept = screen_masks(labels, tissue, rule=rule, normalised=normalised)
    return WeakLabels(labels=labels, kept=kept, tissue=tissue, mean_area=float(mean_area))
