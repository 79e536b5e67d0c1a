"""Acquisition statistics: a cheap score for the mild shifts deep detectors miss (issue 13).

CVAD and TEND (thesis ch. 4–5) read images at 64 px, where the area
down-sampling and the networks' own smoothing wash out what a mild change of
acquisition does to the pixels: a little blur or lost resolution, more noise,
faint anti-scatter grid lines, a small change of exposure or a brightness
ramp. This module describes an image at :data:`STATS_SIZE` px (the native side
of the radiograph phantoms; a file of another size is area-resized to it by the
``ood-grey`` preset) by :data:`ACQUISITION_FEATURES`:

* noise: a robust (MAD) estimate of the noise σ from Immerkær's 3×3 Laplacian
  difference (Immerkær, CVIU 1996), over the whole image, the darkest fifth
  (air: noise only) and the brightest third (both chosen on the image smoothed
  by σ = 2 px), and on the image halved (coarser grain);
* sharpness: the lag-1 correlation of neighbouring horizontal differences in
  the air (−0.5 for white noise; blur and lost resolution raise it), the log
  energy of the Laplacian at full size and of the gradient at half size;
* periodic lines: the log ratio of the highest to the median power of the
  row-mean and column-mean profiles (high-passed) at 0.15–0.5 cycles/px, the
  larger of the two;
* intensity: the 1st, 20th, 50th, 80th and 99th percentiles and the mean;
* background: the air level's difference between the left and right and the
  top and bottom halves (a brightness ramp), and the mean grey of a band just
  outside the object (a cast, a halo) above the air level;
* the unclipped pixels (added 2026-12-06): many radiographs are clipped — air
  burnt to black, bone or collimation to white — and where half an image sits
  at one value the noise and texture estimates above read 0. The pixels whose
  3×3 neighbourhood lies strictly inside the image's grey range (1 % of it from
  either end) give the noise σ at full and half size, the lag-1 correlation of
  neighbouring differences (noise texture: fine grain near −0.5, coarse grain
  higher), the 10th, 50th and 90th percentiles of their grey (the tone curve
  over the anatomy), and the shares of pixels clipped at the dark and the
  bright end.

:class:`AcquisitionReference` is fitted per class on internal images — centre
the median, scale the standard deviation (floored at 10⁻⁶; a feature constant
in the fit is scaled by 1 % of its median's magnitude, so it still counts), winsorised
at ±10, Ledoit–Wolf shrunk covariance with at least 10 % shrinkage, as
:mod:`medlim.core.familiarity` does with smaller floors: the radiograph
features here move by fractions of a percent under mild shifts, where the
familiarity check's 0.3 % absolute floor would hide them — and scores an image
by its robust Mahalanobis distance. Nothing is trained on distortions, so the
evaluation shifts cannot be training distortions in disguise; the feature
*list* was, however, chosen knowing which families of acquisition change the
named phantom shifts (:mod:`medlim.phantoms.radiograph_shifts`) contain, and
its figures on phantoms with one fixed internal acquisition are an upper bound
for data whose internal images already vary in acquisition.

:func:`fused_scores` combines the statistics score with a deep detector's
score: each is divided by the median of its class's held-back internal scores
(so 1 is a typical internal image; no other external image is involved) and
the two ratios are combined (``"max"`` or the geometric ``"mean"``).
:class:`medlim.curation.ood.scoring.AcquisitionDetector` is the statistics
alone as a single-image detector with a calibrated threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "STATS_SIZE",
    "ACQUISITION_FEATURES",
    "FIRST_FEATURES",
    "FUSION_RULES",
    "acquisition_features",
    "acquisition_feature_matrix",
    "AcquisitionReference",
    "fit_acquisition_reference",
    "score_ratio",
    "fused_scores",
    "fuse_ratios",
]

#: Side in px the statistics are computed at (the radiograph phantoms' native side).
STATS_SIZE = 256

#: The features of :func:`acquisition_features`, in order.
ACQUISITION_FEATURES: tuple[str, ...] = (
    "noise_all",
    "noise_dark",
    "noise_bright",
    "noise_half",
    "difference_correlation",
    "laplacian_log_energy",
    "gradient_half_log_energy",
    "periodic_peak",
    "q01",
    "q20",
    "q50",
    "q80",
    "q99",
    "mean",
    "air_left_right",
    "air_top_bottom",
    "rim_above_air",
    "noise_unclipped",
    "noise_half_unclipped",
    "difference_correlation_unclipped",
    "unclipped_q10",
    "unclipped_q50",
    "unclipped_q90",
    "clipped_dark",
    "clipped_bright",
)

#: The first version's features (2026-12-05): references stored with these score on them alone.
FIRST_FEATURES: tuple[str, ...] = ACQUISITION_FEATURES[:17]

#: Share of the image's grey range counted as clipped at either end (see :func:`_unclipped_features`).
_CLIP_MARGIN = 0.01

#: How :func:`fused_scores` combines the two calibrated ratios.
FUSION_RULES: tuple[str, ...] = ("max", "mean")

_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=np.float32) / 6.0
_MAD_TO_SIGMA = 1.4826
_CLIP_Z = 10.0


def _noise_sigma(residual: np.ndarray) -> float:
    """Robust σ of an Immerkær residual (white noise of σ gives σ)."""
    return float(_MAD_TO_SIGMA * np.median(np.abs(residual))) if residual.size else 0.0


def _difference_correlation(image: np.ndarray, mask: np.ndarray) -> float:
    """Lag-1 correlation of horizontal first differences where three neighbours lie in ``mask``."""
    difference = np.diff(image, axis=1)
    keep = mask[:, 2:] & mask[:, 1:-1] & mask[:, :-2]
    left, right = difference[:, :-1][keep].astype(np.float64), difference[:, 1:][keep].astype(np.float64)
    if left.size < 16:
        return -0.5
    left, right = left - left.mean(), right - right.mean()
    denominator = math.sqrt(float((left * left).sum()) * float((right * right).sum()))
    return float((left * right).sum() / denominator) if denominator > 0 else -0.5


def _periodic_peak(image: np.ndarray) -> float:
    """log(max / median) of the high-passed row- and column-mean profiles' power at 0.15–0.5 cycles/px (larger axis)."""
    import cv2

    peaks = []
    for axis in (0, 1):
        profile = image.mean(axis=axis).astype(np.float32)
        smooth = cv2.GaussianBlur(profile.reshape(1, -1), (0, 0), 3.0).ravel()
        power = np.abs(np.fft.rfft((profile - smooth).astype(np.float64))) ** 2
        frequency = np.fft.rfftfreq(profile.size)
        band = power[(frequency >= 0.15) & (frequency <= 0.5)]
        peaks.append(math.log((float(band.max()) + 1e-20) / (float(np.median(band)) + 1e-20)) if band.size else 0.0)
    return max(peaks)


