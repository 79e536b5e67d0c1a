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

:func:`evaluate_steatosis_data` applies the same protocol to a user's images
with outlined droplets (``image,instances`` manifest: uint16 instance labels):
``medlim steatosis evaluate --data DIR``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.datasets import TRAINING_ONLY_PROBLEMS
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
    "METHODS",
    "summarise_scores",
    "evaluate_methods",
    "SteatosisDataEvaluation",
    "evaluate_steatosis_data",
]

#: The methods of the Table 3.2 protocol, in report order.
METHODS: tuple[str, ...] = ("weak", "weak_screened", "network")

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
    if n < 1:
        raise ParameterError(f"`n` must be ≥ 1, {n} is given.")
    rows: list[ImageScores] = []
    for index in range(int(n)):
        phantom = generate_he(seed, index=index, size=(size, size))
        scored = _score_image(model, index, phantom.image, phantom.labels, min_score=min_score, device=device,
                              tile=1024, overlap=128)
        rows += scored
        line = f"image {index}: {phantom.n_droplets} droplets; weak F1 {scored[0].f1:.3f}"
        if model is not None:
            line += f", network F1 {scored[-1].f1:.3f} AP {scored[-1].ap:.3f}"
        log(line)
    return summarise_scores(rows)


def summarise_scores(rows: Sequence[ImageScores]) -> dict[str, object]:
    """Per-method means of the Table 3.2 scores (rounded to 4 digits), the F1 gain and the per-image rows.

    Returns:
        ``{"weak": {...}, "weak_screened": {...}, "network": {...}, "f1_gain", "per_image", "protocol"}``
        (methods without rows and ``f1_gain`` without a network are left out).
    """
    summary: dict[str, object] = {}
    for method in METHODS:
        chosen = [r for r in rows if r.method == method]
        if not chosen:
            continue
        summary[method] = {key: round(float(np.mean([getattr(r, key) for r in chosen])), 4)
                           for key in ("ap", "precision", "recall", "f1", "jaccard", "seconds")}
    if "network" in summary and "weak" in summary:
        summary["f1_gain"] = round(summary["network"]["f1"] - summary["weak"]["f1"], 4)  # type: ignore[index]
    summary["per_image"] = [asdict(r) for r in rows]
    summary["protocol"] = "matches at mask IoU >= 0.5; Jaccard = mean IoU of matched droplets; per-image means"
    return summary


def _score_image(model: "torch.nn.Module | None", index: int, image: np.ndarray, truth: np.ndarray, *,
                 min_score: float, device: str | None, tile: int, overlap: int) -> list[ImageScores]:
    """The weak labels (before and after screening) and the network on one image, against its truth."""
    start = time.perf_counter()
    weak = weak_labels(image)
    weak_seconds = time.perf_counter() - start
    rows = [score_labels("weak", index, truth, weak.labels, None, seconds=weak_seconds),
            score_labels("weak_screened", index, truth, weak.screened, None, seconds=weak_seconds)]
    if model is not None:
        # The network's module imports torch; scoring the weak labels alone (model None) does without it.
        from medlim.microscopy.steatosis.inference import detect_droplets

        found = detect_droplets(model, image, tile=tile, overlap=overlap, device=device)
        rows.append(score_labels("network", index, truth, found.labels, found.scores, min_score=min_score,
                                 seconds=found.seconds))
    return rows


