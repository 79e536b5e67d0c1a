"""Acquisition statistics kept beside a detector trained on a user's folder (issues 12–13; a stated deviation).

TEND, CVAD and the AE baseline read an image at their input side (64 px by
default, thesis §4.1.3), where area down-sampling washes out what another
site's acquisition does to the pixels — noise, sharpness, grid lines,
exposure. MedShift already fuses its class detectors with the acquisition
statistics of :mod:`medlim.curation.image_statistics`; this module gives a
single detector the same companion, fitted when it is trained
(``medlim train tend|cvad --data DIR``, on by default, ``--stats off`` leaves it
out) and stored in its manifest entry (``params["acquisition"]``):

* a robust Gaussian reference (:class:`~medlim.curation.image_statistics.AcquisitionReference`)
  of the statistics, at :data:`~medlim.curation.image_statistics.STATS_SIZE` px,
  of the ID training images;
* the medians of the ID validation images' detector score and statistics
  distance, which make each a ratio (1 = a typical internal image);
* the fused score ``max(detector ratio, statistics ratio)`` (MedShift's rule) and
  its threshold, the G-mean threshold of the fused validation scores (ID
  validation images against the validation OOD examples), as the detector's own
  threshold is calibrated.

A detector carrying it reads images at 256 px (the network still sees them at
its side) and scores them fused; ``medlim ood score|evaluate --stats off`` and the
OOD page's switch score the detector alone, with its own threshold — the thesis.
Nothing is trained on distortions. Shipped detectors trained before this carry
no companion and score as before.

Measured (README "OOD detectors on another site's images"; 230 internal humerus
radiographs, fresh held-out internal against another site's humerus, AUROC
fused / alone), with the 25 statistics of 2026-12-06 (seeds 41202/41203,
42202/42203): family A TEND 0.963 / 0.899, CVAD 0.972 / 0.941, AE 0.980 /
0.877; family B 1.000 / 0.609, 1.000 / 0.547, 1.000 / 0.726 (measured just
before a refactor that leaves the 1 px border out of the half-size unclipped
noise; the validation AUROCs of the statistics did not change). With the first
17 (seeds 41102/41103, 42102/42103): family A 0.962, 0.961, 0.970; family B
0.743, 0.787, 0.861 — family B's images are clipped (air black, bone white),
where the first version's noise figures read 0. A detector stored with the
first 17 keeps scoring on them (:class:`~medlim.curation.image_statistics.AcquisitionReference`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlim.curation.image_statistics import (
    FUSION_RULES,
    STATS_SIZE,
    AcquisitionReference,
    acquisition_feature_matrix,
    fit_acquisition_reference,
    fuse_ratios,
)
from medlim.errors import ParameterError

__all__ = ["COMPANION_KEY", "AcquisitionCompanion", "statistics_features", "fit_companion"]

#: Key of the companion in a detector's manifest ``params``.
COMPANION_KEY = "acquisition"


@dataclass(frozen=True)
class AcquisitionCompanion:
    """The acquisition-statistics companion of one detector.

    Attributes:
        reference: fitted on the ID training images' statistics.
        deep_median, stats_median: medians of the ID validation images' detector score and statistics distance (> 0).
        threshold: OOD when the fused score is at least this (G-mean on the fused validation scores).
        rule: how the two ratios are fused (:data:`~medlim.curation.image_statistics.FUSION_RULES`).
        size: side in px the statistics are computed at (images are brought to it).
        metrics: validation figures (AUROC of the detector alone, the statistics alone and fused; image counts).
    """

    reference: AcquisitionReference
    deep_median: float
    stats_median: float
    threshold: float
    rule: str = "max"
    size: int = STATS_SIZE
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in FUSION_RULES:
            raise ParameterError(f"`rule` must be one of {FUSION_RULES}, {self.rule!r} is given.")
        for name in ("deep_median", "stats_median"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ParameterError(f"`{name}` must be a positive number, {value!r} is given.")

    def distances(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Statistics distances ``np.float64[N]`` of images (any size: brought to :attr:`size` by the preset)."""
        features = statistics_features(images, self.size)
        return self.reference.score(features) if len(features) else np.zeros(0)

    def fuse(self, deep: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """The fused score of detector scores and statistics distances of the same images: ``np.float64[N]``."""
        return fuse_ratios(np.asarray(deep, np.float64) / self.deep_median,
                           np.asarray(stats, np.float64) / self.stats_median, rule=self.rule)

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference.to_dict(), "deep_median": self.deep_median,
                "stats_median": self.stats_median, "threshold": self.threshold, "rule": self.rule,
                "size": self.size, "metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AcquisitionCompanion:
        """The companion from :meth:`to_json`'s data.

        Raises:
            ParameterError: a field is missing or malformed.
        """
        try:
            return cls(reference=AcquisitionReference.from_dict(data["reference"]),
                       deep_median=float(data["deep_median"]), stats_median=float(data["stats_median"]),
                       threshold=float(data["threshold"]), rule=str(data.get("rule", "max")),
                       size=int(data.get("size", STATS_SIZE)), metrics=dict(data.get("metrics") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"a detector's acquisition statistics lack or mangle a field ({exc!s}).") from None


def statistics_features(images: Sequence[np.ndarray] | np.ndarray, size: int = STATS_SIZE) -> np.ndarray:
    """Acquisition features ``np.float64[N, F]`` of images brought to ``size`` px by the ``ood-grey`` preset."""
    from medlim.curation.ood.data import to_model_input

    return acquisition_feature_matrix([to_model_input(image, size) for image in images])


def fit_companion(
    train_features: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    deep_val_scores: np.ndarray,
    *,
    rule: str = "max",
    size: int = STATS_SIZE,
) -> AcquisitionCompanion:
    """Fit the companion of a trained detector (module doc).

    Args:
        train_features: :func:`statistics_features` of the ID training images (at least 3 rows).
        val_features: those of the validation images (ID and OOD examples), in the order of ``val_labels``.
        val_labels: ``np.ndarray[M]`` int, 1 = OOD example; at least one ID image and one OOD example.
        deep_val_scores: the detector's scores of the validation images (``np.ndarray[M]``).
        rule: the fusion rule; size: the side in px the features were computed at.

    Raises:
        ParameterError: too few images, or features, labels and scores of different lengths.
    """
    from medlim.curation.ood.calibration import ood_metrics

    labels = np.asarray(val_labels, dtype=int)
    deep = np.asarray(deep_val_scores, dtype=np.float64)
    if len(labels) != len(val_features) or len(deep) != len(labels):
        raise ParameterError(f"{len(val_features)} validation feature rows, {len(labels)} labels and {len(deep)} "
                             "scores are given; they must match.")
    if not (labels == 0).any() or not (labels == 1).any():
        raise ParameterError("the acquisition statistics need ID validation images and OOD examples to calibrate.")
    reference = fit_acquisition_reference(train_features)
    stats = reference.score(val_features)
    provisional = AcquisitionCompanion(reference, max(float(np.median(deep[labels == 0])), 1e-12),
                                       max(float(np.median(stats[labels == 0])), 1e-12), threshold=np.inf,
                                       rule=rule, size=size)
    fused = provisional.fuse(deep, stats)
    calibrated = ood_metrics(labels, fused)
    metrics = {"validation_auroc_fused": calibrated.auroc, "validation_auroc_detector": ood_metrics(labels, deep).auroc,
               "validation_auroc_stats": ood_metrics(labels, stats).auroc, "n_train": len(train_features),
               "n_validation_id": int((labels == 0).sum()), "n_validation_ood": int((labels == 1).sum())}
    return AcquisitionCompanion(reference, provisional.deep_median, provisional.stats_median,
                                threshold=float(calibrated.threshold), rule=rule, size=size, metrics=metrics)
