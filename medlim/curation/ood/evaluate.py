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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlim.curation.ood.calibration import OodMetrics, ood_metrics, rates_at
from medlim.curation.ood.data import LabelledImages
from medlim.curation.ood.distortions import VALIDATION_TRANSFORMS, validation_transform
from medlim.curation.ood.labels import FolderLabels, auroc_notes, folder_labels, matching_class
from medlim.curation.ood.scoring import Detector, OodScores
from medlim.errors import ParameterError

__all__ = ["OodEvaluation", "setting_name", "transformed_set", "evaluate_detector", "class_labels", "evaluation_lines"]


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
        shift_types: shift type → ``{"images", "detected", "detected_gmean", "auroc"}``: how many
            shifted images of an ID class (or of no class) carry it, the share flagged OOD at the
            stored and at the held-out G-mean threshold, and the AUROC of those images against
            the held-out ID images (empty without shift types).
        id_folders: ``(class folder, ID class)`` pairs that made images ID
            (``("XR_HUMERUS", "humerus")``; see :mod:`medlim.curation.ood.labels`).
        notes: plain warnings about the labels and the AUROC (an AUROC below 0.5, a missing ID class).
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
    shift_types: dict[str, dict[str, float]] = field(default_factory=dict)
    id_folders: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def is_id_class(self, class_name: str) -> bool:
        """True when images of ``class_name`` count as ID (its name matches an ID class)."""
        return matching_class((class_name,), self.id_classes) is not None

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
            **({"shift_type_rate": {k: dict(v) for k, v in self.shift_types.items()}} if self.shift_types else {}),
            "id_folders": [list(pair) for pair in self.id_folders],
            "notes": list(self.notes),
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


def evaluate_detector(
    detector: Detector,
    data: LabelledImages,
    *,
    seed: int = 0,
    shifted: LabelledImages | None = None,
    shift_types: Sequence[str] = (),
) -> OodEvaluation:
    """Evaluate ``detector`` on held-out ``data`` (ID = the detector's classes).

    Args:
        detector: a loaded detector (its ``id_classes`` must be set).
        data: labelled held-out images at any size.
        seed: seed of the validation transforms.
        shifted: images that carry a shift type (scored apart from ``data``), or ``None``.
        shift_types: the shift type of each image of ``shifted``.
    """
    id_classes = detector.id_classes
    if not id_classes:
        raise ParameterError(f"detector {detector.name} records no ID classes; cannot evaluate.")
    labelled = class_labels(data.classes, id_classes)
    is_id = ~labelled.is_ood
    labels = labelled.is_ood.astype(int)
    if not labelled.usable:
        why = labelled.notes[0] if labelled.notes else f"classes {sorted(set(data.classes))} are given."
        raise ParameterError(f"cannot evaluate: the data must hold ID ({', '.join(id_classes)}) and OOD images; "
                             f"{why}")
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
    by_shift = _shift_rates(detector, shifted, shift_types, gmean_threshold=metrics.threshold,
                            id_scores=scores.score[is_id])
    return OodEvaluation(
        setting=setting_name(tuple(sorted({folder for folder, _ in labelled.matched})), tuple(data.classes)),
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
        shift_types=by_shift,
        id_folders=labelled.matched,
        notes=labelled.notes + auroc_notes(metrics.auroc, labelled),
    )


def class_labels(classes: Sequence[str], id_classes: Sequence[str]) -> FolderLabels:
    """ID/OOD labels of images by their class (a class folder's name, or a manifest's class column).

    The same tolerant rule as folder labels (:func:`medlim.curation.ood.labels.folder_labels`):
    class ``XR_HUMERUS`` is the detector's class ``humerus``. An image without a class is OOD.
    """
    return folder_labels([(c,) if c else () for c in classes], id_classes)


