"""Segmentation metrics shared by every room: pixel-wise, contour and instance.

Pixel-wise recall, precision, accuracy, F1/Dice and Jaccard follow thesis
eq. 3.6–3.7 (§3.3, also used for Table 3.1 of §3.1); the symmetric Hausdorff
distance is the "HD (pix.)" column of thesis Table 3.1. Instance matching pairs
ground-truth and predicted objects one-to-one at IoU ≥ 0.5 (the protocol of
thesis §3.2 and of the nuclei evaluation).

Empty-mask convention (documented once, used everywhere): a ratio whose
denominator is zero is **1.0 when truth and prediction are both empty** (perfect
agreement about "nothing here") and **0.0 otherwise**. The Hausdorff distance is
0.0 when both are empty and ``inf`` when exactly one is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from medlim.errors import ParameterError

__all__ = [
    "PixelMetrics",
    "InstanceMetrics",
    "confusion_counts",
    "pixel_metrics",
    "dice",
    "jaccard",
    "mask_boundary",
    "hausdorff_distance",
    "iou_matrix",
    "match_instances",
    "instance_metrics",
]


@dataclass(frozen=True)
class PixelMetrics:
    """Pixel-wise agreement of a binary prediction with a binary truth.

    Attributes:
        tp, fp, fn, tn: pixel counts.
        recall: TP / (TP + FN).
        precision: TP / (TP + FP).
        accuracy: (TP + TN) / all pixels.
        f1: 2TP / (2TP + FP + FN) (= Dice).
        jaccard: TP / (TP + FP + FN).
    """

    tp: int
    fp: int
    fn: int
    tn: int
    recall: float
    precision: float
    accuracy: float
    f1: float
    jaccard: float


@dataclass(frozen=True)
class InstanceMetrics:
    """Object-level agreement of two label images.

    Attributes:
        n_true, n_pred: number of objects in truth and prediction.
        n_matched: one-to-one matches with IoU ≥ the threshold.
        precision: n_matched / n_pred.
        recall: n_matched / n_true.
        f1: 2·n_matched / (n_true + n_pred).
        mean_matched_jaccard: mean IoU over matched pairs (0.0 when none,
            1.0 when both images have no objects).
        pairs: matched ``(true_label, pred_label, iou)`` tuples.
    """

    n_true: int
    n_pred: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    mean_matched_jaccard: float
    pairs: tuple[tuple[int, int, float], ...]


def _as_binary_pair(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth)
    prediction = np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ParameterError(f"truth and prediction shapes differ: {truth.shape} vs {prediction.shape}")
    return truth.astype(bool), prediction.astype(bool)


def _ratio(num: float, den: float, *, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


def confusion_counts(truth: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel confusion counts of two masks of equal shape (nonzero = foreground).

    Returns:
        ``(tp, fp, fn, tn)`` as ints.
    """
    t, p = _as_binary_pair(truth, prediction)
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return tp, fp, fn, int(t.size - tp - fp - fn)


