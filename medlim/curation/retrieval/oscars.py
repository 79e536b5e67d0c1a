"""OSCARS quadruplets and losses, with the plain-triplet baseline (thesis §6.1.2, eq. 6.1).

Quadruplets ``(a, p, n_intra, n_inter)``: ``p`` has the anchor's class and
anomaly bin, ``n_intra`` its class but another bin, ``n_inter`` another class.
The loss (eq. 6.1, ``d`` Euclidean):

``L = λ·max(d(a,p) − d(a,n_intra) + M_intra, 0) + (1 − λ)·max(d(a,n_intra) − d(a,n_inter) + M_inter, 0)``

with λ = 0.05, M_intra = 1, M_inter = 2. The DeepRank-style baseline uses
triplets ``(a, p, n)`` with ``p`` any other image of the anchor's class and
``n`` one of another class: ``max(d(a,p) − d(a,n) + M, 0)``.

Sampling draws from a pool of indices (a training batch) with a
``numpy.random.Generator``; anchors without a valid partner are skipped.
The thesis draws every partner at random. :func:`semihard_negatives` is
medlim's option (a stated deviation, planned for a user's folders): the
negative becomes FaceNet's semi-hard one among the batch's other classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medlim.errors import ParameterError

__all__ = [
    "LAMBDA",
    "MARGIN_INTRA",
    "MARGIN_INTER",
    "TRIPLET_MARGIN",
    "sample_quadruplets",
    "sample_triplets",
    "semihard_partners",
    "semihard_negatives",
    "semihard_intra_negatives",
    "oscars_loss",
    "triplet_loss",
]

LAMBDA = 0.05
MARGIN_INTRA = 1.0
MARGIN_INTER = 2.0
#: Margin of the plain triplet baseline (the inter-class margin of OSCARS, for a like-for-like comparison).
TRIPLET_MARGIN = 2.0


def _labels(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ParameterError(f"`{name}` must be a 1-D integer array, {array.dtype} {array.shape} is given.")
    return array.astype(np.int64)


def sample_quadruplets(
    classes: Sequence[int] | np.ndarray,
    bins: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    *,
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """One quadruplet per anchor of the pool where all three partners exist.

    Args:
        classes: ``[N]`` int class label of every item.
        bins: ``[N]`` int anomaly bin of every item (within its class).
        rng: random stream.
        pool: item indices to use as anchors and partners (default all).

    Returns:
        ``np.ndarray[Q, 4]`` int64 rows ``(a, p, n_intra, n_inter)`` of item indices.
    """
    labels, groups = _labels(classes, "classes"), _labels(bins, "bins")
    if labels.shape != groups.shape:
        raise ParameterError(f"`classes` and `bins` differ in length: {len(labels)} and {len(groups)}.")
    members = np.arange(len(labels)) if pool is None else np.asarray(pool, dtype=np.int64)
    rows = []
    for a in members:
        same_class = members[labels[members] == labels[a]]
        positive = same_class[(groups[same_class] == groups[a]) & (same_class != a)]
        intra = same_class[groups[same_class] != groups[a]]
        inter = members[labels[members] != labels[a]]
        if len(positive) and len(intra) and len(inter):
            rows.append((a, rng.choice(positive), rng.choice(intra), rng.choice(inter)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def sample_triplets(
    classes: Sequence[int] | np.ndarray,
    rng: np.random.Generator,
    *,
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """One DeepRank-style triplet ``(a, p, n)`` per anchor of the pool: ``np.ndarray[T, 3]`` int64."""
    labels = _labels(classes, "classes")
    members = np.arange(len(labels)) if pool is None else np.asarray(pool, dtype=np.int64)
    rows = []
    for a in members:
        positive = members[(labels[members] == labels[a]) & (members != a)]
        negative = members[labels[members] != labels[a]]
        if len(positive) and len(negative):
            rows.append((a, rng.choice(positive), rng.choice(negative)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def semihard_partners(distances: np.ndarray, candidates: np.ndarray, anchors: np.ndarray, reference: np.ndarray, *,
                      fallback: np.ndarray) -> np.ndarray:
    """Each anchor's semi-hard partner (FaceNet): of its candidates farther from the anchor than ``reference``,
    the closest; ``fallback`` where none is.

    Args:
        distances: ``[B, B]`` distances between the pool's items.
        candidates: ``[Q, B]`` bool — which items may be each anchor's partner.
        anchors: ``[Q]`` int positions of the anchors in the pool.
        reference: ``[Q]`` float — the distance each partner must exceed.
        fallback: ``[Q]`` int positions used where no item qualifies (the random draw).

    Returns:
        ``np.ndarray[Q]`` int64 positions.
    """
    matrix = np.asarray(distances, dtype=np.float64)
    rows = np.asarray(anchors, dtype=np.int64)
    allowed = np.asarray(candidates, dtype=bool)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ParameterError(f"`distances` must be a square matrix, {matrix.shape} is given.")
    if allowed.shape != (len(rows), matrix.shape[0]):
        raise ParameterError(f"`candidates` must be [{len(rows)}, {matrix.shape[0]}], {allowed.shape} is given.")
    if not (len(rows) == len(reference) == len(fallback)):
        raise ParameterError("`anchors`, `reference` and `fallback` differ in length.")
    near = matrix[rows]
    allowed = allowed & (near > np.asarray(reference, dtype=np.float64)[:, None])
    closest = np.where(allowed, near, np.inf).argmin(axis=1)
    return np.where(allowed.any(axis=1), closest, np.asarray(fallback, dtype=np.int64)).astype(np.int64)


def semihard_negatives(distances: np.ndarray, classes: Sequence[int] | np.ndarray, anchors: np.ndarray,
                       reference: np.ndarray, *, fallback: np.ndarray) -> np.ndarray:
    """Each anchor's semi-hard negative (FaceNet): of the items of another class farther from the anchor than
    ``reference``, the closest; ``fallback`` where there is none.

    Such a negative still violates the margin (it is harder than a random one) without being closer than the
    positive, which early in training makes the hardest negative collapse all vectors to one point.

    Args:
        distances: ``[B, B]`` distances between the pool's items.
        classes: ``[B]`` int class of every item.
        anchors: ``[Q]`` int positions of the anchors in the pool.
        reference: ``[Q]`` float — the distance each negative must exceed (a triplet's anchor–positive
            distance; an OSCARS quadruplet's anchor–intra-class-negative distance).
        fallback: ``[Q]`` int positions used where no item qualifies (the random draw).

    Returns:
        ``np.ndarray[Q]`` int64 positions.
    """
    labels = _labels(classes, "classes")
    rows = np.asarray(anchors, dtype=np.int64)
    if np.asarray(distances).shape != (len(labels), len(labels)):
        raise ParameterError(f"`distances` must be [{len(labels)}, {len(labels)}], {np.asarray(distances).shape} "
                             "is given.")
    return semihard_partners(distances, labels[None, :] != labels[rows][:, None], rows, reference, fallback=fallback)


def semihard_intra_negatives(distances: np.ndarray, classes: Sequence[int] | np.ndarray,
                             bins: Sequence[int] | np.ndarray, anchors: np.ndarray, reference: np.ndarray, *,
                             fallback: np.ndarray) -> np.ndarray:
    """Each anchor's semi-hard intra-class negative for OSCARS: of the items of its own class in another anomaly
    bin farther from the anchor than ``reference`` (the anchor–positive distance), the closest; ``fallback``
    where there is none. The OSCARS term it feeds (λ of eq. 6.1) orders a class's images by anomaly."""
    labels, groups = _labels(classes, "classes"), _labels(bins, "bins")
    if labels.shape != groups.shape:
        raise ParameterError(f"`classes` and `bins` differ in length: {len(labels)} and {len(groups)}.")
    rows = np.asarray(anchors, dtype=np.int64)
    candidates = (labels[None, :] == labels[rows][:, None]) & (groups[None, :] != groups[rows][:, None])
    return semihard_partners(distances, candidates, rows, reference, fallback=fallback)


def _distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Euclidean distance, with a tiny floor so the gradient at zero distance is finite
    return torch.sqrt(((x - y) ** 2).sum(dim=1) + 1e-12)


def oscars_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative_intra: torch.Tensor,
    negative_inter: torch.Tensor,
    *,
    weight: float = LAMBDA,
    margin_intra: float = MARGIN_INTRA,
    margin_inter: float = MARGIN_INTER,
) -> torch.Tensor:
    """Eq. 6.1, averaged over the batch.

    Args:
        anchor, positive, negative_intra, negative_inter: ``Tensor[B, D]`` embeddings.
        weight: λ in [0, 1].
        margin_intra, margin_inter: M_intra, M_inter.

    Returns:
        Scalar tensor.
    """
    if not 0.0 <= weight <= 1.0:
        raise ParameterError(f"`weight` (λ) must be in [0, 1], {weight!r} is given.")
    d_ap = _distance(anchor, positive)
    d_intra = _distance(anchor, negative_intra)
    d_inter = _distance(anchor, negative_inter)
    intra = torch.clamp(d_ap - d_intra + margin_intra, min=0.0)
    inter = torch.clamp(d_intra - d_inter + margin_inter, min=0.0)
    return (weight * intra + (1.0 - weight) * inter).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *,
                 margin: float = TRIPLET_MARGIN) -> torch.Tensor:
    """``mean(max(d(a,p) − d(a,n) + M, 0))`` with Euclidean ``d`` (DeepRank-style baseline)."""
    return torch.clamp(_distance(anchor, positive) - _distance(anchor, negative) + margin, min=0.0).mean()
