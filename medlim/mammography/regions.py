"""A region filter fitted on a site's own annotated views: drop marked regions that look like tissue, not BAC.

On unseen mammograms most false "BAC" lies on look-alikes — Cooper's ligaments
and other bright linear tissue, benign round calcifications — that SCU-Net marks
as whole regions (README, "Where the false area lies"). The gate
(:mod:`medlim.mammography.gating`) keeps or drops a region by its highest
probability alone. This module judges each region by what it looks like on the
preprocessed view, relative to its own surroundings:

* shape: skeleton length, width (area ÷ length), elongation, solidity, extent,
  linearity and tortuosity of the skeleton, branch points per mm;
* grey, each relative to a ring around the region (z-scores in units of the
  ring's standard deviation or ratios, never absolute grey levels, so a
  vendor's contrast curve or a window does not move them): mean and peak
  contrast, spread inside, skeleton-minus-rim contrast (a calcified wall is
  brighter at its rim than a ligament), the dip at the centre of the radial
  profile, edge sharpness (Sobel magnitude on the boundary), high-pass texture
  inside against the ring.

No position in the breast, no absolute size of the image. A logistic regression
on standardised features (class-balanced, L2, ``C`` = 0.3) separates regions
that hold BAC (at least :data:`BAC_SHARE` of their pixels are in the mask)
from the rest; its cut-off is the highest that keeps at least
:data:`KEEP_BAC_PIXELS` of the true-BAC pixels of the regions, on scores each
region gets from a model fitted without its patient (grouped cross-validation;
in-sample when one patient is all there is, and the selection record says so).

Measured before it was built (a one-off probe of 2026-12-07, README "A region
filter"): fitted on family B training views, it kept 97 % of BAC pixels and
removed 64–72 % of the false area on two unseen family-B sets; fitted on both
phantom families it removed little. So it is fitted per site, by ``medlim train
scunet --data``, and kept only when it beats the weights' cut-off or gate on the
run's whole validation views (:func:`medlim.mammography.selection.filter_over_cutoff`).

**Deviation from the thesis** (§3.3 marks every pixel above one cut-off), stated in the weights' manifest
entry (``params.region_filter``), the README and the model's ``threshold_selection``: weights without one are
read as before. The filter sets the probability of a dropped region to 0 on the image's grid, after the gate, so
every reader of the map (mask, PM, readouts, the page's live cut-off, exports) sees the same regions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.mammography.gating import marked_regions

__all__ = [
    "BAC_SHARE",
    "KEEP_BAC_PIXELS",
    "REGION_FEATURES",
    "RegionFilter",
    "RegionTable",
    "FilterEffect",
    "apply_region_filter",
    "filter_regions",
    "fit_region_filter",
    "keeping_threshold",
    "region_filter_from_params",
    "region_table",
]

#: The features, in the order of the filter's coefficients.
REGION_FEATURES: tuple[str, ...] = (
    "log_length", "width_mm", "elongation", "solidity", "extent", "linearity", "tortuosity", "branches_per_mm",
    "contrast_z", "peak_contrast_z", "spread_ratio", "skeleton_minus_rim_z", "centre_dip_z", "edge_sharpness_z",
    "texture_ratio",
)
#: A region counts as BAC when at least this share of its pixels lies in the BAC mask.
BAC_SHARE = 0.2
#: The filter's cut-off keeps at least this share of the true-BAC pixels of the regions (cross-validated).
KEEP_BAC_PIXELS = 0.95
#: Fewest regions of each kind (BAC, not BAC) a filter is fitted from.
MIN_REGIONS = 8
#: Most regions of one view whose features are measured (the largest by area; smaller ones are kept unjudged), so
#: an image that breaks into very many marked specks (noise, a non-mammogram) cannot tie up the machine.
MAX_REGIONS = 2000
_PAD = 14
_C = 0.3


@dataclass(frozen=True)
class RegionTable:
    """The regions of some views' marked areas, one row each.

    Attributes:
        features: ``float64[n, len(REGION_FEATURES)]``.
        pixels: ``int64[n]`` each region's area in pixels.
        bac_pixels: ``int64[n]`` of them inside the BAC mask (0 where no mask is known).
        groups: ``n`` labels of who a region belongs to (a patient or a view), for grouped cross-validation.
    """

    features: np.ndarray
    pixels: np.ndarray
    bac_pixels: np.ndarray
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def is_bac(self) -> np.ndarray:
        """``bool[n]``: at least :data:`BAC_SHARE` of the region's pixels are BAC."""
        return self.bac_pixels >= BAC_SHARE * np.maximum(self.pixels, 1)

    @staticmethod
    def join(tables: Sequence[RegionTable]) -> RegionTable:
        """The rows of several tables, in order."""
        width = len(REGION_FEATURES)
        return RegionTable(
            features=np.concatenate([t.features for t in tables]) if tables else np.zeros((0, width)),
            pixels=np.concatenate([t.pixels for t in tables]) if tables else np.zeros(0, np.int64),
            bac_pixels=np.concatenate([t.bac_pixels for t in tables]) if tables else np.zeros(0, np.int64),
            groups=tuple(g for t in tables for g in t.groups))