def pixel_metrics(truth: np.ndarray, prediction: np.ndarray) -> PixelMetrics:
    """Recall, precision, accuracy, F1/Dice and Jaccard (thesis eq. 3.6–3.7).

    Works on a whole image or on one patch (any shape, any dtype; nonzero is
    foreground, so label images can be passed directly).

    Args:
        truth: ground-truth mask ``np.ndarray[...]``.
        prediction: predicted mask of the same shape.

    Returns:
        :class:`PixelMetrics`; see the module docstring for empty masks.
    """
    tp, fp, fn, tn = confusion_counts(truth, prediction)
    empty = tp + fp + fn == 0
    return PixelMetrics(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        recall=_ratio(tp, tp + fn, both_empty=empty),
        precision=_ratio(tp, tp + fp, both_empty=empty),
        accuracy=_ratio(tp + tn, tp + fp + fn + tn, both_empty=True),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, both_empty=empty),
        jaccard=_ratio(tp, tp + fp + fn, both_empty=empty),
    )


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Dice / F1 of two masks (1.0 when both are empty)."""
    return pixel_metrics(truth, prediction).f1


def jaccard(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Jaccard index (IoU) of two masks (1.0 when both are empty)."""
    return pixel_metrics(truth, prediction).jaccard


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a binary mask (foreground pixels with a 4-neighbour outside).

    Args:
        mask: ``np.ndarray[H, W]``, nonzero = foreground.

    Returns:
        ``np.ndarray[H, W]`` bool. Pixels on the image edge count as boundary.
    """
    mask = np.asarray(mask).astype(bool)
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)
    return mask & ~eroded


def hausdorff_distance(truth: np.ndarray, prediction: np.ndarray, *, use_boundary: bool = True) -> float:
    """Symmetric Hausdorff distance in pixels between two masks.

    Args:
        truth: ``np.ndarray[H, W]`` mask (nonzero = foreground).
        prediction: mask of the same shape.
        use_boundary: measure between boundary pixels (contours; the thesis
            "HD") rather than all foreground pixels.

    Returns:
        max(sup_a min_b |a−b|, sup_b min_a |a−b|); 0.0 when both are empty,
        ``inf`` when exactly one is.
    """
    t, p = _as_binary_pair(truth, prediction)
    if use_boundary:
        t, p = mask_boundary(t), mask_boundary(p)
    a = np.argwhere(t)
    b = np.argwhere(p)
    if len(a) == 0 and len(b) == 0:
        return 0.0
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    d_ab = cKDTree(b).query(a)[0].max()
    d_ba = cKDTree(a).query(b)[0].max()
    return float(max(d_ab, d_ba))


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise ParameterError(f"`{name}` must be an integer label image, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ParameterError(f"`{name}` has negative labels (min {labels.min()})")
    return labels.astype(np.int64)


def iou_matrix(truth_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every truth object with every predicted object.

    Args:
        truth_labels: ``np.ndarray[H, W]`` integer labels, 0 = background.
        pred_labels: same shape.

    Returns:
        ``(iou, truth_ids, pred_ids)``: ``iou`` is ``float64[n_true, n_pred]``;
        the id arrays give the label of each row / column (ascending).
    """
    t = _check_labels(truth_labels, "truth_labels")
    p = _check_labels(pred_labels, "pred_labels")
    if t.shape != p.shape:
        raise ParameterError(f"label images differ in shape: {t.shape} vs {p.shape}")
    truth_ids = np.unique(t[t > 0])
    pred_ids = np.unique(p[p > 0])
    if len(truth_ids) == 0 or len(pred_ids) == 0:
        return np.zeros((len(truth_ids), len(pred_ids))), truth_ids, pred_ids
    t_idx = np.searchsorted(truth_ids, t.ravel())
    t_idx = np.where(t.ravel() > 0, t_idx + 1, 0)
    p_idx = np.searchsorted(pred_ids, p.ravel())
    p_idx = np.where(p.ravel() > 0, p_idx + 1, 0)
    n_t, n_p = len(truth_ids) + 1, len(pred_ids) + 1
    table = np.bincount(t_idx * n_p + p_idx, minlength=n_t * n_p).reshape(n_t, n_p)
    area_t = table.sum(axis=1)[1:]
    area_p = table.sum(axis=0)[1:]
    inter = table[1:, 1:].astype(np.float64)
    union = area_t[:, None] + area_p[None, :] - inter
    return inter / np.maximum(union, 1), truth_ids, pred_ids


def match_instances(
    truth_labels: np.ndarray, pred_labels: np.ndarray, *, iou_threshold: float = 0.5
) -> tuple[tuple[int, int, float], ...]:
    """One-to-one matching of objects by IoU (Hungarian assignment on IoU).

    Only pairs with IoU ≥ ``iou_threshold`` may be matched; among those the
    assignment maximises total IoU. (At a threshold ≥ 0.5 every object has at
    most one such partner, so the result equals greedy matching.)

    Returns:
        ``(true_label, pred_label, iou)`` tuples sorted by true label.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ParameterError(f"`iou_threshold` must be in (0, 1], got {iou_threshold}")
    iou, truth_ids, pred_ids = iou_matrix(truth_labels, pred_labels)
    if iou.size == 0:
        return ()
    gain = np.where(iou >= iou_threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    pairs = [
        (int(truth_ids[r]), int(pred_ids[c]), float(iou[r, c]))
        for r, c in zip(rows, cols)
        if iou[r, c] >= iou_threshold
    ]
    return tuple(sorted(pairs))


def instance_metrics(
    truth_labels: np.ndarray, pred_labels: np.ndarray, *, iou_threshold: float = 0.5
) -> InstanceMetrics:
    """Object precision, recall, F1 and mean matched Jaccard of two label images.

    Args:
        truth_labels: ``np.ndarray[H, W]`` integer labels, 0 = background.
        pred_labels: same shape.
        iou_threshold: minimum IoU for a match (default 0.5).

    Returns:
        :class:`InstanceMetrics`. With no objects on either side every score is 1.0.
    """
    pairs = match_instances(truth_labels, pred_labels, iou_threshold=iou_threshold)
    t = np.asarray(truth_labels)
    p = np.asarray(pred_labels)
    n_true = int(len(np.unique(t[t > 0])))
    n_pred = int(len(np.unique(p[p > 0])))
    n_matched = len(pairs)
    empty = n_true == 0 and n_pred == 0
    if n_matched:
        mean_iou = float(np.mean([iou for _, _, iou in pairs]))
    else:
        mean_iou = 1.0 if empty else 0.0
    return InstanceMetrics(
        n_true=n_true,
        n_pred=n_pred,
        n_matched=n_matched,
        precision=_ratio(n_matched, n_pred, both_empty=empty),
        recall=_ratio(n_matched, n_true, both_empty=empty),
        f1=_ratio(2 * n_matched, n_true + n_pred, both_empty=empty),
        mean_matched_jaccard=mean_iou,
        pairs=pairs,
    )
