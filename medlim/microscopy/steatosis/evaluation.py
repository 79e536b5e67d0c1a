"""Evaluation of droplet segmentations on held-out H&E phantoms (thesis §3.2.3, Table 3.2 protocol).

Thesis Table 3.2 reports average precision, recall, F1-score and Jaccard for
the weak-label method ("Clump seg") and the networks, with droplets matched
at mask IoU ≥ 0.5. Definitions used here (per image, then averaged over the
images, as the thesis averages its 19 test images):

* matches: one-to-one at mask IoU ≥ 0.5 (:func:`medlim.core.metrics.instance_metrics`);
* recall, precision, F1: matched / truth, matched / predicted, 2·matched / (truth + predicted);
* Jaccard: mean IoU of the matched droplets (a segmentation-quality score);
* AP: area under the precision–recall curve of the detections ranked by
  score (all-point interpolation, greedy matching in score order). A method
  without scores (the weak labels) has one operating point, so its AP is
  precision × recall; plain precision is reported beside it.

The network's recall/precision/F1/Jaccard use detections with score ≥
``min_score`` (0.5). Held-out phantoms come from a seed the training never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from medlim.core.metrics import instance_metrics, iou_matrix
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.weak import weak_labels
from medlim.phantoms.he import generate_he

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "HELD_OUT_SEED",
    "ImageScores",
    "average_precision",
    "ranked_matches",
    "score_labels",
    "evaluate_methods",
]

#: Default seed of ``medlim steatosis evaluate`` (training uses seed 11).
HELD_OUT_SEED = 7


@dataclass(frozen=True)
class ImageScores:
    """Scores of one method on one image."""

    method: str
    index: int
    n_true: int
    n_pred: int
    ap: float
    precision: float
    recall: float
    f1: float
    jaccard: float
    seconds: float


def ranked_matches(truth_labels: np.ndarray, pred_labels: np.ndarray, scores: np.ndarray, *,
                   iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching in score order (the detection-AP protocol).

    Args:
        truth_labels: ``np.ndarray[H, W]`` int labels.
        pred_labels: ``np.ndarray[H, W]`` int labels 1..n.
        scores: ``np.ndarray[n]`` score of label ``k`` at ``k − 1``.

    Returns:
        ``(scores, is_true_positive, n_true)`` for the predicted objects present.
    """
    iou, truth_ids, pred_ids = iou_matrix(truth_labels, pred_labels)
    scores = np.asarray(scores, np.float64)
    if len(pred_ids) == 0:
        return np.zeros(0), np.zeros(0, bool), len(truth_ids)
    pred_scores = scores[pred_ids - 1]
    order = np.argsort(-pred_scores, kind="stable")
    taken = np.zeros(len(truth_ids), bool)
    hits = np.zeros(len(pred_ids), bool)
    for j in order:
        if len(truth_ids) == 0:
            break
        candidates = np.where(taken, -1.0, iou[:, j])
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            taken[best] = True
            hits[j] = True
    return pred_scores, hits, len(truth_ids)


def average_precision(scores: np.ndarray, hits: np.ndarray, n_true: int) -> float:
    """All-point interpolated AP from ranked detections.

    Args:
        scores: ``np.ndarray[m]`` detection scores.
        hits: ``np.ndarray[m]`` bool, detection is a true positive.
        n_true: number of truth objects.

    Returns:
        AP in [0, 1]; 1.0 when there is neither truth nor detection, 0.0 when only one side is empty.
    """
    scores, hits = np.asarray(scores, np.float64), np.asarray(hits, bool)
    if n_true == 0:
        return 1.0 if len(scores) == 0 else 0.0
    if len(scores) == 0:
        return 0.0
    # Ties share one operating point (a method without scores has a single one).
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(hits)[last_of_tie]
    fp = np.cumsum(~hits)[last_of_tie]
    recall = np.r_[0.0, tp / n_true]
    precision = np.r_[1.0, tp / np.maximum(tp + fp, 1)]
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))