def _unclipped_features(array: np.ndarray, residual: np.ndarray, half: np.ndarray,
                        half_residual: np.ndarray) -> list[float]:
    """The unclipped-pixel features (module doc) of a float32 image, its Immerkær residual ([1:-1, 1:-1]),
    its half-size image and that one's residual ([1:-1, 1:-1])."""
    import cv2

    low, high = float(array.min()), float(array.max())
    margin = _CLIP_MARGIN * (high - low)
    dark, bright = array <= low + margin, array >= high - margin
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode((~dark & ~bright).astype(np.uint8), kernel, borderType=cv2.BORDER_REFLECT) > 0
    half_inner = cv2.erode(cv2.resize(inner.astype(np.uint8), (half.shape[1], half.shape[0]),
                                      interpolation=cv2.INTER_NEAREST), kernel, borderType=cv2.BORDER_REFLECT) > 0
    values = array[inner]
    quantiles = (np.quantile(values, (0.1, 0.5, 0.9)) if values.size >= 16
                 else np.full(3, 0.5 * (low + high)))
    return [_noise_sigma(residual[inner[1:-1, 1:-1]]), _noise_sigma(half_residual[half_inner[1:-1, 1:-1]]),
            _difference_correlation(array, inner), *(float(q) for q in quantiles),
            float(dark.mean()), float(bright.mean())]


