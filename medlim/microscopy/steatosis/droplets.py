"""Per-droplet features and the pathologist's cutoffs (thesis §3.2.3, Fig. 3.5).

Every detected droplet is described by its area, perimeter, eccentricity and
detection score. A pathologist keeps droplets whose features lie inside
cutoffs *relative to the mean over the detected droplets* — thesis defaults:
area in [0.001, 6] × mean, perimeter in [0.5, 4] × mean, eccentricity in
[0.2, 1.5] × mean — plus a minimum score. The retained count, their
morphology and the steatosis fraction (retained droplet area / tissue area)
are the readout; discarded droplets are shown distinctly.

Applying cutoffs is vectorised over a cached :class:`DropletTable`, so moving
a slider never recomputes the segmentation (benchmarked in
``benchmarks/bench_steatosis.py``: target ≤ 0.2 s for 1,000 droplets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from medlim.errors import ParameterError

__all__ = [
    "NASH_CRN_BANDS",
    "DONOR_BANDS",
    "Cutoffs",
    "DropletTable",
    "CutoffResult",
    "droplet_table",
    "apply_cutoffs",
    "kept_labels",
    "tissue_mask",
    "grade",
]

#: NASH-CRN steatosis grade bands, % of tissue: (upper bound exclusive, grade name).
NASH_CRN_BANDS: tuple[tuple[float, str], ...] = ((5.0, "S0 (< 5 %)"), (34.0, "S1 (5–33 %)"),
                                                 (67.0, "S2 (34–66 %)"), (float("inf"), "S3 (> 66 %)"))
#: Donor-liver assessment bands, % of tissue.
DONOR_BANDS: tuple[tuple[float, str], ...] = ((5.0, "< 5 %"), (30.0, "5–29 %"), (float("inf"), "≥ 30 %"))


@dataclass(frozen=True)
class Cutoffs:
    """Cutoffs relative to the mean over detected droplets, plus a minimum score.

    Attributes:
        area, perimeter, eccentricity: ``(low, high)`` multiples of the mean
            (thesis defaults (0.001, 6), (0.5, 4), (0.2, 1.5)).
        min_score: minimum detection score in [0, 1].
    """

    area: tuple[float, float] = (0.001, 6.0)
    perimeter: tuple[float, float] = (0.5, 4.0)
    eccentricity: tuple[float, float] = (0.2, 1.5)
    min_score: float = 0.5

    def __post_init__(self) -> None:
        for name in ("area", "perimeter", "eccentricity"):
            low, high = (float(v) for v in getattr(self, name))
            if not 0 <= low <= high:
                raise ParameterError(f"`{name}` cutoffs must satisfy 0 ≤ low ≤ high, {getattr(self, name)} is given.")
            object.__setattr__(self, name, (low, high))
        if not 0 <= float(self.min_score) <= 1:
            raise ParameterError(f"`min_score` must be in [0, 1], {self.min_score} is given.")

    def as_dict(self) -> dict[str, object]:
        """JSON-able form (for presets and reports)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "Cutoffs":
        """Inverse of :meth:`as_dict` (unknown keys rejected)."""
        known = {"area", "perimeter", "eccentricity", "min_score"}
        unknown = set(data) - known
        if unknown:
            raise ParameterError(f"unknown cutoff keys {sorted(unknown)}; known: {sorted(known)}.")
        values = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in data.items()}
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DropletTable:
    """Features of every detected droplet (index ``i`` is label ``i + 1``).

    Attributes:
        area: ``np.ndarray[n]`` float64, px².
        perimeter: ``np.ndarray[n]`` float64, px.
        eccentricity: ``np.ndarray[n]`` float64 in [0, 1) (of the moment ellipse).
        score: ``np.ndarray[n]`` float64 in [0, 1].
        centroid: ``np.ndarray[n, 2]`` float64 (row, col).
        tissue_area: tissue px of the image (for the steatosis fraction).
    """

    area: np.ndarray
    perimeter: np.ndarray
    eccentricity: np.ndarray
    score: np.ndarray
    centroid: np.ndarray
    tissue_area: float

    def __len__(self) -> int:
        return int(len(self.area))

    def rows(self, kept: np.ndarray | None = None) -> list[dict[str, object]]:
        """One dict per droplet (label, features, kept) for CSV export."""
        kept = np.ones(len(self), bool) if kept is None else np.asarray(kept, bool)
        return [
            {"label": i + 1, "row": round(float(self.centroid[i, 0]), 2), "col": round(float(self.centroid[i, 1]), 2),
             "area": float(self.area[i]), "perimeter": round(float(self.perimeter[i]), 3),
             "eccentricity": round(float(self.eccentricity[i]), 4), "score": round(float(self.score[i]), 4),
             "kept": bool(kept[i])}
            for i in range(len(self))
        ]