@dataclass(frozen=True)
class RegionFilter:
    """A fitted region filter (module docstring).

    Attributes:
        floor: regions are the 8-connected pixels with ``p > floor`` (the weights' cut-off when fitted).
        mean, scale: per-feature standardisation.
        coef, intercept: the logistic regression on standardised features.
        threshold: a region is kept when its probability of being BAC is at least this.
        spacing_mm: the pixel size assumed for views that state none (the training views' median).
    """

    floor: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    spacing_mm: float

    def __post_init__(self) -> None:
        width = len(REGION_FEATURES)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == width):
            raise ParameterError(f"a region filter needs {width} means, scales and coefficients.")
        values = (self.floor, self.intercept, self.threshold, self.spacing_mm, *self.mean, *self.scale, *self.coef)
        if not all(math.isfinite(v) for v in values):
            raise ParameterError("a region filter's numbers must all be finite.")
        if not (0.0 <= self.floor < 1.0 and 0.0 <= self.threshold <= 1.0 and self.spacing_mm > 0
                and min(self.scale) > 0):
            raise ParameterError("a region filter needs 0 ≤ floor < 1, 0 ≤ threshold ≤ 1, a positive spacing "
                                 "and positive scales.")

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``float64[n]``: each row's probability of being BAC."""
        z = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(z @ np.asarray(self.coef) + self.intercept)

    def describe(self) -> str:
        """One sentence for a person choosing a cut-off."""
        return (f"These weights drop regions of p > {self.floor:g} whose shape and contrast look like tissue rather "
                "than BAC (a filter fitted on the site's own views).")

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``params.region_filter``."""
        return {"features": list(REGION_FEATURES), "floor": self.floor, "mean": [round(v, 6) for v in self.mean],
                "scale": [round(v, 6) for v in self.scale], "coef": [round(v, 6) for v in self.coef],
                "intercept": round(self.intercept, 6), "threshold": round(self.threshold, 6),
                "spacing_mm": self.spacing_mm}


def region_filter_from_params(params: Mapping[str, Any]) -> RegionFilter | None:
    """The filter a weights entry's ``params`` hold (``region_filter``), or ``None``.

    Raises:
        ParameterError: ``region_filter`` is present but malformed or names other features.
    """
    value = params.get("region_filter")
    if value is None:
        return None
    if not isinstance(value, Mapping) or tuple(value.get("features", ())) != REGION_FEATURES:
        raise ParameterError("the weights' region filter is malformed or was fitted on other features.")
    try:
        return RegionFilter(floor=float(value["floor"]), mean=tuple(map(float, value["mean"])),
                            scale=tuple(map(float, value["scale"])), coef=tuple(map(float, value["coef"])),
                            intercept=float(value["intercept"]), threshold=float(value["threshold"]),
                            spacing_mm=float(value["spacing_mm"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"the weights' region filter is malformed: {exc}.") from exc


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length in px of a skeleton: its 4-neighbour links count 1, diagonal ones √2."""
    s = skeleton.astype(np.int32)
    orthogonal = int((s[1:, :] & s[:-1, :]).sum() + (s[:, 1:] & s[:, :-1]).sum())
    diagonal = int((s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum())
    return max(1.0, orthogonal + diagonal * math.sqrt(2.0))


def _one_region(region: np.ndarray, others: np.ndarray, grey: np.ndarray, spacing: float) -> list[float]:
    """The features of one region (``bool`` crop with a margin), beside the crop's other marked pixels and grey."""
    import cv2
    from scipy import ndimage as ndi
    from skimage.measure import regionprops
    from skimage.morphology import skeletonize

    eight = np.ones((3, 3), bool)
    area = int(region.sum())
    skeleton = skeletonize(region)
    length = _skeleton_length(skeleton)
    props = regionprops(region.astype(np.uint8))[0]
    elongation = float(props.axis_major_length / max(props.axis_minor_length, 1.0))
    ys, xs = np.nonzero(skeleton)
    if len(ys) >= 3:
        low, high = np.linalg.eigvalsh(np.cov(np.vstack([ys, xs]).astype(np.float64)))
        linearity = float(1.0 - low / max(high, 1e-9))
        tortuosity = float(length / max(4.0 * math.sqrt(max(high, 0.0)), 1.0))
    else:
        linearity, tortuosity = 0.0, 1.0
    neighbours = ndi.convolve(skeleton.astype(np.int32), eight.astype(np.int32), mode="constant") - skeleton
    branches = int(((neighbours >= 3) & skeleton).sum())
    width_px = area / length
    ring_width = max(2, int(round(width_px)) + 1)
    grown = ndi.binary_dilation(region, eight)
    ring = ndi.binary_dilation(region, eight, iterations=ring_width) & ~grown & ~others
    inside = grey[region]
    around = grey[ring] if ring.any() else inside
    spread = float(around.std()) + 1.0
    rim = region & ~ndi.binary_erosion(region, eight)
    distance = np.rint(ndi.distance_transform_edt(~skeleton))
    zone = ndi.binary_dilation(region, eight, iterations=ring_width + 2) & ~others
    profile = [float(grey[(distance == d) & zone].mean()) if ((distance == d) & zone).any() else math.nan
               for d in range(5)]
    off_centre = [v for v in profile[1:] if math.isfinite(v)]
    peak_off = max(off_centre) if off_centre else profile[0]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy) / 8.0
    band = grown & ~ndi.binary_erosion(region, eight)
    high_pass = grey - cv2.medianBlur(np.clip(grey, 0, 255).astype(np.uint8), 5).astype(np.float32)
    texture_ring = float(np.abs(high_pass[ring]).mean()) + 0.5 if ring.any() else 1.0
    return [
        math.log(length * spacing + 0.05), width_px * spacing, elongation, float(props.solidity), float(props.extent),
        linearity, tortuosity, branches / max(length * spacing, 0.1),
        float((inside.mean() - around.mean()) / spread), float((inside.max() - around.mean()) / spread),
        float(inside.std() / spread), float((grey[skeleton].mean() - grey[rim].mean()) / spread),
        float((peak_off - profile[0]) / spread), float(magnitude[band].mean() / spread),
        float(np.abs(high_pass[region]).mean() / texture_ring),
    ]