def acquisition_features(image: np.ndarray) -> np.ndarray:
    """Describe one grey image by :data:`ACQUISITION_FEATURES`.

    Args:
        image: ``np.ndarray[H, W]`` float in [0, 1], best at :data:`STATS_SIZE` px (H, W ≥ 16).

    Returns:
        ``np.float64[len(ACQUISITION_FEATURES)]``.

    Raises:
        ParameterError: not a 2-D image of sides ≥ 16.
    """
    import cv2

    array = np.ascontiguousarray(image, dtype=np.float32)
    if array.ndim != 2 or min(array.shape) < 16:
        raise ParameterError(f"acquisition statistics need a grey image with sides ≥ 16, shape {np.shape(image)} is given.")
    residual = cv2.filter2D(array, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    q01, q20, q50, q80, q99 = (float(v) for v in np.quantile(array, (0.01, 0.2, 0.5, 0.8, 0.99)))
    # regions by the smoothed image (σ 2 px), so that choosing them hardly chooses the pixels' own noise
    smooth = cv2.GaussianBlur(array, (0, 0), 2.0)
    dark_level, bright_level = (float(v) for v in np.quantile(smooth, (0.2, 0.7)))
    air = smooth <= dark_level
    dark, bright = air[1:-1, 1:-1], (smooth >= bright_level)[1:-1, 1:-1]
    half = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    half_residual = cv2.filter2D(half, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    laplacian = cv2.Laplacian(array, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    gy, gx = np.gradient(half.astype(np.float64))
    # the object: clearly brighter than the air; the rim: a band of about 6 % of the side just outside it
    inside = (smooth > q20 + 0.08).astype(np.uint8)
    reach = max(2, int(round(0.06 * array.shape[0])))
    near = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    touch = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    rim = (near > 0) & (touch == 0)
    rows, cols = array.shape
    left, right = air[:, : cols // 2], air[:, cols // 2 :]
    top, bottom = air[: rows // 2], air[rows // 2 :]

    def air_mean(part: np.ndarray, where: np.ndarray) -> float:
        return float(part[where].mean()) if where.any() else q20

    air_level = float(array[air].mean()) if air.any() else q20
    features = [
        _noise_sigma(residual),
        _noise_sigma(residual[dark]),
        _noise_sigma(residual[bright]),
        _noise_sigma(half_residual),
        _difference_correlation(array, air),
        math.log(float((laplacian.astype(np.float64) ** 2).mean()) + 1e-12),
        math.log(float((gx * gx + gy * gy).mean()) + 1e-12),
        _periodic_peak(array),
        q01, q20, q50, q80, q99,
        float(array.mean()),
        air_mean(array[:, : cols // 2], left) - air_mean(array[:, cols // 2 :], right),
        air_mean(array[: rows // 2], top) - air_mean(array[rows // 2 :], bottom),
        (float(array[rim].mean()) if rim.any() else air_level) - air_level,
        *_unclipped_features(array, residual, half, half_residual),
    ]
    return np.asarray(features, dtype=np.float64)


def acquisition_feature_matrix(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """:func:`acquisition_features` of each image: ``np.float64[N, F]`` (``[0, F]`` for no image)."""
    rows = [acquisition_features(image) for image in images]
    return np.stack(rows) if rows else np.zeros((0, len(ACQUISITION_FEATURES)), np.float64)


@dataclass(frozen=True)
class AcquisitionReference:
    """A robust Gaussian reference of internal images' acquisition features.

    Attributes:
        centre: ``np.float64[F]`` per-feature centre; scale: ``np.float64[F]`` (> 0).
        precision: ``np.float64[F, F]`` inverse of the shrunk covariance of the standardised features.
        n_images: images it was fitted on.
        feature_names: the features it was fitted on, in order: :data:`ACQUISITION_FEATURES`, or
            :data:`FIRST_FEATURES` for a reference stored by the first version (it keeps scoring on those).
    """

    centre: np.ndarray
    scale: np.ndarray
    precision: np.ndarray
    n_images: int
    feature_names: tuple[str, ...] = ACQUISITION_FEATURES

    def score(self, features: np.ndarray) -> np.ndarray:
        """Robust Mahalanobis distances ``np.float64[N]`` (≥ 0) of ``features``.

        Args:
            features: ``np.float64[N, F]``, :func:`acquisition_feature_matrix` rows (all of
                :data:`ACQUISITION_FEATURES`; a reference of fewer features takes its own columns) or rows of
                exactly this reference's features.
        """
        matrix = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if (matrix.shape[1] == len(ACQUISITION_FEATURES) and self.centre.size != matrix.shape[1]
                and set(self.feature_names) <= set(ACQUISITION_FEATURES)):
            matrix = matrix[:, [ACQUISITION_FEATURES.index(name) for name in self.feature_names]]
        if matrix.shape[1] != self.centre.size:
            raise ParameterError(f"expected {self.centre.size} features per image, {matrix.shape[1]} are given.")
        z = np.clip((matrix - self.centre) / self.scale, -1e6, 1e6)
        return np.sqrt(np.maximum(0.0, np.einsum("ni,ij,nj->n", z, self.precision, z)))

    def to_dict(self) -> dict[str, Any]:
        return {"feature_names": list(self.feature_names), "centre": self.centre.tolist(),
                "scale": self.scale.tolist(), "precision": self.precision.tolist(), "n_images": self.n_images}

    @classmethod
    def from_dict(cls, data: Any) -> AcquisitionReference:
        """The reference from :meth:`to_dict`'s data.

        Raises:
            ParameterError: features this version does not compute, or arrays of the wrong shape or not finite.
        """
        try:
            names = tuple(data["feature_names"])
            centre, scale = np.asarray(data["centre"], np.float64), np.asarray(data["scale"], np.float64)
            precision, n_images = np.asarray(data["precision"], np.float64), int(data["n_images"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"an acquisition reference lacks or mangles a field ({exc!s}).") from None
        if names not in (ACQUISITION_FEATURES, FIRST_FEATURES):
            raise ParameterError("the acquisition reference was fitted on other features than this version computes.")
        size = len(names)
        if centre.shape != (size,) or scale.shape != (size,) or precision.shape != (size, size) or not (
                np.all(np.isfinite(centre)) and np.all(scale > 0) and np.all(np.isfinite(precision))):
            raise ParameterError("an acquisition reference has arrays of the wrong shape or non-finite values.")
        return cls(centre=centre, scale=scale, precision=precision, n_images=n_images, feature_names=names)


def _ledoit_wolf(z: np.ndarray, min_shrinkage: float) -> np.ndarray:
    """Covariance of centred rows shrunk towards ``μ·I`` (Ledoit & Wolf 2004), at least ``min_shrinkage``."""
    n, p = z.shape
    sample = z.T @ z / n
    mu = float(np.trace(sample)) / p
    target = mu * np.eye(p)
    d2 = float(((sample - target) ** 2).sum())
    b2 = min(float(sum(((np.outer(row, row) - sample) ** 2).sum() for row in z)) / n**2, d2)
    shrinkage = max(min_shrinkage, b2 / d2 if d2 > 0 else 1.0)
    return shrinkage * target + (1.0 - shrinkage) * sample


def fit_acquisition_reference(features: np.ndarray, *, min_shrinkage: float = 0.1) -> AcquisitionReference:
    """Fit :class:`AcquisitionReference` to internal images' features.

    Args:
        features: ``np.float64[N, F]``, N ≥ 3: :data:`ACQUISITION_FEATURES` (or :data:`FIRST_FEATURES`) columns;
            columns of another count are named ``f0``, ``f1``, … (such a reference cannot be stored).
        min_shrinkage: least weight of the identity target in the covariance.

    Raises:
        ParameterError: fewer than 3 rows or non-finite features.
    """
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 3 or not np.all(np.isfinite(matrix)):
        raise ParameterError(f"an acquisition reference needs at least 3 rows of finite features; {matrix.shape} given.")
    median = np.median(matrix, axis=0)
    spread = matrix.std(axis=0)
    scale = np.maximum(spread, np.maximum(1e-6, 0.01 * np.abs(median) * (spread == 0)))
    z = np.clip((matrix - median) / scale, -_CLIP_Z, _CLIP_Z)
    offset = z.mean(axis=0)
    covariance = _ledoit_wolf(z - offset, min_shrinkage)
    names = ACQUISITION_FEATURES if matrix.shape[1] == len(ACQUISITION_FEATURES) else tuple(
        FIRST_FEATURES if matrix.shape[1] == len(FIRST_FEATURES) else (f"f{i}" for i in range(matrix.shape[1])))
    return AcquisitionReference(centre=median + offset * scale, scale=scale, precision=np.linalg.inv(covariance),
                                n_images=int(matrix.shape[0]), feature_names=names)


def score_ratio(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``scores`` divided by the median of ``reference`` (held-back internal scores of the same detector and class)."""
    reference = np.asarray(reference, dtype=np.float64)
    if reference.size == 0:
        raise ParameterError("a calibrated ratio needs at least one reference score.")
    return np.asarray(scores, dtype=np.float64) / max(float(np.median(reference)), 1e-12)


def fused_scores(deep: np.ndarray, deep_reference: np.ndarray, stats: np.ndarray, stats_reference: np.ndarray, *,
                 rule: str = "max") -> np.ndarray:
    """Combine a deep detector's score with the acquisition-statistics score of the same images.

    Args:
        deep, stats: ``np.ndarray[N]`` scores (≥ 0) of one class's images.
        deep_reference, stats_reference: the class's held-back internal scores of each.
        rule: ``"max"`` (an image is as unusual as its more unusual view) or ``"mean"`` (geometric mean).

    Returns:
        ``np.ndarray[N]`` float64 > 0; 1 is a typical internal image.
    """
    return fuse_ratios(score_ratio(deep, deep_reference), score_ratio(stats, stats_reference), rule=rule)


def fuse_ratios(deep: np.ndarray, stats: np.ndarray, *, rule: str = "max") -> np.ndarray:
    """Combine two calibrated ratios (1 = a typical internal image) by ``rule`` (:data:`FUSION_RULES`)."""
    if rule not in FUSION_RULES:
        raise ParameterError(f"`rule` must be one of {FUSION_RULES}, {rule!r} is given.")
    a = np.maximum(np.asarray(deep, dtype=np.float64), 1e-6)
    b = np.maximum(np.asarray(stats, dtype=np.float64), 1e-6)
    return np.maximum(a, b) if rule == "max" else np.sqrt(a * b)
