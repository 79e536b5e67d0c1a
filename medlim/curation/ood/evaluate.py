"""Evaluation of OOD detectors on labelled held-out data (thesis §4.1.3, Tables 4.3–4.6).

The detector's in-distribution classes define the setting: one ID class and
the rest OOD is *one-vs-rest*; all classes but one as ID is *rest-vs-one*.
Reported: AUROC, AUPR, FPR at 95 % TPR and the G-mean threshold with its TPR,
FPR, DIFF on the held-out scores (as the thesis does), the TPR/FPR of the
threshold stored at training time, per-class OOD rates, and — as thesis
Table 4.5 — the accuracy of detecting the four validation transforms applied to
the held-out ID images (all of them OOD, so accuracy = share with ``s ≥ t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.curation.ood.calibration import OodMetrics, ood_metrics, rates_at
from medlim.curation.ood.data import LabelledImages
from medlim.curation.ood.distortions import VALIDATION_TRANSFORMS, validation_transform
from medlim.curation.ood.scoring import Detector, OodScores
from medlim.errors import ParameterError

__all__ = ["OodEvaluation", "setting_name", "transformed_set", "evaluate_detector"]


@dataclass(frozen=True)
class OodEvaluation:
    """Evaluation of one detector on one labelled set.

    Attributes:
        setting: ``"one-vs-rest"``, ``"rest-vs-one"`` or ``"custom"``.
        id_classes: the detector's ID classes.
        metrics: held-out metrics (G-mean threshold chosen on these scores).
        stored_threshold: the calibrated threshold saved with the weights.
        stored_tpr, stored_fpr: rates of ``s ≥ stored_threshold`` on the held-out set.
        transform_accuracy: validation transform → share detected at the stored threshold.
        transform_accuracy_gmean: the same at the held-out G-mean threshold (thesis protocol).
        class_ood_rate: class → share predicted OOD at the stored threshold.
        scores: the held-out scores (labels: 1 = OOD).
        labels: ``np.ndarray[N]`` int.
    """

    setting: str
    id_classes: tuple[str, ...]
    metrics: OodMetrics
    stored_threshold: float
    stored_tpr: float
    stored_fpr: float
    transform_accuracy: dict[str, float]
    transform_accuracy_gmean: dict[str, float]
    class_ood_rate: dict[str, float]
    scores: OodScores
    labels: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no per-image arrays)."""
        return {
            "setting": self.setting,
            "id_classes": list(self.id_classes),
            **{k: v for k, v in self.metrics.to_dict().items()},
            "gmean_threshold": self.metrics.threshold,
            "stored_threshold": self.stored_threshold,
            "stored_tpr": self.stored_tpr,
            "stored_fpr": self.stored_fpr,
            "stored_diff": self.stored_tpr - self.stored_fpr,
            "transform_accuracy": dict(self.transform_accuracy),
            "transform_accuracy_gmean": dict(self.transform_accuracy_gmean),
            "class_ood_rate": dict(self.class_ood_rate),
        }


def setting_name(id_classes: tuple[str, ...], all_classes: tuple[str, ...]) -> str:
    """``"one-vs-rest"`` (1 ID class), ``"rest-vs-one"`` (all but one) or ``"custom"``."""
    present = sorted(set(all_classes))
    if len(id_classes) == 1 and len(present) > 1:
        return "one-vs-rest"
    if len(present) - len(set(id_classes) & set(present)) == 1:
        return "rest-vs-one"
    return "custom"


def transformed_set(images: np.ndarray, name: str, *, seed: int) -> np.ndarray:
    """Validation transform ``name`` applied to each image (image ``k`` with stream ``(seed, name, k)``)."""
    from medlim.phantoms.base import rng_for

    return np.stack([validation_transform(image, name, rng_for(seed, "ood-validation", name, k))
                     for k, image in enumerate(images)]) if len(images) else images


def evaluate_detector(detector: Detector, data: LabelledImages, *, seed: int = 0) -> OodEvaluation:
    """Evaluate ``detector`` on held-out ``data`` (ID = the detector's classes).

    Args:
        detector: a loaded detector (its ``id_classes`` must be set).
        data: labelled held-out images at any size.
        seed: seed of the validation transforms.
    """
    id_classes = detector.id_classes
    if not id_classes:
        raise ParameterError(f"detector {detector.name} records no ID classes; cannot evaluate.")
    is_id = data.in_classes(id_classes)
    labels = (~is_id).astype(int)
    if is_id.all() or not is_id.any():
        raise ParameterError(
            f"held-out data must hold ID ({', '.join(id_classes)}) and OOD images; "
            f"classes {sorted(set(data.classes))} are given.")
    scores = detector.score(data.images, files=data.files)
    metrics = ood_metrics(labels, scores.score)
    stored_tpr, stored_fpr = rates_at(labels, scores.score, detector.threshold)
    id_images = data.images[is_id]
    transform_accuracy, transform_gmean = {}, {}
    for name in VALIDATION_TRANSFORMS:
        transformed = detector.score(transformed_set(id_images, name, seed=seed)).score
        transform_accuracy[name] = float((transformed >= detector.threshold).mean())
        transform_gmean[name] = float((transformed >= metrics.threshold).mean())
    classes = np.asarray(data.classes)
    class_rate = {c: float(scores.is_ood[classes == c].mean()) for c in sorted(set(data.classes))}
    return OodEvaluation(
        setting=setting_name(id_classes, tuple(data.classes)),
        id_classes=id_classes,
        metrics=metrics,
        stored_threshold=detector.threshold,
        stored_tpr=stored_tpr,
        stored_fpr=stored_fpr,
        transform_accuracy=transform_accuracy,
        transform_accuracy_gmean=transform_gmean,
        class_ood_rate=class_rate,
        scores=scores,
        labels=labels,
    )