def _features(labels: np.ndarray, count: int, grey: np.ndarray, spacing: float) -> np.ndarray:
    """``float64[count − 1, F]``: the features of regions 1 … count − 1 of ``labels`` (zeros for a label no
    pixel carries, e.g. a region :func:`filter_regions` left unjudged)."""
    from scipy import ndimage as ndi

    if grey.shape != labels.shape:
        raise ParameterError(f"the grey image ({grey.shape}) and the probability map ({labels.shape}) differ in size.")
    grey = np.asarray(grey, dtype=np.float32)
    height, width = labels.shape
    rows = []
    for index, box in enumerate(ndi.find_objects(labels, max_label=max(count - 1, 0)), start=1):
        if box is None:
            rows.append([0.0] * len(REGION_FEATURES))
            continue
        y0, y1 = max(0, box[0].start - _PAD), min(height, box[0].stop + _PAD)
        x0, x1 = max(0, box[1].start - _PAD), min(width, box[1].stop + _PAD)
        crop = labels[y0:y1, x0:x1]
        region = crop == index
        rows.append(_one_region(region, (crop > 0) & ~region, grey[y0:y1, x0:x1], spacing))
    return np.asarray(rows, dtype=np.float64).reshape(max(count - 1, 0), len(REGION_FEATURES))


def _spacing(spacing_mm: float | tuple[float, float] | None, fallback: float) -> float:
    """The geometric mean of a view's (row, column) spacing, or ``fallback`` when it has none."""
    from medlim.core.spacing import spacing_pair

    if spacing_mm is None:
        return fallback
    row, column = spacing_pair(spacing_mm)
    return math.sqrt(row * column)


def region_table(probability: np.ndarray, grey: np.ndarray, *, floor: float, spacing_mm: float | tuple[float, float],
                 truth: np.ndarray | None = None, group: str = "") -> RegionTable:
    """The regions of ``p > floor`` (8-connected) with their features and, given a mask, their BAC pixels.

    Args:
        probability: ``float32[H, W]`` the (gated) map on the view's grid.
        grey: ``uint8[H, W]`` the preprocessed view on the same grid.
        floor: the cut-off that makes the regions.
        spacing_mm: the view's pixel size.
        truth: ``bool[H, W]`` the BAC mask, or ``None``.
        group: who the view belongs to (patient or view), for grouped cross-validation.
    """
    count, labels = marked_regions(probability, floor)
    features = _features(labels, count, grey, _spacing(spacing_mm, 1.0))
    pixels = np.bincount(labels.ravel(), minlength=count)[1:].astype(np.int64)
    if truth is None:
        bac = np.zeros_like(pixels)
    else:
        if truth.shape != labels.shape:
            raise ParameterError(f"the mask ({truth.shape}) and the probability map ({labels.shape}) differ in size.")
        bac = np.bincount(labels[np.asarray(truth, bool)], minlength=count)[1:].astype(np.int64)
    return RegionTable(features=features, pixels=pixels, bac_pixels=bac, groups=(group,) * (count - 1))