def score_labels(method: str, index: int, truth: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, *,
                 min_score: float = 0.5, seconds: float = 0.0) -> ImageScores:
    """Table 3.2 scores of one label image against the truth.

    Args:
        method: name for the report.
        index: image index.
        truth: ``np.ndarray[H, W]`` int truth labels.
        labels: ``np.ndarray[H, W]`` int predicted labels 1..n.
        scores: ``np.ndarray[n]`` or None (every object scores 1).
        min_score: objects below it are left out of precision/recall/F1/Jaccard.
    """
    labels = np.asarray(labels)
    n = int(labels.max(initial=0))
    scores = np.ones(n) if scores is None else np.asarray(scores, np.float64)
    if len(scores) != n:
        raise ParameterError(f"{len(scores)} scores for {n} labels.")
    ranked_scores, hits, n_true = ranked_matches(truth, labels, scores)
    ap = average_precision(ranked_scores, hits, n_true)
    keep = np.r_[False, scores >= min_score]
    metrics = instance_metrics(truth, np.where(keep[labels], labels, 0))
    return ImageScores(method=method, index=index, n_true=metrics.n_true, n_pred=metrics.n_pred, ap=ap,
                       precision=metrics.precision, recall=metrics.recall, f1=metrics.f1,
                       jaccard=metrics.mean_matched_jaccard, seconds=seconds)


def evaluate_methods(
    model: torch.nn.Module | None,
    *,
    seed: int = HELD_OUT_SEED,
    n: int = 8,
    size: int = 512,
    min_score: float = 0.5,
    device: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, object]:
    """Weak-label method (before and after screening) and network on held-out phantoms.

    Args:
        model: the steatosis Mask R-CNN, or None to score the weak labels only.
        seed: phantom seed (indices 0..n−1).
        n: number of phantoms.
        size: phantom side in px.
        min_score: network score cutoff for the threshold metrics.
        device: where to run the network.
        log: receives one line per image.

    Returns:
        ``{"weak": {...}, "weak_screened": {...}, "network": {...}, "per_image": [...],
        "f1_gain": network F1 − weak F1}`` with the mean AP, precision, recall,
        F1 and Jaccard per method.
    """
    # The network's module imports torch; scoring the weak labels alone (model None) does without it.
    from medlim.microscopy.steatosis.inference import detect_droplets

    if n < 1:
        raise ParameterError(f"`n` must be ≥ 1, {n} is given.")
    rows: list[ImageScores] = []
    for index in range(int(n)):
        phantom = generate_he(seed, index=index, size=(size, size))
        start = time.perf_counter()
        weak = weak_labels(phantom.image)
        weak_seconds = time.perf_counter() - start
        rows.append(score_labels("weak", index, phantom.labels, weak.labels, None, seconds=weak_seconds))
        rows.append(score_labels("weak_screened", index, phantom.labels, weak.screened, None, seconds=weak_seconds))
        line = f"image {index}: {phantom.n_droplets} droplets; weak F1 {rows[-2].f1:.3f}"
        if model is not None:
            found = detect_droplets(model, phantom.image, device=device)
            rows.append(score_labels("network", index, phantom.labels, found.labels, found.scores,
                                     min_score=min_score, seconds=found.seconds))
            line += f", network F1 {rows[-1].f1:.3f} AP {rows[-1].ap:.3f}"
        log(line)
    summary: dict[str, object] = {}
    for method in ("weak", "weak_screened", "network"):
        chosen = [r for r in rows if r.method == method]
        if not chosen:
            continue
        summary[method] = {key: round(float(np.mean([getattr(r, key) for r in chosen])), 4)
                           for key in ("ap", "precision", "recall", "f1", "jaccard", "seconds")}
    if "network" in summary:
        summary["f1_gain"] = round(summary["network"]["f1"] - summary["weak"]["f1"], 4)  # type: ignore[index]
    summary["per_image"] = [asdict(r) for r in rows]
    summary["protocol"] = "matches at mask IoU >= 0.5; Jaccard = mean IoU of matched droplets; per-image means"
    return summary
