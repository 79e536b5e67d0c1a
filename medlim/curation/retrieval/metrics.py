"""Retrieval metrics at K (thesis §6.1.3 "Evaluation Metrics", §6.2.3).

Named by what they compute (the thesis's names differ; METHODS.md §6.1):

* precision@K — fraction of the top K that is relevant (the thesis "R@K" for
  OSCARS, "P@K" for PMS);
* hit rate@K — 1 when at least one of the top K is relevant (the thesis "P@K"
  for OSCARS);
* sensitivity@K (S@K, lower is better) — mean ``|A_i − A_q|`` over the
  relevant items among the top K (A = scaled anomaly score); a query without a
  relevant item in its top K is left out of the mean.

Relevance: same class (single label); for multi-label data full match
(identical label sets) or partial match (≥ 1 shared label). Per-class AUC for
PMS: ROC AUC per class, plus micro, macro and positive-count-weighted
averages (classes with one label value only are left out of macro/weighted).
AUC is computed from the probabilities; the authors' public PMS code
(``XiaoyuanGuo/PMS``, ``src/train.py``) scores predictions thresholded at 0.5,
which is why thesis Table 6.3 shows many classes at exactly 50.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "K_VALUES",
    "relevance_single",
    "relevance_multilabel",
    "precision_at_k",
    "hit_rate_at_k",
    "sensitivity_at_k",
    "class_auc",
]

#: Cut-offs reported (thesis Table 6.1; Table 6.2 stops at 50).
K_VALUES: tuple[int, ...] = (1, 5, 10, 50, 100)


def relevance_single(query_labels: np.ndarray, item_labels: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """``[Q, K]`` bool: the ranked item has the query's class.

    Args:
        query_labels: ``[Q]`` int; item_labels: ``[N]`` int; ranked: ``[Q, K]`` item positions.
    """
    ranked = np.asarray(ranked)
    return np.asarray(item_labels)[ranked] == np.asarray(query_labels)[:, None]


def relevance_multilabel(query_labels: np.ndarray, item_labels: np.ndarray, ranked: np.ndarray, *,
                         mode: str) -> np.ndarray:
    """``[Q, K]`` bool relevance for multi-hot labels.

    Args:
        query_labels: ``[Q, C]`` {0, 1}; item_labels: ``[N, C]`` {0, 1};
        ranked: ``[Q, K]`` item positions; mode: ``"full"`` or ``"partial"``.
    """
    if mode not in ("full", "partial"):
        raise ParameterError(f"`mode` must be 'full' or 'partial', {mode!r} is given.")
    query = np.asarray(query_labels).astype(bool)[:, None, :]
    items = np.asarray(item_labels).astype(bool)[np.asarray(ranked)]
    if mode == "full":
        return np.all(items == query, axis=2)
    return np.any(items & query, axis=2)


def _check(relevant: np.ndarray, k: int) -> np.ndarray:
    matrix = np.asarray(relevant, dtype=bool)
    if matrix.ndim != 2:
        raise ParameterError(f"relevance must be a [Q, K] matrix, shape {matrix.shape} is given.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= matrix.shape[1]:
        raise ParameterError(f"`k` must be in [1, {matrix.shape[1]}], {k!r} is given.")
    return matrix[:, : int(k)]


def precision_at_k(relevant: np.ndarray, k: int) -> float:
    """Mean over queries of the fraction of the top ``k`` that is relevant."""
    top = _check(relevant, k)
    return float(top.mean()) if top.size else 0.0


def hit_rate_at_k(relevant: np.ndarray, k: int) -> float:
    """Fraction of queries with at least one relevant item in the top ``k``."""
    top = _check(relevant, k)
    return float(top.any(axis=1).mean()) if len(top) else 0.0


def sensitivity_at_k(relevant: np.ndarray, k: int, query_anomaly: np.ndarray, item_anomaly: np.ndarray,
                     ranked: np.ndarray) -> float:
    """S@K: mean over queries of mean ``|A_i − A_q|`` over the relevant items of the top ``k`` (lower = better).

    Args:
        relevant: ``[Q, K]`` bool; k: cut-off; query_anomaly: ``[Q]``;
        item_anomaly: ``[N]``; ranked: ``[Q, K]`` item positions.
    """
    top = _check(relevant, k)
    gaps = np.abs(np.asarray(item_anomaly, np.float64)[np.asarray(ranked)[:, : int(k)]]
                  - np.asarray(query_anomaly, np.float64)[:, None])
    counts = top.sum(axis=1)
    keep = counts > 0
    if not keep.any():
        return float("nan")
    return float(np.mean((gaps * top).sum(axis=1)[keep] / counts[keep]))


def class_auc(labels: np.ndarray, probabilities: np.ndarray, *, names: Sequence[str]) -> dict[str, float]:
    """Per-class ROC AUC plus ``micro``, ``macro`` and ``weighted`` averages.

    Args:
        labels: ``[N, C]`` {0, 1}; probabilities: ``[N, C]`` in [0, 1]; names: C class names.

    Returns:
        ``{name: auc}`` (NaN for a class with one label value) and the three averages.
    """
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(labels).astype(int), np.asarray(probabilities, np.float64)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(names):
        raise ParameterError(f"labels {y.shape}, probabilities {p.shape} and {len(names)} names do not match.")
    out: dict[str, float] = {}
    valid = []
    for i, name in enumerate(names):
        if 0 < y[:, i].sum() < len(y):
            out[name] = float(roc_auc_score(y[:, i], p[:, i]))
            valid.append(i)
        else:
            out[name] = float("nan")
    out["micro"] = float(roc_auc_score(y.ravel(), p.ravel())) if 0 < y.sum() < y.size else float("nan")
    if valid:
        values = np.array([out[names[i]] for i in valid])
        support = y[:, valid].sum(axis=0).astype(np.float64)
        out["macro"] = float(values.mean())
        out["weighted"] = float((values * support).sum() / support.sum())
    else:
        out["macro"] = out["weighted"] = float("nan")
    return out