@dataclass(frozen=True)
class SteatosisDataEvaluation:
    """``medlim steatosis evaluate --data DIR``: Table 3.2 on a user's images with outlined droplets.

    Attributes:
        weights: ``name@version`` of the network, or ``None`` (weak labels only).
        fingerprint: the folder's dataset fingerprint id.
        images: images evaluated; ``droplets``: outlined droplets in them.
        summary: :func:`summarise_scores` of the rows (per-method means, ``f1_gain``).
        rows: every image and method.
    """

    weights: str | None
    fingerprint: str
    images: int
    droplets: int
    summary: dict[str, Any]
    rows: tuple[ImageScores, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        """The summary (no per-image rows) with the weights and the data's fingerprint."""
        return {"weights": self.weights, "data": {"fingerprint": self.fingerprint, "images": self.images,
                                                  "droplets": self.droplets},
                **{k: v for k, v in self.summary.items() if k != "per_image"}}

    def table_lines(self) -> list[str]:
        """The text report (the phantom evaluation's lines)."""
        lines = [f"{self.images} images of dataset {self.fingerprint}, {self.droplets} outlined droplets "
                 "(per-image means; matches at mask IoU ≥ 0.5):"]
        for method in METHODS:
            values = self.summary.get(method)
            if isinstance(values, dict):
                lines.append(f"  {method:13s} AP {values['ap']:.3f}  P {values['precision']:.3f}  "
                             f"R {values['recall']:.3f}  F1 {values['f1']:.3f}  Jaccard {values['jaccard']:.3f}  "
                             f"{values['seconds']:.2f} s/image")
        if "f1_gain" in self.summary:
            lines.append(f"  network F1 − weak F1 = {self.summary['f1_gain']:+.3f}"
                         + (f" ({self.weights})" if self.weights else ""))
        return lines


def _annotated_images(dataset: Any) -> Iterable[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, RGB uint8 image, int32 truth labels)`` of an ``image,instances`` dataset, one at a time."""
    from medlim.core.io import read_image, read_labels

    for index, item in enumerate(dataset.items):
        record = read_image(item.image, name=dataset.display_name(item.image))
        image = record.to_uint8()
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
        truth = np.rint(read_labels(item.instances, name=dataset.display_name(item.instances))[1])
        yield index, np.ascontiguousarray(image), truth.astype(np.int32)


def evaluate_steatosis_data(
    model: "torch.nn.Module | None",
    directory: str | Path,
    *,
    weights: str | None = None,
    min_score: float = 0.5,
    device: str | None = None,
    tile: int = 1024,
    overlap: int = 128,
    skip_bad: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SteatosisDataEvaluation:
    """Weak labels and network against a user's outlined droplets (thesis Table 3.2 protocol).

    Args:
        model: the steatosis Mask R-CNN, or None to score the weak labels only.
        directory: a folder with ``manifest.csv`` ``image,instances`` (uint16 droplet labels, 0 = background).
        weights: ``name@version`` of ``model`` for the report.
        min_score: network score cutoff for the threshold metrics.
        device: where to run the network.
        tile, overlap: the network's tiling (the weights' ``params``).
        skip_bad: leave out rows with problems.
        progress: receives one line per image.

    Raises:
        DatasetProblemsError: the folder has problems; ParameterError: it holds no instance images.
    """
    from medlim.core.datasets import dataset_fingerprint
    from medlim.core.training import check_folder

    dataset, check, _ = check_folder(directory, task="steatosis", what="evaluation folder", skip_bad=skip_bad,
                                     ignore=TRAINING_ONLY_PROBLEMS, progress=progress)
    if dataset.layout != "segmentation_instances":
        raise ParameterError("steatosis evaluation needs outlined droplets: a manifest.csv with columns "
                             "image,instances (uint16 labels, one value per droplet); this folder is "
                             f"{dataset.layout}.")
    rows: list[ImageScores] = []
    droplets = 0
    for index, image, truth in _annotated_images(dataset):
        rows += _score_image(model, index, image, truth, min_score=min_score, device=device, tile=tile,
                             overlap=overlap)
        droplets += rows[-1].n_true
        if progress is not None:
            progress(f"[{index + 1}/{len(dataset)}] {rows[-1].n_true} droplets; "
                     + ", ".join(f"{r.method} F1 {r.f1:.3f}" for r in rows[-(3 if model is not None else 2):]))
    return SteatosisDataEvaluation(weights=weights, fingerprint=dataset_fingerprint(dataset, check=check).id,
                                   images=len(dataset), droplets=droplets, summary=summarise_scores(rows),
                                   rows=tuple(rows))
