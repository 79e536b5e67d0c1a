"""Preprocessing presets for SCU-Net BAC segmentation (thesis §3.3.2, METHODS.md §1).

Two presets, named by the weights that need them:

``published`` — the authors' public inference code: ``medianBlur(5)`` on the
8-bit grey image and nothing else; breast area = pixels with ``I > 0``; patches
normalised as ``(x/255 − 0.2813) / 0.1256``; stride 480 (32 px overlap) with the
last patch snapped to the edge; skip a patch when its mean ≤ 20 or its std ≤ 10;
overlaps merged by element-wise max from a zero map; cut-off 0.65 and
``I ≥ X``.

``thesis`` — the thesis text: median filter with a *disk* footprint of size 5
(radius 2); breast mask by erosion then dilation (an opening) with a disk of
radius 10 of the non-zero pixels, keeping the largest connected region, which
erases burned-in view labels ("RMLO", ...); pixels outside the mask set to 0;
contrast enhancement by a **linear percentile stretch** inside the breast (the
1st..99th intensity percentiles of the breast pixels mapped to 0..255, clipped —
the thesis does not say which enhancement; a monotone global stretch keeps
``I > X`` meaningful); zero-mean normalisation per patch (``x/255`` minus the
patch mean; the thesis gives no scale); 64 px overlap (stride 448); cut-off 0.5
and ``I > X``. The thesis gives no numbers for its background-patch skip nor the
merge rule ("concatenated"), so this preset uses the published ones.

Every function takes the 8-bit grey image ``np.uint8[H, W]`` that the image
reader produces (DICOM LUTs, window and MONOCHROME1 inversion already applied).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medlim.errors import InputError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

# torch, OpenCV and scikit-image are imported inside the functions that use them:
# the mammography page reads the presets from this module when it loads.

__all__ = [
    "background_rule",
    "black_patches",
    "disk_median",
    "median_network",
    "BacPreset",
    "PreprocessedImage",
    "PRESETS",
    "PRESET_SUMMARIES",
    "get_preset",
    "background_floor",
    "border_strips",
    "image_floor",
    "as_read_view",
    "median_filter",
    "breast_mask",
    "contrast_stretch",
    "preprocess_image",
    "preprocess_tensor",
    "stretch_table",
    "skip_background_patches",
    "normalise_patches",
]

MergeRule = Literal["max", "mean", "gaussian"]
IntensityRule = Literal[">", ">="]


@dataclass(frozen=True)
class BacPreset:
    """Everything between an 8-bit mammogram and SCU-Net's input, and the readout defaults.

    Attributes:
        name: registry name (``"thesis"`` or ``"published"``).
        median_kernel: median filter size in pixels (odd).
        median_footprint: ``"square"`` (OpenCV ``medianBlur``) or ``"disk"``
            (radius ``median_kernel // 2``).
        breast_mask_rule: ``"nonzero"`` (``I > 0``, published) or ``"opened"``
            (opening of ``I > 0`` by a disk of ``breast_mask_disk_radius``,
            largest connected region; thesis).
        breast_mask_disk_radius: disk radius for the ``"opened"`` rule.
        mask_image: set pixels outside the breast mask to 0 before inference.
        contrast: ``"none"`` or ``"percentile_stretch"``.
        stretch_percentiles: (low, high) breast-intensity percentiles mapped to 0 and 255.
        normalisation: ``"fixed"`` (``(x/255 − norm_mean)/norm_std``) or
            ``"patch_zero_mean"`` (``x/255`` minus the patch mean).
        norm_mean: mean for ``"fixed"``.
        norm_std: std for ``"fixed"``.
        in_channels: the grey patch is repeated to this many channels.
        patch_size: square patch side in pixels.
        stride: distance between patch starts (``patch_size − overlap``).
        merge: overlap merge rule ``"max"`` / ``"mean"`` / ``"gaussian"``.
        skip_mean_at_most: skip a patch whose mean intensity is ≤ this.
        skip_std_at_most: skip a patch whose intensity std is ≤ this.
        threshold: probability cut-off ``t`` (``p > t`` is BAC).
        intensity_x: intensity threshold ``X`` of TAM_X / TSIM_X.
        intensity_rule: ``">"`` (thesis eq. 3.9) or ``">="`` (published code).
        background: ``"as-is"`` (the published code and the thesis: the background is the pixels at 0) or
            ``"floor"`` (medlim's: a background that is not black is set to 0 first, :func:`background_floor`).
    """

    name: str
    median_kernel: int
    median_footprint: Literal["square", "disk"]
    breast_mask_rule: Literal["nonzero", "opened"]
    breast_mask_disk_radius: int
    mask_image: bool
    contrast: Literal["none", "percentile_stretch"]
    stretch_percentiles: tuple[float, float]
    normalisation: Literal["fixed", "patch_zero_mean"]
    norm_mean: float
    norm_std: float
    in_channels: int
    patch_size: int
    stride: int
    merge: MergeRule
    skip_mean_at_most: float
    skip_std_at_most: float
    threshold: float
    intensity_x: float
    intensity_rule: IntensityRule
    background: Literal["as-is", "floor"] = "as-is"

    @property
    def overlap(self) -> int:
        """Pixels shared by neighbouring patches (``patch_size − stride``)."""
        return self.patch_size - self.stride


@dataclass(frozen=True)
class PreprocessedImage:
    """The image SCU-Net sees and the intensities the metrics read.

    Attributes:
        grey: ``np.uint8[H, W]``, the preprocessed 8-bit image (``I`` of eq. 3.8–3.9).
        breast_mask: ``np.bool_[H, W]``, the breast region by the preset's rule.
        as_read: when the preset's background floor changed the view (air that was not black), the same view
            preprocessed without it — what the training-data check scores, so that the check still sees an
            image as it came (a radiograph's grey air made black would look more like a mammogram); else ``None``.
    """

    grey: np.ndarray
    breast_mask: np.ndarray
    as_read: PreprocessedImage | None = field(default=None, repr=False, compare=False)

    @property
    def breast_area(self) -> int:
        """Breast pixels (count of ``breast_mask``)."""
        return int(np.count_nonzero(self.breast_mask))


PRESETS: dict[str, BacPreset] = {
    "published": BacPreset(
        name="published",
        median_kernel=5,
        median_footprint="square",
        breast_mask_rule="nonzero",
        breast_mask_disk_radius=0,
        mask_image=False,
        contrast="none",
        stretch_percentiles=(0.0, 100.0),
        normalisation="fixed",
        norm_mean=0.2813,
        norm_std=0.1256,
        in_channels=3,
        patch_size=512,
        stride=480,
        merge="max",
        skip_mean_at_most=20.0,
        skip_std_at_most=10.0,
        threshold=0.65,
        intensity_x=100.0,
        intensity_rule=">=",
    ),
    "thesis": BacPreset(
        name="thesis",
        median_kernel=5,
        median_footprint="disk",
        breast_mask_rule="opened",
        breast_mask_disk_radius=10,
        mask_image=True,
        contrast="percentile_stretch",
        stretch_percentiles=(1.0, 99.0),
        normalisation="patch_zero_mean",
        norm_mean=0.0,
        norm_std=1.0,
        in_channels=3,
        patch_size=512,
        stride=448,
        merge="max",
        skip_mean_at_most=20.0,
        skip_std_at_most=10.0,
        threshold=0.5,
        intensity_x=100.0,
        intensity_rule=">",
        background="floor",
    ),
}


#: The ``thesis`` preset with a stretch that never clips the bright end
#: (breast percentiles 1..100). Calcifications are the brightest breast
#: pixels; the 1–99 % stretch maps everything above the 99th percentile to 255,
#: and in dense breasts it flattens calcified vessels into equally white tissue
#: (measured on validation phantoms, seed 80001: 4.4 % of the BAC pixels, up to
#: 10 % in the densest images, lost all contrast with their surroundings).
#: The thesis names no enhancement, so this is a second reading of it.
PRESETS["thesis-unclipped"] = dataclasses.replace(
    PRESETS["thesis"], name="thesis-unclipped", stretch_percentiles=(1.0, 100.0)
)


#: One plain-language line per preset, for people reading a result.
PRESET_SUMMARIES: dict[str, str] = {
    "published": "the authors' published code: 5×5 median filter only",
    "thesis": "thesis: disk median filter, breast outline without labels, contrast stretch (brightest 1 % clipped)",
    "thesis-unclipped": "thesis: disk median filter, breast outline without labels, contrast stretch that keeps "
    "the brightest calcifications distinct",
}


def get_preset(preset: str | BacPreset) -> BacPreset:
    """Return a preset by name (or the preset itself).

    Raises:
        ParameterError: the name is not in :data:`PRESETS`.
    """
    if isinstance(preset, BacPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ParameterError(f"Unknown BAC preprocessing preset {preset!r}; known: {sorted(PRESETS)}.") from None


def _check_grey_u8(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        described = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"Expected an 8-bit grey image np.uint8[H, W], got {described}.")
    if min(image.shape) < 1:
        raise InputError(f"Image is empty: shape {image.shape}.")


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def median_filter(image: np.ndarray, *, kernel: int = 5, footprint: Literal["square", "disk"] = "square") -> np.ndarray:
    """Median filter of an 8-bit image.

    Args:
        image: ``np.uint8[H, W]``.
        kernel: odd size in pixels (1 = no filtering).
        footprint: ``"square"`` (``cv2.medianBlur``, the published code) or
            ``"disk"`` of radius ``kernel // 2`` (the thesis's "disk kernel of size 5").

    Returns:
        ``np.uint8[H, W]``.
    """
    _check_grey_u8(image)
    if kernel < 1 or kernel % 2 == 0:
        raise ParameterError(f"Median kernel must be a positive odd size, got {kernel}.")
    if kernel == 1:
        return image.copy()
    if footprint == "square":
        import cv2

        return cv2.medianBlur(np.ascontiguousarray(image), kernel)
    if footprint == "disk":
        return disk_median(image, radius=kernel // 2)
    raise ParameterError(f"Median footprint must be 'square' or 'disk', got {footprint!r}.")


def _odd_even_merge_sort(size: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd–even merge sort for ``size`` (a power of two) inputs."""
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=8)
def median_network(count: int) -> tuple[tuple[tuple[int, int], ...], int]:
    """A compare-exchange network whose output lane holds the median of ``count`` inputs.

    Built from Batcher's sorting network on the next power of two, padded with
    lanes known to hold the minimum or the maximum (half each, so the median's
    rank moves to a known lane), pruned to the comparators the median depends
    on, and simplified where a comparator meets a padding lane (those become
    lane renamings, not work).

    Args:
        count: odd number of inputs (≥ 1).

    Returns:
        ``(comparators, output)``: pairs ``(a, b)`` over input lanes ``0..count−1``
        meaning ``a, b = min(a, b), max(a, b)``, and the lane holding the median.
    """
    if count < 1 or count % 2 == 0:
        raise ParameterError(f"median network needs an odd number of inputs, {count} is given.")
    size = 1
    while size < count:
        size *= 2
    pad_low = (size - count) // 2
    target = pad_low + count // 2
    comparators = _odd_even_merge_sort(size)
    needed, kept = {target}, []
    for a, b in reversed(comparators):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    kept.reverse()
    # Lanes 0..pad_low-1 hold the minimum, the last ones the maximum, the rest the inputs.
    lane: list[object] = ["min"] * pad_low + list(range(count)) + ["max"] * (size - count - pad_low)
    network = []
    for a, b in kept:
        x, y = lane[a], lane[b]
        if x == "min" or y == "max":
            continue  # already ordered
        if x == "max" or y == "min":
            lane[a], lane[b] = y, x  # a swap of known extremes: a renaming
            continue
        network.append((int(x), int(y)))
        # min lands in lane a, max in lane b: inputs keep their lane numbers in the network
        lane[a], lane[b] = x, y
    output = lane[target]
    assert isinstance(output, int)
    return tuple(network), output


def disk_median(image: np.ndarray, *, radius: int = 2, block_rows: int = 64) -> np.ndarray:
    """Median filter over a disk footprint (``x² + y² ≤ radius²``), exact.

    Equal to ``skimage.filters.rank.median(image, footprint=disk)`` (tested),
    computed with a median selection network of element-wise minima and maxima
    over row blocks — several times faster on a full mammogram. The borders,
    where the footprint leaves the image, are taken from ``rank.median`` itself.

    Args:
        image: ``np.uint8[H, W]``.
        radius: disk radius in pixels (≥ 1).
        block_rows: rows per block (keeps the working set in cache).

    Returns:
        ``np.uint8[H, W]``.
    """
    from skimage.filters import rank

    _check_grey_u8(image)
    footprint = _disk(radius)
    rows, cols = image.shape
    if rows <= 2 * radius + 2 or cols <= 2 * radius + 2:
        return rank.median(image, footprint=footprint)
    offsets = [(dy - radius, dx - radius) for dy, dx in zip(*np.nonzero(footprint))]
    out = np.empty_like(image)
    r = radius
    for top in range(r, rows - r, block_rows):
        bottom = min(top + block_rows, rows - r)
        lanes = [image[top + dy : bottom + dy, r + dx : cols - r + dx] for dy, dx in offsets]
        out[top:bottom, r : cols - r] = _network_median(lanes, minimum=np.minimum, maximum=np.maximum)
    for source, keep, target in _border_strips(rows, cols, r):
        out[target] = rank.median(image[source], footprint=footprint)[keep]
    return out


def _border_strips(rows: int, cols: int, radius: int) -> list[tuple[tuple[slice, slice], ...]]:
    """Where a disk median leaves the image: ``(source, keep, target)`` slice pairs.

    ``rank.median`` on ``image[source]`` (a strip wide enough to hold every
    footprint that touches the border), cut to ``[keep]``, is the exact
    median of ``image[target]``'s pixels.
    """
    r, edge, whole = radius, 2 * radius + 1, slice(None)
    return [
        ((slice(0, r + edge), whole), (slice(0, r), whole), (slice(0, r), whole)),
        ((slice(rows - r - edge, rows), whole), (slice(-r, None), whole), (slice(rows - r, rows), whole)),
        ((whole, slice(0, r + edge)), (whole, slice(0, r)), (whole, slice(0, r))),
        ((whole, slice(cols - r - edge, cols)), (whole, slice(-r, None)), (whole, slice(cols - r, cols))),
    ]


def breast_mask(
    image: np.ndarray, *, rule: Literal["nonzero", "opened"] = "nonzero", disk_radius: int = 10
) -> np.ndarray:
    """Breast region of an 8-bit mammogram.

    Args:
        image: ``np.uint8[H, W]`` (after median filtering).
        rule: ``"nonzero"``: ``I > 0`` (the published code's breast area).
            ``"opened"``: ``I > 0`` eroded then dilated by a disk of
            ``disk_radius`` (removes thin burned-in labels and specks), then the
            largest 8-connected region only (thesis §3.3.2).
        disk_radius: disk radius in pixels for ``"opened"``.

    Returns:
        ``np.bool_[H, W]``.
    """
    _check_grey_u8(image)
    nonzero = image > 0
    if rule == "nonzero":
        return nonzero
    if rule != "opened":
        raise ParameterError(f"Breast mask rule must be 'nonzero' or 'opened', got {rule!r}.")
    if disk_radius < 0:
        raise ParameterError(f"Breast mask disk radius must be ≥ 0, got {disk_radius}.")
    import cv2

    opened = cv2.morphologyEx(nonzero.astype(np.uint8), cv2.MORPH_OPEN, _disk(disk_radius))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if count <= 1:
        return np.zeros(image.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def contrast_stretch(image: np.ndarray, mask: np.ndarray, *, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Linear contrast stretch: breast percentiles ``(low, high)`` → 0..255, clipped.

    Args:
        image: ``np.uint8[H, W]``.
        mask: ``np.bool_[H, W]`` pixels whose histogram sets the stretch.
        percentiles: (low, high) in [0, 100], low < high.

    Returns:
        ``np.uint8[H, W]``, the same look-up table applied everywhere; 0 stays 0
        and every non-zero pixel stays ≥ 1, so the ``I > 0`` region is unchanged.
    """
    _check_grey_u8(image)
    low_pct, high_pct = percentiles
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ParameterError(f"Stretch percentiles must satisfy 0 ≤ low < high ≤ 100, got {percentiles}.")
    lut = stretch_table(np.bincount(image[mask], minlength=256), percentiles=percentiles)
    return image.copy() if lut is None else lut[image]


def stretch_table(histogram: np.ndarray, *, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray | None:
    """The look-up table of :func:`contrast_stretch` from a breast histogram.

    Args:
        histogram: ``np.int64[256]`` counts of the breast pixels' levels.
        percentiles: (low, high) in [0, 100], low < high.

    Returns:
        ``np.uint8[256]`` (0 → 0, every other level → ≥ 1), or None when the
        stretch is the identity (no breast pixels, or one level holds both percentiles).
    """
    low_pct, high_pct = percentiles
    total = int(histogram.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(histogram)
    # low: first level whose cumulative count exceeds low% (0 % → the darkest breast level);
    # high: first level whose cumulative count reaches high% (100 % → the brightest).
    low = int(np.searchsorted(cumulative, total * low_pct / 100.0, side="right"))
    high = int(np.searchsorted(cumulative, total * high_pct / 100.0, side="left"))
    if high <= low:
        return None
    lut = np.clip((np.arange(256, dtype=np.float64) - low) * 255.0 / (high - low), 0, 255)
    lut = np.maximum(np.rint(lut), 1).astype(np.uint8)
    lut[0] = 0
    return lut


#: The darkest border strip is background only when its median is at most this share of the image's
#: 99th percentile (a breast filling the view has no dark border).
BACKGROUND_MEDIAN_SHARE = 0.25
#: Air is flat: a darkest strip whose robust standard deviation exceeds this many grey levels is tissue.
BACKGROUND_MAX_SPREAD = 8.0


def border_strips(height: int, width: int) -> tuple[tuple[slice, slice], ...]:
    """The four border strips :func:`background_floor` reads: 1 % of the shorter side, at least 4 px."""
    band = max(4, min(height, width) // 100)
    band_rows, band_cols = min(band, height), min(band, width)
    return ((slice(0, band_rows), slice(None)), (slice(height - band_rows, height), slice(None)),
            (slice(None), slice(0, band_cols)), (slice(None), slice(width - band_cols, width)))


def background_floor(strips: Sequence[np.ndarray], histogram: np.ndarray) -> int:
    """The grey level at and below which a mammogram's pixels are background, or 0 when it is black already.

    The thesis and the authors' code take the breast as the non-zero pixels. A mammogram whose background is
    not black (an acquisition chain that leaves detector noise or an offset in the air, a JPEG export) then
    has no background at all: the breast mask is the whole view, the contrast stretch reads the air's
    grey levels, and no background patch is skipped. On a bundled sample with the air at grey 10 instead of 0
    `scunet-bac` v2 read TAM_100 1.85 × as high (medlim's addition, the ``"floor"`` background of the
    ``thesis`` presets). The background is the darkest of the four border strips (the side opposite the chest
    wall is air); the floor is its median plus four robust standard deviations (MAD × 1.4826), at least 2.

    Args:
        strips: the image's four border strips (:func:`border_strips`), ``np.uint8``.
        histogram: ``np.ndarray[256]`` counts of the whole image's grey levels.

    Returns:
        0 when the darkest strip's median is 0 (a black background: every phantom of both families, so
        nothing changes for them), or when that strip is not dark (median above
        :data:`BACKGROUND_MEDIAN_SHARE` × the image's 99th percentile: no air at any border) or not flat
        (robust SD above :data:`BACKGROUND_MAX_SPREAD`: tissue cut by the edge); else the floor.
    """
    total = int(histogram.sum())
    darkest = min(strips, key=lambda strip: float(np.median(strip)))
    level = float(np.median(darkest))
    if total == 0 or level == 0:
        return 0
    p99 = int(np.searchsorted(np.cumsum(histogram), 0.99 * total, side="left"))
    if level > BACKGROUND_MEDIAN_SHARE * p99:
        return 0
    spread = 1.4826 * float(np.median(np.abs(darkest.astype(np.float32) - level)))
    if spread > BACKGROUND_MAX_SPREAD:
        return 0  # textured: tissue cut by the image edge, not air
    return int(min(np.ceil(level + max(2.0, 4.0 * spread)), 254))


def image_floor(image: np.ndarray) -> int:
    """:func:`background_floor` of an 8-bit grey image."""
    strips = [image[rows, cols] for rows, cols in border_strips(*image.shape)]
    return background_floor(strips, np.bincount(image.ravel(), minlength=256))


def as_read_view(image: np.ndarray, preset: BacPreset, *, floor: int | None = None) -> PreprocessedImage | None:
    """The view preprocessed without the background floor, when the floor changes it (else ``None``).

    ``floor``: the image's :func:`image_floor` when the caller has it already (the GPU path computes it once).
    """
    if preset.background != "floor" or (image_floor(image) if floor is None else floor) == 0:
        return None
    return preprocess_image(image, dataclasses.replace(preset, background="as-is"))


def preprocess_image(image: np.ndarray, preset: str | BacPreset = "published") -> PreprocessedImage:
    """Apply a preset to an 8-bit grey mammogram.

    Args:
        image: ``np.uint8[H, W]`` from the image reader.
        preset: preset name or :class:`BacPreset`.

    Returns:
        :class:`PreprocessedImage` (the grey image the model sees and the breast mask).
    """
    preset = get_preset(preset)
    _check_grey_u8(image)
    as_read = None
    if preset.background == "floor":
        floor = image_floor(image)
        if floor:
            as_read = preprocess_image(image, dataclasses.replace(preset, background="as-is"))
            image = np.where(image <= floor, np.uint8(0), image)
    grey = median_filter(image, kernel=preset.median_kernel, footprint=preset.median_footprint)
    mask = breast_mask(grey, rule=preset.breast_mask_rule, disk_radius=preset.breast_mask_disk_radius)
    if preset.contrast == "percentile_stretch":
        grey = contrast_stretch(grey, mask, percentiles=preset.stretch_percentiles)
    elif preset.contrast != "none":
        raise ParameterError(f"Unknown contrast enhancement {preset.contrast!r}.")
    if preset.mask_image:
        grey = np.where(mask, grey, np.uint8(0))
    return PreprocessedImage(grey=grey, breast_mask=mask, as_read=as_read)


def preprocess_tensor(
    image: torch.Tensor, preset: str | BacPreset = "published", *, floor: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`preprocess_image` as tensor operations, on the device where ``image`` lives.

    Used for GPU inference, where sending the 8-bit image over once and
    preprocessing it beside the model is faster than the host's filters. The
    result equals :func:`preprocess_image` pixel for pixel (tested on the CPU
    device against the numpy/OpenCV path): the disk median runs the same
    selection network with tensor minima and maxima (its few border rows and
    columns, where the footprint leaves the image, go through ``rank.median``
    on the host), the opening and largest region come from
    :mod:`medlim.core.morphology`, and only the 256-bin breast histogram
    travels to the host for the stretch table. The square median of the
    ``published`` preset (``cv2.medianBlur``, replicated borders) uses the same
    network over 25 lanes.

    Args:
        image: ``Tensor[H, W]`` uint8 on any device.
        preset: preset name or :class:`BacPreset`.
        floor: the image's :func:`image_floor`, when the caller computed it already (else computed here).

    Returns:
        ``(grey, breast_mask)``: ``Tensor[H, W]`` uint8 and ``Tensor[H, W]`` bool on ``image``'s device.
    """
    import torch

    from medlim.core.morphology import largest_component, open_disk

    preset = get_preset(preset)
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 2 or min(image.shape) < 1:
        described = f"{image.dtype}{list(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"Expected an 8-bit grey image Tensor[H, W] uint8, got {described}.")
    if preset.background == "floor":
        if floor is None:
            strips = [image[rows, cols].cpu().numpy() for rows, cols in border_strips(*image.shape)]
            floor = background_floor(strips, torch.bincount(image.flatten().to(torch.int32), minlength=256).cpu().numpy())
        if floor:
            image = torch.where(image <= floor, torch.zeros((), dtype=image.dtype, device=image.device), image)
    grey = _median_tensor(image, kernel=preset.median_kernel, footprint=preset.median_footprint)
    nonzero = grey > 0
    if preset.breast_mask_rule == "nonzero":
        mask = nonzero
    elif preset.breast_mask_rule == "opened":
        if preset.breast_mask_disk_radius < 0:
            raise ParameterError(f"Breast mask disk radius must be ≥ 0, got {preset.breast_mask_disk_radius}.")
        mask = largest_component(open_disk(nonzero, preset.breast_mask_disk_radius))
    else:
        raise ParameterError(f"Breast mask rule must be 'nonzero' or 'opened', got {preset.breast_mask_rule!r}.")
    if preset.contrast == "percentile_stretch":
        low_pct, high_pct = preset.stretch_percentiles
        if not 0.0 <= low_pct < high_pct <= 100.0:
            raise ParameterError(f"Stretch percentiles must satisfy 0 ≤ low < high ≤ 100, got {preset.stretch_percentiles}.")
        histogram = torch.bincount(grey[mask].to(torch.int32), minlength=256).cpu().numpy()
        lut = stretch_table(histogram, percentiles=preset.stretch_percentiles)
        if lut is not None:
            grey = torch.from_numpy(lut).to(grey.device)[grey.to(torch.int64)]
    elif preset.contrast != "none":
        raise ParameterError(f"Unknown contrast enhancement {preset.contrast!r}.")
    if preset.mask_image:
        grey = torch.where(mask, grey, torch.zeros((), dtype=grey.dtype, device=grey.device))
    return grey, mask


def _network_median(lanes: list, *, minimum: Callable, maximum: Callable) -> Any:
    """Element-wise median of equally shaped arrays (or tensors) by the :func:`median_network` of their count."""
    network, output = median_network(len(lanes))
    lanes = list(lanes)
    for a, b in network:
        low = minimum(lanes[a], lanes[b])
        lanes[b] = maximum(lanes[a], lanes[b])
        lanes[a] = low
    return lanes[output]


def _median_tensor(image: torch.Tensor, *, kernel: int, footprint: str) -> torch.Tensor:
    """:func:`median_filter` of a uint8 tensor, where it lives."""
    import torch
    import torch.nn.functional as F

    if kernel < 1 or kernel % 2 == 0:
        raise ParameterError(f"Median kernel must be a positive odd size, got {kernel}.")
    if kernel == 1:
        return image.clone()
    r = kernel // 2
    rows, cols = image.shape
    if footprint == "square":
        # cv2.medianBlur replicates the border pixels
        padded = F.pad(image[None, None].float(), (r, r, r, r), mode="replicate")[0, 0].to(torch.uint8)
        lanes = [padded[dy : dy + rows, dx : dx + cols] for dy in range(kernel) for dx in range(kernel)]
        return _network_median(lanes, minimum=torch.minimum, maximum=torch.maximum)
    if footprint != "disk":
        raise ParameterError(f"Median footprint must be 'square' or 'disk', got {footprint!r}.")
    if rows <= 2 * r + 2 or cols <= 2 * r + 2:
        return torch.from_numpy(disk_median(image.cpu().numpy(), radius=r)).to(image.device)
    from skimage.filters import rank

    disk = _disk(r)
    offsets = [(dy - r, dx - r) for dy, dx in zip(*np.nonzero(disk))]
    out = image.clone()
    lanes = [image[r + dy : rows - r + dy, r + dx : cols - r + dx] for dy, dx in offsets]
    out[r : rows - r, r : cols - r] = _network_median(lanes, minimum=torch.minimum, maximum=torch.maximum)
    for source, keep, target in _border_strips(rows, cols, r):
        strip = rank.median(image[source].contiguous().cpu().numpy(), footprint=disk)[keep]
        out[target] = torch.from_numpy(np.ascontiguousarray(strip)).to(image.device)
    return out


def skip_background_patches(
    patches: np.ndarray | torch.Tensor, *, mean_at_most: float = 20.0, std_at_most: float = 10.0
) -> np.ndarray:
    """Background test of the published code: skip when mean ≤ ``mean_at_most`` or std ≤ ``std_at_most``.

    Args:
        patches: ``[N, h, w]`` uint8 grey patches, ``np.ndarray`` or ``torch.Tensor``
            (a tensor is tested where it lives, e.g. on the GPU, in float64).
        mean_at_most: mean threshold (8-bit units).
        std_at_most: population standard deviation threshold (8-bit units).

    Returns:
        ``np.bool_[N]``, True for patches to skip.
    """
    if not isinstance(patches, np.ndarray):
        values = patches.reshape(patches.shape[0], -1).double()
        skip = (values.mean(dim=1) <= mean_at_most) | (values.std(dim=1, correction=0) <= std_at_most)
        return skip.cpu().numpy()
    values = patches.reshape(patches.shape[0], -1).astype(np.float64)
    return (values.mean(axis=1) <= mean_at_most) | (values.std(axis=1) <= std_at_most)


def black_patches(
    patches: np.ndarray | torch.Tensor, *, level: float = 20.0, fraction: float = 0.005
) -> np.ndarray:
    """Background test of the thesis text: skip only black patches.

    The thesis (§3.3.2) skips patches that are background — black, outside
    the breast — and gives no numbers; the authors' code also skips low-mean
    or low-variance patches (:func:`skip_background_patches`), which drops
    edge patches still holding a sliver of breast (on validation phantoms
    2.1 % of the calcified pixels, up to 14.5 % in one image). Here a patch is
    black when fewer than ``fraction`` of its pixels exceed ``level``.

    Args:
        patches: ``[N, h, w]`` uint8 grey patches, ``np.ndarray`` or ``torch.Tensor``.
        level: 8-bit intensity above which a pixel is not background.
        fraction: most share of such pixels a black patch may hold.

    Returns:
        ``np.bool_[N]``, True for patches to skip.
    """
    if not isinstance(patches, np.ndarray):
        bright = (patches.reshape(patches.shape[0], -1) > level).double().mean(dim=1)
        return (bright < fraction).cpu().numpy()
    bright = (patches.reshape(patches.shape[0], -1) > level).mean(axis=1)
    return bright < fraction


def background_rule(
    skip: bool | str | Callable[[np.ndarray], np.ndarray], preset: str | BacPreset = "published"
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The background-patch test a weights' ``skip`` setting names (used at inference and for training patches).

    Args:
        skip: True — the preset's rule (:func:`skip_background_patches` with its
            bounds; the authors' code); ``"black"`` — :func:`black_patches` (the
            thesis text); False — none; or a callable ``f(patches[n, p, p]) -> bool[n]``.
        preset: preset name or :class:`BacPreset` (bounds for True).

    Returns:
        ``f(patches[n, p, p]) -> bool[n]`` (True = skip), or None for no skipping.

    Raises:
        ParameterError: any other ``skip``.
    """
    if skip is True:
        bounds = get_preset(preset)
        return lambda patches: skip_background_patches(
            patches, mean_at_most=bounds.skip_mean_at_most, std_at_most=bounds.skip_std_at_most)
    if skip is False:
        return None
    if skip == "black":
        return black_patches
    if callable(skip):
        return skip
    raise ParameterError(f"`skip` must be True, False, 'black' or a callable, {skip!r} is given.")


def normalise_patches(patches: torch.Tensor, preset: str | BacPreset = "published") -> torch.Tensor:
    """8-bit grey patches → SCU-Net input.

    Args:
        patches: ``Tensor[N, 1, h, w]`` uint8 (any device).
        preset: preset name or :class:`BacPreset`.

    Returns:
        ``Tensor[N, in_channels, h, w]`` float32 on the same device: ``x/255`` then
        ``(· − norm_mean)/norm_std`` (``"fixed"``) or minus each patch's mean
        (``"patch_zero_mean"``), the grey channel repeated (a view, no copy).
    """
    import torch

    preset = get_preset(preset)
    scaled = patches.to(torch.float32) / 255.0  # a new tensor: never scale the caller's in place
    if preset.normalisation == "fixed":
        scaled = scaled.sub_(preset.norm_mean).div_(preset.norm_std)
    elif preset.normalisation == "patch_zero_mean":
        scaled = scaled - scaled.mean(dim=(1, 2, 3), keepdim=True)
    else:
        raise ParameterError(f"Unknown normalisation {preset.normalisation!r}.")
    return scaled.expand(-1, preset.in_channels, -1, -1)
