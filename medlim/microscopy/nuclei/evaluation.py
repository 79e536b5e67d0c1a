"""Evaluation of nuclei segmentations on phantoms (thesis §3.1.3, Table 3.1 protocol).

Per image, each ground-truth nucleus is paired with the predicted object that
overlaps it most (largest IoU); Jaccard, precision, recall, F1 and the
symmetric Hausdorff distance between the two masks are computed and averaged
over the nuclei of the image — the five columns of thesis Table 3.1. A nucleus
no prediction touches scores 0 on the four ratios and is left out of the
Hausdorff mean (counted in ``n_missed``). Object-level precision, recall and F1
at IoU ≥ 0.5 (:func:`medlim.core.metrics.instance_metrics`) are reported too,
over all nuclei and over clumped nuclei only.

Seeds: the project tuned on development seeds 1000–1019 (index 0, 512×688); the CLI
default evaluates held-out seed 7 with indices 0..n−1 (disjoint streams).

:func:`evaluate_nuclei_data` scores the same methods with the same protocol on
a user's images with outlined nuclei (``image,instances`` manifest, uint16
instance labels): ``medlim nuclei evaluate --data DIR``. A user's labels say
nothing of clumps, so there a nucleus counts as clumped when its outline
touches another nucleus's (8-connected).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medlim.core.datasets import TRAINING_ONLY_PROBLEMS
from medlim.core.metrics import hausdorff_distance, instance_metrics, iou_matrix, pixel_metrics
from medlim.errors import ParameterError
from medlim.microscopy.nuclei.pipeline import NucleiParams, segment_nuclei
from medlim.microscopy.nuclei.watershed import watershed_basic_nuclei, watershed_nuclei
from medlim.phantoms.fluorescence import generate_fluorescence

__all__ = [
    "METHODS",
    "DEVELOPMENT_SEEDS",
    "HELD_OUT_SEED",
    "ImageEvaluation",
    "table31_metrics",
    "run_method",
    "evaluate_phantoms",
    "summarise",
    "score_image",
    "touching_labels",
    "NucleiDataEvaluation",
    "evaluate_nuclei_data",
]

#: Method names accepted by :func:`run_method`: the thesis method, the strong watershed
#: baseline (h-maxima markers, size-aware smoothing; issue 13) and the basic one.
METHODS: tuple[str, ...] = ("thesis", "watershed", "watershed-basic")
#: Seeds used while choosing the project defaults (never report these as held out).
DEVELOPMENT_SEEDS: range = range(1000, 1020)
#: Default seed of ``medlim nuclei evaluate`` (disjoint from the development seeds).
HELD_OUT_SEED = 7


@dataclass(frozen=True)
class ImageEvaluation:
    """Scores of one method on one image (a phantom, or an image of a user's folder, then ``seed`` is −1)."""

    method: str
    seed: int
    index: int
    n_true: int
    n_pred: int
    jaccard: float
    precision: float
    recall: float
    f1: float
    hausdorff: float
    n_missed: int
    object_precision: float
    object_recall: float
    object_f1: float
    mean_matched_jaccard: float
    clumped_object_recall: float
    seconds: float
    name: str | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def table31_metrics(truth_labels: np.ndarray, pred_labels: np.ndarray) -> dict[str, float | int]:
    """Per-nucleus Jaccard, precision, recall, F1 and Hausdorff, averaged (Table 3.1).

    Args:
        truth_labels: ``np.ndarray[H, W]`` int labels, 0 = background.
        pred_labels: same shape.

    Returns:
        ``{"jaccard", "precision", "recall", "f1", "hausdorff", "n_missed"}``;
        with no truth nuclei every ratio is 1.0 when nothing is predicted
        (else 0.0) and the Hausdorff distance is 0.0.
    """
    truth_labels = np.asarray(truth_labels)
    pred_labels = np.asarray(pred_labels)
    iou, truth_ids, pred_ids = iou_matrix(truth_labels, pred_labels)
    if len(truth_ids) == 0:
        value = 1.0 if len(pred_ids) == 0 else 0.0
        return {"jaccard": value, "precision": value, "recall": value, "f1": value, "hausdorff": 0.0, "n_missed": 0}
    windows = ndimage.find_objects(truth_labels.astype(np.int64))
    pred_windows = ndimage.find_objects(pred_labels.astype(np.int64))
    scores: dict[str, list[float]] = {"jaccard": [], "precision": [], "recall": [], "f1": []}
    distances: list[float] = []
    missed = 0
    for row, label in enumerate(truth_ids):
        if iou.shape[1] == 0 or iou[row].max() <= 0:
            missed += 1
            for key in scores:
                scores[key].append(0.0)
            continue
        partner = int(pred_ids[int(np.argmax(iou[row]))])
        tw, pw = windows[int(label) - 1], pred_windows[partner - 1]
        r0, r1 = min(tw[0].start, pw[0].start), max(tw[0].stop, pw[0].stop)
        c0, c1 = min(tw[1].start, pw[1].start), max(tw[1].stop, pw[1].stop)
        truth_mask = truth_labels[r0:r1, c0:c1] == label
        pred_mask = pred_labels[r0:r1, c0:c1] == partner
        m = pixel_metrics(truth_mask, pred_mask)
        scores["jaccard"].append(m.jaccard)
        scores["precision"].append(m.precision)
        scores["recall"].append(m.recall)
        scores["f1"].append(m.f1)
        distances.append(hausdorff_distance(truth_mask, pred_mask))
    result: dict[str, float | int] = {key: float(np.mean(values)) for key, values in scores.items()}
    result["hausdorff"] = float(np.mean(distances)) if distances else 0.0
    result["n_missed"] = missed
    return result


def run_method(image: np.ndarray, method: str, *, params: NucleiParams | None = None) -> tuple[np.ndarray, float]:
    """Labels (``np.ndarray[H, W]`` int32) and seconds of ``method`` on ``image``."""
    if method == "thesis":
        result = segment_nuclei(image, params=params or NucleiParams())
    elif method == "watershed":
        result = watershed_nuclei(image)
    elif method == "watershed-basic":
        result = watershed_basic_nuclei(image)
    else:
        raise ParameterError(f"unknown nuclei method {method!r}; use one of {', '.join(METHODS)}.")
    return result.labels, result.seconds


def evaluate_phantoms(
    *,
    n: int = 5,
    seed: int = HELD_OUT_SEED,
    size: tuple[int, int] = (1024, 1376),
    methods: Sequence[str] = METHODS,
    params: NucleiParams | None = None,
    first_index: int = 0,
) -> Iterator[ImageEvaluation]:
    """Score each method on phantoms ``(seed, index)`` for ``index`` in ``first_index .. first_index + n − 1``.

    Yields:
        One :class:`ImageEvaluation` per (phantom, method), phantom by phantom.
    """
    if n < 1:
        raise ParameterError(f"`n` must be at least 1, {n} is given.")
    for method in methods:
        if method not in METHODS:
            raise ParameterError(f"unknown nuclei method {method!r}; use one of {', '.join(METHODS)}.")
    for index in range(first_index, first_index + n):
        phantom = generate_fluorescence(seed, index=index, size=size)
        truth = phantom.labels.astype(np.int32)
        clumped = np.nonzero(phantom.clump_of > 0)[0]
        for method in methods:
            labels, seconds = run_method(phantom.image, method, params=params)
            yield score_image(method, truth, labels, clumped=clumped, seconds=seconds, seed=int(seed), index=index)


def score_image(method: str, truth: np.ndarray, labels: np.ndarray, *, clumped: np.ndarray, seconds: float,
                seed: int = -1, index: int = 0, name: str | None = None) -> ImageEvaluation:
    """Table 3.1 and object scores of one segmentation against its truth.

    Args:
        method: the method's name.
        truth: ``np.ndarray[H, W]`` int truth labels.
        labels: ``np.ndarray[H, W]`` int predicted labels.
        clumped: truth labels of the nuclei that are part of a clump (their object recall is reported apart).
        seconds: the method's wall time.
        seed, index, name: where the image comes from.
    """
    table = table31_metrics(truth, labels)
    objects = instance_metrics(truth, labels)
    matched = {t for t, _, _ in objects.pairs}
    clumped_recall = float(np.mean([k in matched for k in clumped])) if len(clumped) else 1.0
    return ImageEvaluation(
        method=method, seed=int(seed), index=int(index), n_true=objects.n_true, n_pred=objects.n_pred,
        jaccard=float(table["jaccard"]), precision=float(table["precision"]), recall=float(table["recall"]),
        f1=float(table["f1"]), hausdorff=float(table["hausdorff"]), n_missed=int(table["n_missed"]),
        object_precision=objects.precision, object_recall=objects.recall, object_f1=objects.f1,
        mean_matched_jaccard=objects.mean_matched_jaccard, clumped_object_recall=clumped_recall,
        seconds=float(seconds), name=name)


def summarise(evaluations: Sequence[ImageEvaluation]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every score, per method (as Table 3.1: mean, std)."""
    keys = ("jaccard", "precision", "recall", "f1", "hausdorff", "object_precision", "object_recall",
            "object_f1", "mean_matched_jaccard", "clumped_object_recall", "seconds")
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(e.method for e in evaluations):
        rows = [e for e in evaluations if e.method == method]
        summary: dict[str, float] = {"images": float(len(rows))}
        for key in keys:
            values = np.array([getattr(e, key) for e in rows], float)
            summary[key] = float(values.mean())
            summary[f"{key}_std"] = float(values.std())
        out[method] = summary
    return out


def touching_labels(labels: np.ndarray) -> np.ndarray:
    """Labels whose objects touch another object (8-connected): a user's data's stand-in for "clumped".

    Args:
        labels: ``np.ndarray[H, W]`` int instance labels, 0 = background.

    Returns:
        ``np.ndarray[k]`` int, sorted labels.
    """
    labels = np.asarray(labels, np.int64)
    if labels.max(initial=0) == 0:
        return np.zeros(0, np.int64)
    above = int(labels.max()) + 1  # stands for background in the minimum (a small value: filters work in float)
    highest = ndimage.maximum_filter(labels, size=3, mode="constant", cval=0)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, above), size=3, mode="constant", cval=above)
    inside = labels > 0
    touching = inside & ((highest != labels) | (lowest != labels))
    return np.unique(labels[touching])


@dataclass(frozen=True)
class NucleiDataEvaluation:
    """``medlim nuclei evaluate --data DIR``: Table 3.1 on a user's images with outlined nuclei.

    Attributes:
        fingerprint: the folder's dataset fingerprint id.
        images: images evaluated.
        summary: :func:`summarise` of the rows (per method: mean and SD of every score).
        rows: every image and method.
    """

    fingerprint: str
    images: int
    summary: dict[str, dict[str, float]]
    rows: tuple[ImageEvaluation, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        """``{"data": {"fingerprint", "images"}, "summary": {method: {...}}}``."""
        return {"data": {"fingerprint": self.fingerprint, "images": self.images}, "summary": self.summary}

    def table_lines(self) -> list[str]:
        """The text report (the phantom evaluation's table)."""
        lines = [f"{self.images} images of dataset {self.fingerprint} (mean ± std):"]
        for method, values in self.summary.items():
            lines.append(
                f"  {method:15s} Jaccard {values['jaccard']:.3f}±{values['jaccard_std']:.3f}  "
                f"P {values['precision']:.3f}  R {values['recall']:.3f}  F1 {values['f1']:.3f}  "
                f"HD {values['hausdorff']:.1f}±{values['hausdorff_std']:.1f}  object P/R/F1 "
                f"{values['object_precision']:.3f}/{values['object_recall']:.3f}/{values['object_f1']:.3f}  "
                f"{values['seconds']:.2f} s/image")
        return lines


def evaluate_nuclei_data(
    directory: str | Path,
    *,
    methods: Sequence[str] = METHODS,
    params: NucleiParams | None = None,
    skip_bad: bool = False,
    progress: Callable[[str], None] | None = None,
) -> NucleiDataEvaluation:
    """Score each method on a user's images with outlined nuclei (thesis Table 3.1 protocol).

    Args:
        directory: a folder with ``manifest.csv`` ``image,instances`` (uint16 labels, 0 = background);
            images RGB with DAPI in blue, or grey.
        methods: methods to score (:data:`METHODS`).
        params: the thesis method's parameters.
        skip_bad: leave out rows with problems.
        progress: receives one line per image and method.

    Raises:
        DatasetProblemsError: the folder has problems (exit 2 at the command line).
        ParameterError: an unknown method.
    """
    from medlim.core.datasets import dataset_fingerprint
    from medlim.core.io import read_image, read_labels
    from medlim.core.training import check_folder

    for method in methods:
        if method not in METHODS:
            raise ParameterError(f"unknown nuclei method {method!r}; use one of {', '.join(METHODS)}.")
    dataset, check, _ = check_folder(directory, task="nuclei", what="evaluation folder", skip_bad=skip_bad,
                                     ignore=TRAINING_ONLY_PROBLEMS, progress=progress)
    rows: list[ImageEvaluation] = []
    for index, item in enumerate(dataset.items):
        name = dataset.display_name(item.image)
        image = read_image(item.image, name=name).pixels
        truth = np.rint(read_labels(item.instances, name=dataset.display_name(item.instances))[1])
        truth = truth.astype(np.int32)
        clumped = touching_labels(truth)
        for method in methods:
            labels, seconds = run_method(image, method, params=params)
            rows.append(score_image(method, truth, labels, clumped=clumped, seconds=seconds, index=index, name=name))
            if progress is not None:
                row = rows[-1]
                progress(f"[{index + 1}/{len(dataset)}] {method:9s} Jaccard {row.jaccard:.3f} object F1 "
                         f"{row.object_f1:.3f} ({row.seconds:.2f} s)")
    return NucleiDataEvaluation(fingerprint=dataset_fingerprint(dataset, check=check).id, images=len(dataset),
                                summary=summarise(rows), rows=tuple(rows))