@dataclass(frozen=True)
class CutoffResult:
    """Result of applying cutoffs.

    Attributes:
        kept: ``np.ndarray[n]`` bool.
        means: the feature means the relative cutoffs were taken from.
        detected, kept_count: counts.
        kept_area: px² of kept droplets.
        steatosis_fraction: kept area / tissue area (0 with no tissue).
    """

    kept: np.ndarray
    means: dict[str, float]
    detected: int
    kept_count: int
    kept_area: float
    steatosis_fraction: float


def droplet_table(labels: np.ndarray, scores: np.ndarray, *, tissue_area: float | None = None) -> DropletTable:
    """Features of every droplet in a label image.

    Args:
        labels: ``np.ndarray[H, W]`` int labels 1..n (0 = none).
        scores: ``np.ndarray[n]`` detection scores (score of label ``k`` at ``k − 1``).
        tissue_area: tissue px; None uses the whole image.

    Returns:
        :class:`DropletTable`.
    """
    from skimage import measure

    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    n = int(labels.max()) if labels.size else 0
    if len(scores) != n:
        raise ParameterError(f"{len(scores)} scores for {n} labels.")
    area = np.zeros(n)
    eccentricity = np.zeros(n)
    perimeter = np.zeros(n)
    centroid = np.zeros((n, 2))
    for region in measure.regionprops(labels):
        i = region.label - 1
        area[i] = region.area
        eccentricity[i] = region.eccentricity
        perimeter[i] = region.perimeter
        centroid[i] = region.centroid
    return DropletTable(area=area, perimeter=perimeter, eccentricity=eccentricity, score=scores,
                        centroid=centroid, tissue_area=float(labels.size if tissue_area is None else tissue_area))


def apply_cutoffs(table: DropletTable, cutoffs: Cutoffs = Cutoffs()) -> CutoffResult:
    """Keep droplets inside the relative cutoffs and above the minimum score (vectorised).

    Means are taken over all detected droplets in the table (thesis: "times of
    the average steatosis").
    """
    n = len(table)
    if n == 0:
        return CutoffResult(kept=np.zeros(0, bool), means={"area": 0.0, "perimeter": 0.0, "eccentricity": 0.0},
                            detected=0, kept_count=0, kept_area=0.0, steatosis_fraction=0.0)
    means = {"area": float(table.area.mean()), "perimeter": float(table.perimeter.mean()),
             "eccentricity": float(table.eccentricity.mean())}
    kept = table.score >= cutoffs.min_score
    for name in ("area", "perimeter", "eccentricity"):
        values = getattr(table, name)
        low, high = getattr(cutoffs, name)
        kept &= (values >= low * means[name]) & (values <= high * means[name])
    kept_area = float(table.area[kept].sum())
    fraction = kept_area / table.tissue_area if table.tissue_area > 0 else 0.0
    return CutoffResult(kept=kept, means=means, detected=n, kept_count=int(kept.sum()), kept_area=kept_area,
                        steatosis_fraction=float(fraction))


def kept_labels(labels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Label image of kept droplets only, renumbered 1..k (uint16 when it fits, else int32)."""
    kept = np.asarray(kept, bool)
    lookup = np.zeros(len(kept) + 1, np.int64)
    lookup[1:][kept] = np.arange(1, int(kept.sum()) + 1)
    out = lookup[np.asarray(labels)]
    return out.astype(np.uint16 if out.max(initial=0) < 65536 else np.int32)


def tissue_mask(image: np.ndarray, *, max_droplet_radius: float = 45.0) -> np.ndarray:
    """Tissue pixels: everything but white regions too wide to be a droplet (glass, lumina).

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB (uint8 or float in [0, 1]).

    Returns:
        ``np.ndarray[H, W]`` bool.
    """
    from medlim.microscopy.steatosis.weak import background_mask, grey_image, white_mask

    white, _ = white_mask(grey_image(image))
    background = background_mask(white, max_droplet_radius=max_droplet_radius)
    return ~ndimage.binary_dilation(background, iterations=2)


def grade(percent: float, bands: tuple[tuple[float, str], ...] = NASH_CRN_BANDS) -> str:
    """The band a steatosis percentage falls in (bands as :data:`NASH_CRN_BANDS`).

    Percentages are rounded to whole numbers first, as pathologists report them.
    """
    value = round(float(percent))
    for upper, name in bands:
        if value < upper:
            return name
    return bands[-1][1]