def _shift_rates(detector: Detector, shifted: LabelledImages | None, shift_types: Sequence[str], *,
                 gmean_threshold: float, id_scores: np.ndarray) -> dict[str, dict[str, float]]:
    """Shift type → images, the share detected at the stored and the G-mean threshold, AUROC against ID.

    Only shifted images of the detector's ID classes (or without a class) count: a shift is judged on
    the anatomy the detector calls normal (a shifted image of another class is OOD anyway).
    """
    from medlim.curation.ood.shift_types import shift_type_rows

    if shifted is None or not len(shifted):
        return {}
    if len(shift_types) != len(shifted):
        raise ParameterError(f"give one shift type per shifted image ({len(shifted)}), {len(shift_types)} are given.")
    other_class = class_labels(shifted.classes, detector.id_classes).is_ood
    keep = np.array([not c or not flag for c, flag in zip(shifted.classes, other_class)], dtype=bool)
    if not keep.any():
        return {}
    score = detector.score(shifted.images[keep]).score
    kinds = [kind for kind, flag in zip(shift_types, keep) if flag]
    rows = shift_type_rows(detector=detector.name, scores=score, shift_types=kinds, reference_scores=id_scores,
                           threshold=detector.threshold)
    gmean = shift_type_rows(detector=detector.name, scores=score, shift_types=kinds, reference_scores=id_scores,
                            threshold=gmean_threshold)
    return {row.shift_type: {"images": row.images, "detected": row.detected, "detected_gmean": at_gmean.detected,
                             "auroc": row.auroc} for row, at_gmean in zip(rows, gmean)}


def _rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]


def evaluation_lines(evaluation: OodEvaluation, *, detector: str = "") -> list[str]:
    """The evaluation as the thesis's tables (text lines).

    Table 4.3 style (AUROC, AUPR, FPR at 95 % TPR; G-mean threshold with TPR,
    FPR, DIFF), the stored threshold's rates, Table 4.5 style (share of each
    validation transform detected), the OOD rate per class and, when present,
    the share of each shift type detected.
    """
    from medlim.core.text import escape_control

    m = evaluation.metrics
    ids = ", ".join(escape_control(c) for c in evaluation.id_classes)
    lines = [f"{escape_control(detector) or 'detector'}: {evaluation.setting}, ID = {ids} "
             f"({m.n_id} ID / {m.n_ood} OOD images)"]
    renamed = [(folder, c) for folder, c in evaluation.id_folders if folder != c]
    if renamed:
        lines.append("ID folders: " + ", ".join(f"{escape_control(f)} → {escape_control(c)}" for f, c in renamed))
    lines += [f"note: {escape_control(note)}" for note in evaluation.notes]
    lines += ["", "detection (OOD = positive; Table 4.3):"]
    lines += _rows(("AUROC", "AUPR", "FPR@95%TPR", "G-mean t", "TPR", "FPR", "DIFF"),
                   [(f"{m.auroc:.3f}", f"{m.aupr:.3f}", f"{m.fpr_at_95_tpr:.3f}", f"{m.threshold:.4g}",
                     f"{m.tpr:.3f}", f"{m.fpr:.3f}", f"{m.diff:.3f}")])
    lines.append(f"  stored threshold {evaluation.stored_threshold:.4g}: TPR {evaluation.stored_tpr:.3f}, "
                 f"FPR {evaluation.stored_fpr:.3f}, DIFF {evaluation.stored_tpr - evaluation.stored_fpr:.3f}")
    lines += ["", "validation transforms of the ID images, share detected (Table 4.5):"]
    lines += _rows(("transform", "G-mean t", "stored t"),
                   [(name, f"{evaluation.transform_accuracy_gmean[name]:.3f}", f"{value:.3f}")
                    for name, value in evaluation.transform_accuracy.items()])
    lines += ["", "share predicted OOD per class (stored threshold):"]
    lines += _rows(("class", "ID/OOD", "predicted OOD"),
                   [(escape_control(c), "ID" if evaluation.is_id_class(c) else "OOD", f"{rate:.3f}")
                    for c, rate in evaluation.class_ood_rate.items()])
    if evaluation.shift_types:
        lines += ["", "ID images with a shift type, share detected and AUROC against the ID images:"]
        lines += _rows(("shift type", "images", "G-mean t", "stored t", "AUROC"),
                       [(escape_control(kind), str(int(v["images"])), f"{v['detected_gmean']:.3f}",
                         f"{v['detected']:.3f}", f"{v['auroc']:.3f}") for kind, v in evaluation.shift_types.items()])
    return lines