@dataclass(frozen=True)
class FilterEffect:
    """What a region filter took out of one view (the readouts' ``region_filter`` object).

    Attributes:
        floor: the filter's floor: regions are the 8-connected pixels with ``p > floor``.
        regions: regions of the view (after the gate, if any).
        dropped: of them, those the filter judged tissue and set to 0.
        dropped_px: pixels with ``p > floor`` in the dropped regions — at a cut-off equal to the floor (the weights'
            own when the trainer fitted it), the AM the filter removed.
        dropped_mm2: the same in mm² (4 decimals), ``None`` without a pixel spacing.
    """

    floor: float
    regions: int
    dropped: int
    dropped_px: int
    dropped_mm2: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``medlim bac quantify``'s ``region_filter``)."""
        return {"floor": self.floor, "regions": self.regions, "dropped": self.dropped,
                "dropped_px": self.dropped_px, "dropped_mm2": self.dropped_mm2}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FilterEffect:
        """The inverse of :meth:`to_dict`."""
        area = values.get("dropped_mm2")
        return cls(floor=float(values["floor"]), regions=int(values["regions"]), dropped=int(values["dropped"]),
                   dropped_px=int(values["dropped_px"]), dropped_mm2=None if area is None else float(area))

    @property
    def text(self) -> str:
        """In words, for the page and the command line's table."""
        from medlim.core.text import counted

        if self.regions == 0:
            return f"no region of p > {self.floor:g} to judge"
        if self.dropped == 0:
            return f"kept {'the' if self.regions == 1 else 'all'} {counted(self.regions, 'region')} of p > {self.floor:g}"
        area = f"{self.dropped_px:,} px" if self.dropped_mm2 is None else f"{self.dropped_mm2:,.2f} mm², {self.dropped_px:,} px"
        return f"dropped {self.dropped} of {counted(self.regions, 'region')} of p > {self.floor:g} as tissue ({area})"


def filter_regions(probability: np.ndarray, grey: np.ndarray, region_filter: RegionFilter,
                   spacing_mm: float | tuple[float, float] | None) -> np.ndarray:
    """The map with every region of ``p > floor`` the filter judges not BAC set to 0 (:func:`apply_region_filter`
    without its account)."""
    return apply_region_filter(probability, grey, region_filter, spacing_mm)[0]


def apply_region_filter(probability: np.ndarray, grey: np.ndarray, region_filter: RegionFilter,
                        spacing_mm: float | tuple[float, float] | None) -> tuple[np.ndarray, FilterEffect]:
    """The map with every region of ``p > floor`` the filter judges not BAC set to 0 (pixels ≤ floor unchanged;
    beyond :data:`MAX_REGIONS` regions only the largest are judged and the rest kept), and what was dropped.

    Args:
        probability: ``float32[H, W]`` on the view's grid (after the gate, if any).
        grey: ``uint8[H, W]`` the preprocessed view on the same grid.
        region_filter: the fitted filter.
        spacing_mm: the view's pixel size (``None``: the filter's own for the features, no mm² in the account).
    """
    from medlim.core.spacing import spacing_pair

    p = np.asarray(probability, dtype=np.float32)
    count, labels = marked_regions(p, region_filter.floor)
    if count <= 1:
        return p, FilterEffect(region_filter.floor, 0, 0, 0, None if spacing_mm is None else 0.0)
    areas = np.bincount(labels.ravel(), minlength=count)
    judged = _largest(areas, MAX_REGIONS)
    judged_labels = np.where(judged[labels], labels, 0)
    features = _features(judged_labels, count, grey, _spacing(spacing_mm, region_filter.spacing_mm))
    keep = np.ones(count, dtype=bool)
    present = judged[1:]
    keep[1:][present] = region_filter.scores(features[present]) >= region_filter.threshold
    dropped_px = int(areas[1:][~keep[1:]].sum())
    pair = None if spacing_mm is None else spacing_pair(spacing_mm)
    effect = FilterEffect(region_filter.floor, count - 1, int(np.count_nonzero(~keep[1:])), dropped_px,
                          None if pair is None else round(dropped_px * pair[0] * pair[1], 4))
    return np.where(keep[labels], p, np.float32(0.0)), effect


