"""OOD metrics and threshold calibration (thesis §4.1.2 "Evaluation metrics", METHODS.md §4.3).

OOD is the positive class; a sample is predicted OOD when its score ``s ≥ t``.
AUROC, AUPR (average precision), FPR at 95 % TPR, and the G-mean threshold
``t = argmax √(TPR · (1 − FPR))`` over the ROC with its TPR, FPR and
DIFF = TPR − FPR. Thresholds are chosen once, on internal validation data at
training time, and stored with the weights — never from the batch being scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = ["RocCurve", "OodMetrics", "roc_curve", "auroc", "average_precision", "fpr_at_tpr",
           "gmean_threshold", "ood_metrics", "rates_at"]


@dataclass(frozen=True)
class RocCurve:
    """ROC points for decreasing thresholds.

    Attributes:
        thresholds: ``np.ndarray[M]`` float64, decreasing; the first is ``+inf``
            (nothing predicted OOD).
        tpr, fpr: ``np.ndarray[M]`` float64 in [0, 1], non-decreasing.
    """

    thresholds: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray


@dataclass(frozen=True)
class OodMetrics:
    """Threshold-free and G-mean metrics of one score set (OOD = positive)."""

    auroc: float
    aupr: float
    fpr_at_95_tpr: float
    threshold: float
    tpr: float
    fpr: float
    diff: float
    n_id: int
    n_ood: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ParameterError(f"labels and scores must be 1-D of the same length; shapes {y.shape} and {s.shape} are given.")
    if not np.isin(y, (0, 1, True, False)).all():
        raise ParameterError(f"labels must be 0 (ID) or 1 (OOD); values {np.unique(y)[:5]} are given.")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ParameterError(f"metrics need both ID and OOD samples; {int(y.sum())} OOD of {y.size} are given.")
    if not np.isfinite(s).all():
        raise ParameterError("scores must be finite.")
    return y, s


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> RocCurve:
    """ROC of ``scores`` for ``labels`` (1 = OOD), one point per distinct score.

    Args:
        labels: ``np.ndarray[N]`` of 0/1 (or bool).
        scores: ``np.ndarray[N]`` float; higher = more OOD.
    """
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s_sorted))[0], y.size - 1]
    tp = np.cumsum(y_sorted)[distinct]
    fp = (distinct + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return RocCurve(thresholds=np.r_[np.inf, s_sorted[distinct]], tpr=tpr, fpr=fpr)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC (ties count one half): P(score_OOD > score_ID)."""
    curve = roc_curve(labels, scores)
    return float(np.trapezoid(curve.tpr, curve.fpr))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUPR as average precision (OOD positive): Σ (R_k − R_{k−1}) P_k over distinct thresholds."""
    y, s = _check(labels, scores)
    curve = roc_curve(y, s)
    tp = curve.tpr[1:] * y.sum()
    fp = curve.fpr[1:] * (~y).sum()
    precision = tp / np.maximum(tp + fp, 1)
    return float(np.sum(np.diff(curve.tpr) * precision))


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, *, tpr: float = 0.95) -> float:
    """Smallest FPR at which the TPR reaches ``tpr``."""
    curve = roc_curve(labels, scores)
    reached = curve.tpr >= tpr - 1e-12
    return float(curve.fpr[reached].min())


def gmean_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """The G-mean threshold and its rates.

    Returns:
        ``(t, TPR, FPR)`` maximising √(TPR · (1 − FPR)) (ties: the first, highest
        ROC point). Every t between that point's score and the next lower score
        gives the same rates; ``t`` is the midpoint of that gap (the widest margin
        on both sides), or the lowest score itself when it is the last point.
    """
    curve = roc_curve(labels, scores)
    gmean = np.sqrt(curve.tpr * (1.0 - curve.fpr))
    best = int(np.argmax(gmean[1:])) + 1  # never the +inf point
    upper = float(curve.thresholds[best])
    threshold = upper if best + 1 >= len(curve.thresholds) else 0.5 * (upper + float(curve.thresholds[best + 1]))
    return threshold, float(curve.tpr[best]), float(curve.fpr[best])


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(TPR, FPR)`` of the rule ``s ≥ threshold``."""
    y, s = _check(labels, scores)
    predicted = s >= threshold
    return float(predicted[y].mean()), float(predicted[~y].mean())


def ood_metrics(labels: np.ndarray, scores: np.ndarray) -> OodMetrics:
    """All metrics of one score set (G-mean threshold chosen on these same scores)."""
    y, s = _check(labels, scores)
    t, tpr, fpr = gmean_threshold(y, s)
    return OodMetrics(
        auroc=auroc(y, s),
        aupr=average_precision(y, s),
        fpr_at_95_tpr=fpr_at_tpr(y, s, tpr=0.95),
        threshold=t,
        tpr=tpr,
        fpr=fpr,
        diff=tpr - fpr,
        n_id=int((~y).sum()),
        n_ood=int(y.sum()),
    )
