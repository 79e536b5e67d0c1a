"""'Unlike my training data': a check calibrated on a model's own training images (issue 13).

Every segmentation model may carry, beside its weights, a small JSON record of
what its training images looked like *as the model saw them* (after the
weights' preprocessing). Each new input is described by the same handful of
numbers and scored by its robust Mahalanobis distance to that record; an input
beyond the stored limit still gets its numbers, with a plain-language warning
and ``unlike_training: {score, threshold, flagged}`` beside them.

The description (:func:`image_features`, :data:`FEATURE_NAMES`) is model-agnostic
and cheap (pure numpy; a few milliseconds on a 4096×3328 image): the image is
block-averaged onto a grid of about :data:`GRID` pixels on its long side and
described by its foreground (fraction, fill of its bounding box, share of the
border), intensity quantiles inside and outside the foreground, gradient and
Laplacian statistics, local contrast at three scales, histogram entropy,
pixel-scale contrast on the full-resolution rows and colour saturation.

The fit (:func:`fit_familiarity`) centres each feature on its median, scales
it by its standard deviation with a floor (so a feature constant in training
still counts), winsorises the standardised values and estimates a Ledoit–Wolf
shrunk covariance (Ledoit & Wolf, J. Multivar. Anal. 2004; at least 10 %
shrinkage); optionally it drops the calibration images farthest from a first
fit and fits again. The score is ``sqrt(zᵀ P z)``. The limit is the larger of a
margin over a high quantile of the calibration scores and the smallest limit
that flags at most ``max_validation_rate`` of a separate validation set of
in-distribution images; both figures are recorded.

Room-specific calibration (which training images, which preprocessing) lives
in each room, e.g. :mod:`medlim.mammography.familiarity`; storing the record
beside registered weights is :func:`attach_familiarity`, and a trainer that has
just registered a model on a person's folder calls :func:`attach_training_check`
with the features of that run's training and validation images (issue 12).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ChecksumError, ParameterError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.weights.entry import WeightsEntry

__all__ = [
    "FAMILIARITY_FORMAT",
    "FEATURE_NAMES",
    "GRID",
    "SCORE_REASON",
    "FamiliarityCheck",
    "FamiliarityResult",
    "MIN_CALIBRATION_IMAGES",
    "attach_familiarity",
    "attach_training_check",
    "attach_input_checks",
    "familiarity_file_name",
    "fit_familiarity",
    "grid_features",
    "image_features",
    "load_familiarity",
    "unlike_training_warning",
]

#: Version of the JSON layout and of the feature definitions (bumped when either changes).
FAMILIARITY_FORMAT = 1

#: Long side, in pixels, of the grid the image is block-averaged onto.
GRID = 256

#: The features of :func:`image_features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "foreground_fraction",
    "foreground_bbox_fill",
    "foreground_border_share",
    "foreground_sides",
    "edge_falloff",
    "inside_q05",
    "inside_q25",
    "inside_q50",
    "inside_q75",
    "inside_q95",
    "outside_mean",
    "outside_q95",
    "gradient_mean",
    "gradient_q90",
    "laplacian_mean_abs",
    "contrast_r1",
    "contrast_r3",
    "contrast_r7",
    "histogram_entropy",
    "pixel_contrast",
    "saturation_mean",
)

#: Fewest calibration images a check is fitted on.
MIN_CALIBRATION_IMAGES = 8

#: ``FamiliarityResult.reason`` of an input flagged by its score.
SCORE_REASON = "score above the limit"

#: Smallest scale a feature is standardised by: 0.3 % of the [0, 1] range, or 5 % of its median
#: (chosen with the BAC calibration and validation phantoms, seeds 2 and 80001, and wrong-kind images of
#: seeds 1-2; the tests measure other seeds). A lower absolute floor flags the 0.28 mm "small" phantoms too.
_SCALE_FLOOR_ABS = 0.003
_SCALE_FLOOR_REL = 0.05
#: Standardised values are clipped to this before the covariance is estimated (winsorising).
_CLIP_Z = 10.0


# -- features -------------------------------------------------------------------------------


def _as_unit_float(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(grey, saturation)`` of a grey or RGB image, after checking its dtype.

    A grey image comes back as it is (no full-size float copy: it is scaled by
    :func:`_unit_scale` once block-averaged); a colour image as its channel mean,
    float32 in [0, 1], with its saturation (``None`` for a grey image).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        described = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ParameterError(f"image must be np.ndarray[H, W] or [H, W, 3]; {described} is given.")
    if image.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif image.dtype == np.uint16:
        scale = 1.0 / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        scale = 1.0
    else:
        raise ParameterError(f"image must be uint8, uint16 or float in [0, 1]; {image.dtype} is given.")
    if image.ndim == 2:
        return image, None
    if image.shape[2] not in (3, 4):
        raise ParameterError(f"a colour image must have 3 or 4 channels; {image.shape[2]} is given.")
    rgb = image[..., :3].astype(np.float32) * np.float32(scale)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0).astype(np.float32)
    return rgb.mean(axis=2), saturation


def _unit_scale(image: np.ndarray) -> float:
    if image.dtype == np.uint8:
        return 1.0 / 255.0
    if image.dtype == np.uint16:
        return 1.0 / 65535.0
    return 1.0


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor × factor`` blocks (the image cropped to whole blocks), float64."""
    rows, cols = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    cropped = image[:rows, :cols]
    if factor == 1:
        return cropped.astype(np.float64)
    dtype = np.uint32 if cropped.dtype in (np.uint8, np.uint16, np.bool_) else np.float64
    # Rows first, then columns: two passes over the big image's rows, no full float copy.
    summed = cropped.reshape(rows // factor, factor, cols).sum(axis=1, dtype=dtype)
    summed = summed.reshape(rows // factor, cols // factor, factor).sum(axis=2, dtype=np.float64)
    return summed / float(factor * factor)


def _box_mean(grid: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the ``(2r+1)²`` box around each pixel (edges replicated), by an integral image."""
    padded = np.pad(grid, radius + 1, mode="edge")
    integral = padded.cumsum(axis=0).cumsum(axis=1)
    size = 2 * radius + 1
    rows, cols = grid.shape
    a = integral[size:size + rows, size:size + cols]
    b = integral[:rows, size:size + cols]
    c = integral[size:size + rows, :cols]
    d = integral[:rows, :cols]
    return (a - b - c + d) / float(size * size)


def _quantiles(values: np.ndarray, probabilities: Sequence[float]) -> list[float]:
    if values.size == 0:
        return [0.0] * len(probabilities)
    return [float(v) for v in np.quantile(values, probabilities)]


def _foreground_shape(inside: np.ndarray) -> list[float]:
    """Fraction of the grid, fill of its bounding box, share of the four sides' pixels (corners on
    both of their sides), and share of the four sides at least a quarter covered (a breast meets one side, the chest wall;
    a radiograph or a slide with a grey background meets all four)."""
    area = int(inside.sum())
    if area == 0:
        return [0.0, 0.0, 0.0, 0.0]
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    sides = (inside[0], inside[-1], inside[:, 0], inside[:, -1])
    border = np.concatenate(sides)
    touched = sum(float(side.mean()) >= 0.25 for side in sides) / 4.0
    return [area / inside.size, area / float(box), float(border.mean()), touched]


def _edge_falloff(small: np.ndarray, inside: np.ndarray, *, band: int = 4) -> float:
    """Mean grey of the foreground's outer band (within ``band`` grid pixels of the background,
    not of the image's edge) over the mean of the rest of the foreground; 1 without such a band.

    A breast thins towards the skin line, so its rim is darker than its body.
    """
    core = inside.copy()
    for _ in range(band):  # erosion by a 3×3 cross; pixels beyond the image edge count as foreground
        padded = np.pad(core, 1, mode="edge")
        core = core & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    rim = inside & ~core
    if not rim.any() or not core.any():
        return 1.0
    return float(min(2.0, small[rim].mean() / max(float(small[core].mean()), 1e-6)))


def _texture(grid: np.ndarray, inside: np.ndarray) -> list[float]:
    """Gradient, Laplacian and local-contrast statistics inside the foreground."""
    if not inside.any() or min(grid.shape) < 2:  # a gradient needs two pixels each way (a 1-px sliver of an image)
        return [0.0] * 6
    dy, dx = np.gradient(grid)
    gradient = np.hypot(dx, dy)[inside]
    padded = np.pad(grid, 1, mode="edge")
    laplacian = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4.0 * grid)[inside]
    contrast = [float(np.abs(grid - _box_mean(grid, r))[inside].mean()) for r in (1, 3, 7)]
    return [float(gradient.mean()), float(np.quantile(gradient, 0.9)), float(np.abs(laplacian).mean()), *contrast]


def _pixel_contrast(image: np.ndarray, foreground: np.ndarray | None, factor: int) -> float:
    """Mean |difference| of horizontal neighbours at full resolution, on every ``factor``-th row, inside the foreground.

    The only feature read at the file's own resolution: it sees pixel-scale noise
    and sharpness that block averaging removes (another detector, another pixel size).
    """
    rows = image[::factor].astype(np.float32) * np.float32(_unit_scale(image))
    if rows.ndim == 3:
        rows = rows[..., :3].mean(axis=2)
    difference = np.abs(np.diff(rows, axis=1))
    if foreground is None:
        return float(difference.mean()) if difference.size else 0.0
    keep = foreground[::factor, 1:] & foreground[::factor, :-1]
    return float(difference[keep].mean()) if keep.any() else 0.0


def image_features(image: np.ndarray, *, foreground: np.ndarray | None = None, grid: int = GRID) -> np.ndarray:
    """Describe an image as the model sees it by the numbers of :data:`FEATURE_NAMES`.

    Args:
        image: ``np.ndarray[H, W]`` or ``[H, W, 3]``: uint8, uint16 or float in [0, 1]
            (the image after the model's preprocessing).
        foreground: ``np.bool_[H, W]``, the region the model reads (e.g. the breast
            mask); ``None``: the whole image.
        grid: long side of the grid the image is block-averaged onto.

    Returns:
        ``np.float64[len(FEATURE_NAMES)]``, values in [0, 1] (``edge_falloff`` in [0, 2]).

    Raises:
        ParameterError: an image of another shape or dtype, or a foreground of another size.
    """
    grey, saturation = _as_unit_float(image)
    if foreground is not None and (not isinstance(foreground, np.ndarray) or foreground.shape != image.shape[:2]):
        raise ParameterError(f"foreground must be a boolean array of shape {image.shape[:2]}.")
    factor = max(1, math.ceil(max(image.shape[:2]) / int(grid)))
    small = _block_mean(grey, factor) * _unit_scale(grey)
    if foreground is None:
        inside = np.ones(small.shape, dtype=bool)
    else:
        inside = _block_mean(foreground.astype(np.uint8, copy=False), factor) > 0.5
    small_saturation = None if saturation is None else _block_mean(saturation, factor)
    return grid_features(small, inside, pixel_contrast=_pixel_contrast(image, foreground, factor),
                         saturation=small_saturation)


def grid_features(
    small: np.ndarray, inside: np.ndarray, *, pixel_contrast: float, saturation: np.ndarray | None = None
) -> np.ndarray:
    """:data:`FEATURE_NAMES` of an image already block-averaged onto the grid.

    Args:
        small: ``np.float64[h, w]`` grey in [0, 1].
        inside: ``np.bool_[h, w]`` foreground.
        pixel_contrast: the full-resolution feature (:func:`_pixel_contrast`).
        saturation: ``np.float64[h, w]`` colour saturation, or ``None`` for a grey image.
    """
    values = small[inside]
    outside = small[~inside]
    counts = np.histogram(values, bins=32, range=(0.0, 1.0))[0] if values.size else np.zeros(32)
    share = counts[counts > 0] / max(1, counts.sum())
    entropy = float(-(share * np.log(share)).sum() / math.log(32)) if share.size else 0.0
    mean_saturation = float(saturation[inside].mean()) if saturation is not None and inside.any() else 0.0
    features = [
        *_foreground_shape(inside),
        _edge_falloff(small, inside),
        *_quantiles(values, (0.05, 0.25, 0.5, 0.75, 0.95)),
        float(outside.mean()) if outside.size else 0.0,
        _quantiles(outside, (0.95,))[0],
        *_texture(small, inside),
        entropy,
        pixel_contrast,
        mean_saturation,
    ]
    return np.asarray(features, dtype=np.float64)


# -- the stored check -----------------------------------------------------------------------


@dataclass(frozen=True)
class FamiliarityResult:
    """How far one input lies from a model's training images.

    Attributes:
        score: robust Mahalanobis distance of the input's features to the training images (≥ 0).
        threshold: the stored limit; above it the input is flagged.
        flagged: ``score > threshold``, or another reason the caller knows (``reason``).
        reason: why it is flagged, in words (``None`` when it is not).
    """

    score: float
    threshold: float
    flagged: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"score", "threshold", "flagged", "reason"}`` (score and threshold to 2 decimals): the JSON
        object ``unlike_training`` of a readout."""
        return {"score": round(self.score, 2), "threshold": round(self.threshold, 2), "flagged": self.flagged,
                "reason": self.reason}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FamiliarityResult:
        """The result from :meth:`to_dict`'s form."""
        return cls(score=float(data["score"]), threshold=float(data["threshold"]), flagged=bool(data["flagged"]),
                   reason=data.get("reason"))


def unlike_training_warning(result: FamiliarityResult, *, kind: str = "an image") -> str:
    """The sentence shown beside the numbers of a flagged input.

    Args:
        result: the flagged result.
        kind: what the model expects, e.g. ``"a mammogram"``.
    """
    values = result.to_dict()  # the numbers of the JSON object, so the sentence and the object agree
    return (
        f"This image looks unlike the images the model was trained on (score {values['score']:.2f}, "
        f"limit {values['threshold']:.2f}): check that it is {kind} of the kind this model expects; "
        "the numbers may be wrong."
    )


def _matrix(rows: Any, *, size: int, what: str) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape != (size, size) or not np.all(np.isfinite(matrix)):
        raise WeightsError(f"the familiarity check's {what} must be a finite {size}×{size} matrix.")
    return matrix


@dataclass(frozen=True)
class FamiliarityCheck:
    """A fitted reference of a model's training images (the content of ``<model>.familiarity.json``).

    Attributes:
        feature_names: the features, in order (:data:`FEATURE_NAMES` of the format).
        mean: per-feature centre (raw units).
        scale: per-feature scale (raw units, ≥ the floor).
        precision: inverse of the shrunk covariance of the standardised features.
        threshold: the limit on the score.
        n_calibration: images the reference was fitted on.
        source: plain description of those images.
        selection: how the limit was chosen and which data served what (seeds, counts,
            quantiles, validation flag rate), for people.
        grid: grid long side the features were computed on.
    """

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    precision: tuple[tuple[float, ...], ...]
    threshold: float
    n_calibration: int
    source: str = ""
    selection: Mapping[str, Any] = field(default_factory=dict, hash=False)  # a dict: left out of the hash
    grid: int = GRID

    def __post_init__(self) -> None:
        size = len(self.feature_names)
        if size == 0 or len(self.mean) != size or len(self.scale) != size:
            raise WeightsError("the familiarity check needs one mean and one scale per feature.")
        if any(not math.isfinite(s) or s <= 0 for s in self.scale):
            raise WeightsError("the familiarity check's scales must be positive numbers.")
        _matrix(self.precision, size=size, what="precision")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise WeightsError(f"the familiarity threshold must be a positive number; {self.threshold!r} is given.")
        object.__setattr__(self, "selection", dict(self.selection))

    def score(self, features: np.ndarray) -> float:
        """Robust Mahalanobis distance of ``features`` (``np.float64[F]``, in :attr:`feature_names` order)."""
        values = np.asarray(features, dtype=np.float64)
        if values.shape != (len(self.feature_names),):
            raise ParameterError(f"expected {len(self.feature_names)} features; {values.shape} is given.")
        z = (values - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(math.sqrt(max(0.0, float(z @ np.asarray(self.precision) @ z))))

    def evaluate(self, features: np.ndarray) -> FamiliarityResult:
        """Score ``features`` against the limit."""
        score = self.score(features)
        flagged = score > self.threshold
        return FamiliarityResult(score=score, threshold=self.threshold, flagged=flagged,
                                 reason=SCORE_REASON if flagged else None)

    def check_image(self, image: np.ndarray, *, foreground: np.ndarray | None = None) -> FamiliarityResult:
        """:meth:`evaluate` of :func:`image_features` of ``image`` (as the model sees it).

        Raises:
            WeightsError: the record was fitted on other features than this medlim computes.
        """
        self._check_feature_names()
        return self.evaluate(image_features(image, foreground=foreground, grid=self.grid))

    def check_features(self, features: np.ndarray) -> FamiliarityResult:
        """:meth:`evaluate` of :func:`image_features` a room computed its own way (e.g. on fixed-size blocks).

        Raises:
            WeightsError: the record was fitted on other features than this medlim computes.
        """
        self._check_feature_names()
        return self.evaluate(features)

    def _check_feature_names(self) -> None:
        if tuple(self.feature_names) != FEATURE_NAMES:
            raise WeightsError(
                "the familiarity check stored with these weights describes images by other features than this "
                "medlim computes; recalibrate it (`medlim weights calibrate-familiarity`)."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FAMILIARITY_FORMAT,
            "feature_names": list(self.feature_names),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "precision": [[float(v) for v in row] for row in self.precision],
            "threshold": float(self.threshold),
            "n_calibration": int(self.n_calibration),
            "grid": int(self.grid),
            "source": self.source,
            "selection": dict(self.selection),
        }

    def to_json(self) -> str:
        """The file's text: indented JSON, keys in a fixed order (the same check, the same bytes)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FamiliarityCheck:
        """Read :meth:`to_json`'s text.

        Raises:
            WeightsError: not JSON, a newer format, or a malformed record.
        """
        try:
            data = json.loads(text)
            if int(data.get("format", 0)) > FAMILIARITY_FORMAT:
                raise WeightsError(
                    f"the familiarity check has format {data['format']}; this medlim reads {FAMILIARITY_FORMAT}. "
                    "Update medlim."
                )
            return cls(
                feature_names=tuple(str(n) for n in data["feature_names"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                precision=tuple(tuple(float(v) for v in row) for row in data["precision"]),
                threshold=float(data["threshold"]),
                n_calibration=int(data["n_calibration"]),
                source=str(data.get("source", "")),
                selection=dict(data.get("selection") or {}),
                grid=int(data.get("grid", GRID)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WeightsError(f"the familiarity check is malformed: {exc}") from None


# -- fitting --------------------------------------------------------------------------------


def _ledoit_wolf(z: np.ndarray, *, min_shrinkage: float) -> np.ndarray:
    """Covariance of centred rows ``z`` shrunk towards ``μ·I`` (Ledoit & Wolf 2004), at least ``min_shrinkage``."""
    n, p = z.shape
    sample = z.T @ z / n
    mu = float(np.trace(sample)) / p
    target = mu * np.eye(p)
    d2 = float(((sample - target) ** 2).sum())
    outer = np.einsum("ni,nj->nij", z, z)
    b2 = min(float(((outer - sample) ** 2).sum()) / n**2, d2)
    shrinkage = max(min_shrinkage, b2 / d2 if d2 > 0 else 1.0)
    return shrinkage * target + (1.0 - shrinkage) * sample


def _reference(features: np.ndarray, *, min_shrinkage: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, scale, precision)`` of a feature matrix ``[N, F]``.

    Centred on the median, scaled by the standard deviation (at least the floor:
    a feature constant in training, such as the saturation of grey images, still
    counts), winsorised at ±10 before the covariance. The standard deviation and
    not the MAD: dense breasts are a legitimate tenth of the training images, and
    a MAD scale made them outliers of their own training set.
    """
    median = np.median(features, axis=0)
    floor = np.maximum(_SCALE_FLOOR_ABS, _SCALE_FLOOR_REL * np.abs(median))
    scale = np.maximum(features.std(axis=0), floor)
    z = np.clip((features - median) / scale, -_CLIP_Z, _CLIP_Z)
    centre = z.mean(axis=0)
    covariance = _ledoit_wolf(z - centre, min_shrinkage=min_shrinkage)
    mean = median + centre * scale
    return mean, scale, np.linalg.inv(covariance)


def _scores(features: np.ndarray, mean: np.ndarray, scale: np.ndarray, precision: np.ndarray) -> np.ndarray:
    z = (features - mean) / scale
    return np.sqrt(np.maximum(0.0, np.einsum("ni,ij,nj->n", z, precision, z)))


def _validation_limit(scores: np.ndarray, max_rate: float) -> float:
    """The smallest limit that flags at most ``max_rate`` of ``scores`` (a flag is ``score > limit``)."""
    allowed = int(math.floor(max_rate * scores.size + 1e-9))
    ordered = np.sort(scores)[::-1]
    return float(ordered[min(allowed, ordered.size - 1)])


def fit_familiarity(
    features: np.ndarray,
    *,
    validation: np.ndarray | None = None,
    quantile: float = 0.995,
    margin: float = 1.1,
    max_validation_rate: float = 0.02,
    trim: float = 0.0,
    min_shrinkage: float = 0.1,
    source: str = "",
    selection: Mapping[str, Any] | None = None,
    feature_names: Sequence[str] = FEATURE_NAMES,
    grid: int = GRID,
) -> FamiliarityCheck:
    """Fit a reference to calibration features and choose its limit.

    Args:
        features: ``np.float64[N, F]``, one row per calibration (training) image, N ≥ 8.
        validation: ``np.float64[M, F]`` of other in-distribution images that choose
            the limit with the calibration images; ``None``: the calibration rule only.
        quantile: quantile of the calibration scores the limit starts from.
        margin: factor on that quantile.
        max_validation_rate: the limit is raised until at most this share of the
            validation images is flagged.
        trim: share of calibration images farthest from the first fit left out of a second
            fit (0: one fit; the BAC calibration keeps every training image).
        min_shrinkage: least weight of the identity target in the covariance.
        source: plain description of the calibration images.
        selection: what served what (seeds, counts), recorded beside the figures below.
        feature_names: names of the columns.
        grid: grid the features were computed on (recorded).

    Returns:
        The :class:`FamiliarityCheck`; its ``selection`` records the calibration quantile,
        the validation limit and the shares of calibration and validation images flagged.

    Raises:
        ParameterError: too few rows, non-finite features or bad options.
    """
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < MIN_CALIBRATION_IMAGES or matrix.shape[1] != len(feature_names):
        raise ParameterError(f"calibration needs at least 8 rows of {len(feature_names)} features; {matrix.shape} given.")
    if not np.all(np.isfinite(matrix)) or (validation is not None and not np.all(np.isfinite(validation))):
        raise ParameterError("calibration features must be finite.")
    if not (0.5 <= quantile <= 1.0 and margin >= 1.0 and 0.0 <= max_validation_rate < 1.0 and 0.0 <= trim < 0.5):
        raise ParameterError("quantile in [0.5, 1], margin ≥ 1, validation rate in [0, 1) and trim in [0, 0.5) are required.")
    mean, scale, precision = _reference(matrix, min_shrinkage=min_shrinkage)
    first = _scores(matrix, mean, scale, precision)
    keep = first <= np.quantile(first, 1.0 - trim) if trim > 0 else np.ones(len(first), dtype=bool)
    mean, scale, precision = _reference(matrix[keep], min_shrinkage=min_shrinkage)
    calibration_scores = _scores(matrix, mean, scale, precision)
    from_calibration = margin * float(np.quantile(calibration_scores, quantile))
    record: dict[str, Any] = dict(selection or {})
    record.update(quantile=quantile, margin=margin, calibration_limit=round(from_calibration, 4), trim=trim,
                  min_shrinkage=min_shrinkage)
    threshold = from_calibration
    if validation is not None and len(validation):
        validation_scores = _scores(np.asarray(validation, dtype=np.float64), mean, scale, precision)
        from_validation = _validation_limit(validation_scores, max_validation_rate)
        threshold = max(threshold, from_validation)
        record.update(max_validation_rate=max_validation_rate, validation_limit=round(from_validation, 4),
                      n_validation=int(len(validation_scores)),
                      validation_flagged=float(np.mean(validation_scores > threshold)),
                      validation_score_max=round(float(validation_scores.max()), 4))
    record.update(calibration_flagged=float(np.mean(calibration_scores > threshold)),
                  calibration_score_max=round(float(calibration_scores.max()), 4))
    return FamiliarityCheck(
        feature_names=tuple(feature_names),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        precision=tuple(tuple(float(v) for v in row) for row in precision),
        threshold=float(threshold),
        n_calibration=int(matrix.shape[0]),
        source=source,
        selection=record,
        grid=grid,
    )


# -- stored with the weights ----------------------------------------------------------------


def familiarity_file_name(name: str, version: str) -> str:
    """``<name>-<version>.familiarity.json``: the file beside ``<name>-<version>.safetensors``."""
    return f"{name}-{version}.familiarity.json"


def load_familiarity(entry: WeightsEntry) -> FamiliarityCheck | None:
    """The check stored with ``entry`` (file read once, sha256 checked against the manifest), or ``None``.

    Raises:
        WeightsError: the file is missing, outside the weights folder or malformed.
        ChecksumError: its sha256 differs from the manifest.
    """
    path = entry.familiarity_path
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(
            f"the training-data check of {entry.label} is missing: {path}. Restore it or recalibrate it with "
            f"`medlim weights calibrate-familiarity {entry.label}`."
        ) from None
    except OSError as exc:
        raise WeightsError(f"the training-data check {path} cannot be read: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    expected = str(entry.familiarity.get("sha256"))
    if actual != expected:
        raise ChecksumError(
            f"the training-data check {path} does not match the manifest for {entry.label} "
            f"(sha256 {actual}, expected {expected}); it was changed or damaged."
        )
    try:
        return FamiliarityCheck.from_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WeightsError(f"the training-data check {path} is not text: {exc}") from None


def attach_familiarity(
    entry: WeightsEntry, check: FamiliarityCheck, *, command: str = "", summary: Mapping[str, Any] | None = None
) -> WeightsEntry:
    """Write ``check`` beside the entry's weights file and record it (file, sha256) in its manifest.

    The entry must belong to a registry folder (``entry.root``, as returned by
    :meth:`medlim.core.weights.Registries.register`). The manifest is read again,
    the entry replaced by one whose ``familiarity`` names the file, and saved.

    Args:
        entry: the registered weights.
        check: the fitted check.
        command: the ``medlim`` command that reproduces the file (recorded).
        summary: a few figures to record in the manifest beside the file (threshold,
            seeds, flag rates); default: the threshold and ``check.selection``.

    Returns:
        The updated entry, bound to its registry.

    Raises:
        WeightsError: the entry has no registry folder or is not in that folder's manifest.
    """
    from medlim.core.weights.registry import Registry

    if entry.root is None:
        raise WeightsError(f"{entry.label} belongs to no registry folder; register it before attaching its check.")
    registry = Registry.load(entry.root)
    current = registry.get(entry.name, entry.version)
    text = check.to_json().encode("utf-8")
    file = familiarity_file_name(entry.name, entry.version)
    record: dict[str, Any] = {"file": file, "sha256": hashlib.sha256(text).hexdigest()}
    if command:
        record["command"] = command
    record.update(dict(summary) if summary is not None else {"threshold": round(check.threshold, 4),
                                                             "n_calibration": check.n_calibration,
                                                             **check.selection})
    updated = registry.bind(dataclasses.replace(current, familiarity=record))
    path = updated.familiarity_path
    assert path is not None
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    partial.replace(path)
    registry.add(updated)
    registry.save_manifest()
    return updated


def attach_training_check(
    entry: WeightsEntry,
    training: np.ndarray,
    validation: np.ndarray | None,
    *,
    source: str,
    selection: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[WeightsEntry, dict[str, Any]]:
    """Fit the check of a just-trained model on its own training images and store it with the entry.

    The record's command is the entry's training command: training again on the
    same data reproduces the file.

    Args:
        entry: the registered weights (bound to their registry folder).
        training: ``np.float64[N, F]`` features of the run's training images, as the model saw them.
        validation: ``np.float64[M, F]`` features of the run's validation images (they choose the limit), or ``None``.
        source: plain description of the images (never a path or a patient's name).
        selection: what served what (counts, seeds), recorded in the file.
        progress: progress lines.

    Returns:
        ``(entry, summary)``: the entry with its check (unchanged when fewer than
        :data:`MIN_CALIBRATION_IMAGES` training images left nothing to fit), and
        ``{"threshold", "n_calibration", "n_validation", "validation_flagged"}`` or
        ``{"skipped": reason}`` for the command's result line.
    """
    rows = np.asarray(training, dtype=np.float64).reshape(len(training), -1)
    if len(rows) < MIN_CALIBRATION_IMAGES:
        reason = (f"{len(rows)} training images, at least {MIN_CALIBRATION_IMAGES} are needed for the "
                  "'unlike my training data' check; the model carries none")
        if progress is not None:
            progress(f"no training-data check: {reason}")
        return entry, {"skipped": reason}
    check = fit_familiarity(rows, validation=None if validation is None or not len(validation) else validation,
                            source=source, selection=selection)
    updated = attach_familiarity(entry, check, command=entry.provenance.command or "")
    summary = {"threshold": round(check.threshold, 4), "n_calibration": check.n_calibration,
               "n_validation": int(check.selection.get("n_validation", 0)),
               "validation_flagged": check.selection.get("validation_flagged")}
    if progress is not None:
        progress(f"training-data check fitted on {check.n_calibration} training images (limit {check.threshold:.2f})")
    return updated, summary


def attach_input_checks(
    entries: Sequence[WeightsEntry],
    training: Sequence[np.ndarray] | np.ndarray,
    validation: Sequence[np.ndarray] | np.ndarray | None,
    *,
    dataset: str,
    what: str = "training images",
    progress: Callable[[str], None] | None = None,
) -> tuple[tuple[WeightsEntry, ...], dict[str, dict[str, Any]]]:
    """The check of models that read images as given (already resized to their input), for each entry.

    Every entry gets the same check, fitted on :func:`image_features` of the
    training images (the whole image is the foreground), its limit chosen with
    the validation images (:func:`attach_training_check`).

    Args:
        entries: the registered weights trained on these images.
        training: the training images, each ``np.ndarray[H, W]`` or ``[H, W, 3]`` (uint8, uint16 or float in [0, 1]).
        validation: in-distribution validation images, or ``None``.
        dataset: the user dataset's fingerprint id (recorded; never a path).
        what: what the training images are, in words (e.g. ``"ID training images"``).
        progress: progress lines.

    Returns:
        ``(entries, summaries)``: the updated entries in order and ``name → summary``.
    """
    rows = np.stack([image_features(image) for image in training]) if len(training) else np.zeros((0, 0))
    validation_rows = (np.stack([image_features(image) for image in validation])
                       if validation is not None and len(validation) else None)
    selection = {"dataset": dataset, "calibration": {"images": len(rows), "role": what},
                 "validation": {"images": 0 if validation_rows is None else len(validation_rows),
                                "role": "validation images (choose the limit)"}}
    source = f"{len(rows)} {what} of the user dataset {dataset}, at the model's input size"
    updated, summaries = [], {}
    for entry in entries:
        checked, summary = attach_training_check(entry, rows, validation_rows, source=source, selection=selection,
                                                 progress=progress)
        updated.append(checked)
        summaries[entry.name] = summary
    return tuple(updated), summaries