def _largest(areas: np.ndarray, limit: int) -> np.ndarray:
    """``bool[count]`` marking the ``limit`` largest regions of the per-label pixel counts ``areas`` (label 0, the
    background, never marked; every region when there are no more than ``limit``)."""
    chosen = np.zeros(areas.shape[0], dtype=bool)
    chosen[1 + np.argsort(-areas[1:], kind="stable")[:limit]] = True
    return chosen


def _fit_logistic(features: np.ndarray, is_bac: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardisation and class-balanced L2 logistic regression: ``(mean, scale, coef, intercept)``."""
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=_C, max_iter=5000, class_weight="balanced")
    model.fit((features - mean) / scale, is_bac.astype(int))
    return mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0])


def keeping_threshold(scores: np.ndarray, bac_pixels: np.ndarray, keep: float = KEEP_BAC_PIXELS) -> float:
    """The highest score threshold whose kept regions (score ≥ threshold) hold at least ``keep`` of ``bac_pixels``.

    Regions with no BAC pixels never lower it; with no BAC pixels at all it is 0 (keep everything).
    """
    total = float(np.sum(bac_pixels))
    if total <= 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    held = np.cumsum(np.asarray(bac_pixels, np.float64)[order]) / total
    position = int(np.searchsorted(held, keep - 1e-12))
    return float(np.asarray(scores)[order][min(position, len(order) - 1)])


def fit_region_filter(table: RegionTable, *, floor: float, spacing_mm: float, keep: float = KEEP_BAC_PIXELS,
                      folds: int = 5) -> tuple[RegionFilter | None, dict[str, Any]]:
    """Fit a filter on labelled regions; ``(None, record)`` when there are too few of either kind.

    The threshold comes from out-of-fold scores (patient-grouped when the table has several groups), the
    coefficients from all regions.

    Returns:
        ``(filter or None, record)``: the record says how many regions and groups served, how the threshold was
        chosen, and the out-of-fold share of BAC pixels kept and of false pixels removed at it.
    """
    is_bac = table.is_bac
    record: dict[str, Any] = {"regions": len(table), "bac_regions": int(is_bac.sum()),
                              "other_regions": int((~is_bac).sum()), "groups": len(set(table.groups)),
                              "keep_bac_pixels": keep}
    if is_bac.sum() < MIN_REGIONS or (~is_bac).sum() < MIN_REGIONS:
        record["skipped"] = f"fewer than {MIN_REGIONS} regions of BAC or of tissue to learn from"
        return None, record
    groups = np.asarray(table.groups)
    unique = sorted(set(table.groups))
    scores = np.zeros(len(table))
    if len(unique) >= 2:
        splits = min(folds, len(unique))
        fold_of = {g: i % splits for i, g in enumerate(unique)}
        fold = np.array([fold_of[g] for g in groups])
        for k in range(splits):
            test = fold == k
            train = ~test
            if is_bac[train].sum() < 2 or (~is_bac[train]).sum() < 2:
                scores[test] = 1.0  # too few to fit without this fold: keep its regions
                continue
            mean, scale, coef, intercept = _fit_logistic(table.features[train], is_bac[train])
            scores[test] = _sigmoid(((table.features[test] - mean) / scale) @ coef + intercept)
        record["threshold_from"] = f"out-of-fold scores, {splits} folds by group"
    else:
        mean, scale, coef, intercept = _fit_logistic(table.features, is_bac)
        scores = _sigmoid(((table.features - mean) / scale) @ coef + intercept)
        record["threshold_from"] = "in-sample scores (one group only)"
    threshold = keeping_threshold(scores, table.bac_pixels, keep)
    kept = scores >= threshold
    false = table.pixels - table.bac_pixels
    record["bac_pixels_kept"] = round(float(table.bac_pixels[kept].sum() / max(table.bac_pixels.sum(), 1)), 4)
    record["false_pixels_removed"] = round(float(1.0 - false[kept].sum() / max(false.sum(), 1)), 4)
    mean, scale, coef, intercept = _fit_logistic(table.features, is_bac)
    fitted = RegionFilter(floor=float(floor), mean=tuple(map(float, mean)), scale=tuple(map(float, scale)),
                          coef=tuple(map(float, coef)), intercept=intercept, threshold=float(threshold),
                          spacing_mm=float(spacing_mm))
    record["threshold"] = round(float(threshold), 6)
    return fitted, record
