"""PMS: memory bank, class proxies, joint loss and exact dissimilarity search (thesis §6.2.2, eqs. 6.2–6.5).

* Memory bank (k × M, M = 1000): during the warm-up, the branch embedding
  ``e_i`` of every image positive for class ``i`` is queued in row ``i``,
  first in first out. Proxies ``c_i`` = mean of the stored entries of row ``i``
  (the thesis "voted centres"); the bank is frozen afterwards.
* Loss after the warm-up: ``L = λ·L_cls + (1 − λ)·L_pms``, λ = 0.25, with
  ``L_pms = (L_pos + L_neg)/k``,
  ``L_pos = Σ_i (1 − τ_i)·mean_{positives of i}(1 − cos(c_i, e_i))``,
  ``L_neg = Σ_i τ_i·mean_{negatives of i}|−1 − cos(c_i, e_i)|``,
  τ_i = positive rate of class i in the training set; ``L_cls`` = Σ_i BCE.
* Inference: ``s_i = cos(c_i, e_i)``; weighted dissimilarity
  ``DS(q, t) = Σ_i p_i^q·|s_i^q − s_i^t|`` (unweighted: without ``p_i^q``);
  rank ascending.

Search is exact: :class:`PmsCollection` scores DS against every stored item (a
k-column matrix, so 100,000 items are one vectorised pass) and orders by
``(DS, item position)``. The result is therefore the brute-force ranking by
construction; ``tests/curation/retrieval/test_pms.py`` checks it against a
plain Python loop. (A FAISS candidate stage is not used: DS is a query-weighted
L1 distance, which no FAISS metric expresses, and exact scoring meets the
latency target — see ``benchmarks/bench_retrieval.py``.)

Weighted against unweighted DS on full match. Eq. 6.5 weights each class by
the query's own probability ``p_i^q``, so a class the query is confidently
*without* (``p_i^q ≈ 0``) hardly counts: an item with every finding of the
query plus extra ones scores nearly the same DS as an exact match, and only
the small ``p_i^q`` of the absent classes separate the two (hand-computed in
``test_weighted_ds_barely_separates_supersets``). The weighting can pay off
where the class similarities themselves are noisy (the thesis's MIMIC,
full-match P@10 24.3 for both), and falls behind the unweighted DS on full
match when the ``s_i`` of absent classes are informative — as on the chest
phantoms (``recipe`` module). That held when the phantoms were made as hard
as real films for the classifier (:mod:`medlim.phantoms.chest`, macro AUC
0.82–0.85 on validation): full-match P@10 weighted 0.297 / 0.302 / 0.307
against unweighted 0.432 / 0.413 / 0.437 for training seeds 1 / 2 / 3, with
supersets of the query's labels making 27 % of the weighted top 10 against
15 % of the unweighted (seed 1); the gap narrowed from 0.20 to 0.10 on the
held-out set but did not close. It also held on phantoms with the MIMIC-CXR
label structure (14 classes, hierarchy, co-occurrence, overlapping looks;
``label_set="mimic14"``): held-out full-match P@10 weighted 0.192 against
unweighted 0.242, with the weighted DS ahead only on partial match (P@50
0.707 against 0.665; ``recipe`` module). The thesis and the
authors' public code (``XiaoyuanGuo/PMS``, training only; it has no inference
code) give no other weighting, so eq. 6.5 is kept as written. The authors'
loss matches eqs. 6.2–6.3 up to sign and constants (it maximises ``cos`` for
positives and ``relu(1 − cos)`` for negatives); unlike the thesis it applies
the PMS loss from the first epoch with proxies from an earlier run and uses
Adam (lr 1e-3, weight decay 1e-5); here the thesis's two stages are followed.
With ReLU branch embeddings (thesis and authors' code) every ``s_i`` lies in
[0, 1], so the ``−1`` target of ``L_neg`` is never reached: negatives are
pushed towards orthogonality with their proxy.

Three weightings of DS (``--ds`` on the command line; :mod:`medlim.curation.retrieval.weighting`):
``"thesis"`` (eq. 6.5 as written), ``"symmetric"`` (a deviation that also
counts the candidate's predicted findings, so a candidate with findings the
query lacks is no longer level with an exact match) and ``"unweighted"``.
The weightings and :data:`DEFAULT_DS` live there, without torch, so the
command line can name them without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medlim.curation.retrieval.weighting import DEFAULT_DS, DS_WEIGHTINGS, ds_weights, resolve_ds
from medlim.errors import ParameterError

__all__ = [
    "BANK_SIZE",
    "LAMBDA",
    "DS_WEIGHTINGS",
    "DEFAULT_DS",
    "resolve_ds",
    "ds_weights",
    "MemoryBank",
    "imbalance_ratios",
    "pms_loss",
    "classification_loss",
    "dissimilarity",
    "PmsCollection",
    "PmsResult",
]

BANK_SIZE = 1000
LAMBDA = 0.25


class MemoryBank:
    """A k × M × D FIFO queue of positive branch embeddings per class.

    Args:
        n_classes: k; size: M per class; dim: D.
    """

    def __init__(self, n_classes: int, dim: int, *, size: int = BANK_SIZE) -> None:
        for name, value in (("n_classes", n_classes), ("dim", dim), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")
        self.size = size
        self.bank = torch.zeros(n_classes, size, dim)
        self.count = np.zeros(n_classes, np.int64)  # entries ever pushed per class
        self.frozen = False

    def push(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Queue ``e_i`` of every sample positive for class ``i``.

        Args:
            embeddings: ``Tensor[B, k, D]`` branch embeddings (detached here).
            labels: ``Tensor[B, k]`` multi-hot {0, 1}.
        """
        if self.frozen:
            return
        data = embeddings.detach().to("cpu", torch.float32)
        positive = labels.detach().to("cpu").bool()
        for i in range(self.bank.shape[0]):
            rows = data[positive[:, i], i]
            for row in rows:  # FIFO: the oldest slot is overwritten
                self.bank[i, self.count[i] % self.size] = row
                self.count[i] += 1

    def proxies(self) -> torch.Tensor:
        """``Tensor[k, D]``: the mean of each row's stored entries (zeros for a class never seen)."""
        filled = np.minimum(self.count, self.size)
        out = torch.zeros(self.bank.shape[0], self.bank.shape[2])
        for i, n in enumerate(filled):
            if n:
                out[i] = self.bank[i, : int(n)].mean(dim=0)
        return out

    def freeze(self) -> None:
        """Stop updating (the thesis freezes the bank after the warm-up)."""
        self.frozen = True


def imbalance_ratios(labels: np.ndarray) -> np.ndarray:
    """τ_i = N_i^pos / N for a multi-hot ``[N, k]`` matrix: ``np.ndarray[k]`` float64."""
    matrix = np.asarray(labels)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise ParameterError(f"labels must be a non-empty [N, k] matrix, shape {matrix.shape} is given.")
    return matrix.astype(np.float64).mean(axis=0)


def classification_loss(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``L_cls = Σ_i BCE(p_i, y_i)`` (mean over the batch, summed over classes)."""
    bce = torch.nn.functional.binary_cross_entropy(probabilities.clamp(1e-6, 1 - 1e-6), labels.float(),
                                                   reduction="none")
    return bce.mean(dim=0).sum()


def pms_loss(embeddings: torch.Tensor, labels: torch.Tensor, proxies: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``L_pms = (L_pos + L_neg)/k`` (eqs. 6.2–6.3).

    Args:
        embeddings: ``Tensor[B, k, D]``; labels: ``Tensor[B, k]`` multi-hot;
        proxies: ``Tensor[k, D]``; tau: ``Tensor[k]`` positive rates.

    Returns:
        Scalar tensor. A class without positives (or negatives) in the batch
        contributes nothing to that term.
    """
    k = embeddings.shape[1]
    cos = torch.nn.functional.cosine_similarity(embeddings, proxies.unsqueeze(0).to(embeddings), dim=2, eps=1e-8)
    positive = labels.to(cos.device).bool()
    total = cos.new_zeros(())
    for i in range(k):
        pos, neg = cos[positive[:, i], i], cos[~positive[:, i], i]
        if len(pos):
            total = total + (1.0 - tau[i]) * (1.0 - pos).mean()
        if len(neg):
            total = total + tau[i] * (-1.0 - neg).abs().mean()
    return total / k


def dissimilarity(query_similarity: np.ndarray, query_probability: np.ndarray | None,
                  item_similarity: np.ndarray, *, item_probability: np.ndarray | None = None,
                  ds: str | None = None) -> np.ndarray:
    """DS of one query against items (eq. 6.5 and the weightings of the module docstring).

    Args:
        query_similarity: ``[k]`` s^q; query_probability: ``[k]`` p^q, or
            ``None`` for the unweighted DS; item_similarity: ``[N, k]`` s^t.
        item_probability: ``[N, k]`` p^t (``ds="symmetric"`` only).
        ds: a weighting of :data:`DS_WEIGHTINGS`; ``None``: ``"thesis"`` when
            ``query_probability`` is given, else ``"unweighted"``.

    Returns:
        ``np.ndarray[N]`` float64, lower = more similar.
    """
    weighting = resolve_ds(ds, query_probability)
    columns = np.ascontiguousarray(np.asarray(item_similarity, np.float64).T)
    item_columns = None if item_probability is None else np.asarray(item_probability, np.float64).T
    weights = ds_weights(weighting, query_probability, item_columns)
    return _ds_columns(columns, np.asarray(query_similarity, np.float64), weights)


def _ds_columns(columns: np.ndarray, query: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    # class by class over contiguous columns ([k, N]): fast, and the sum runs in class order,
    # exactly like a plain loop over the classes; weights are None, [k] or [k, N]
    total = np.zeros(columns.shape[1])
    for i in range(columns.shape[0]):
        gap = np.abs(columns[i] - query[i])
        total += gap if weights is None else weights[i] * gap
    return total


@dataclass(frozen=True)
class PmsResult:
    """Nearest items by DS, best (lowest) first.

    Attributes:
        ids: ``np.ndarray[Q, k]`` int64 item ids; distances: ``np.ndarray[Q, k]`` float64 DS.
    """

    ids: np.ndarray
    distances: np.ndarray


class PmsCollection:
    """Items as class-similarity vectors ``s`` (``[N, k]``), searched exactly by DS.

    Args:
        similarity: ``np.ndarray[N, k]`` s^t of the items.
        ids: ``np.ndarray[N]`` int64 item ids (default ``0..N-1``).
        probability: ``np.ndarray[N, k]`` p^t of the items, or ``None`` (then the
            ``"symmetric"`` DS is not available).
    """

    def __init__(self, similarity: np.ndarray, *, ids: np.ndarray | None = None,
                 probability: np.ndarray | None = None) -> None:
        matrix = np.ascontiguousarray(similarity, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] < 1 or not np.all(np.isfinite(matrix)):
            raise ParameterError(f"similarity must be a finite [N, k] matrix, shape {matrix.shape} is given.")
        self.similarity = matrix
        self._columns = np.ascontiguousarray(matrix.T)
        self.ids = np.arange(len(matrix), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if self.ids.shape != (len(matrix),):
            raise ParameterError(f"{len(matrix)} items but {self.ids.shape} ids are given.")
        self._probability_columns = None
        if probability is not None:
            chances = np.asarray(probability, dtype=np.float64)
            if chances.shape != matrix.shape or not np.all(np.isfinite(chances)):
                raise ParameterError(f"probability must be a finite {matrix.shape} matrix, shape {chances.shape} "
                                     "is given.")
            self._probability_columns = np.ascontiguousarray(chances.T)

    def __len__(self) -> int:
        return len(self.similarity)

    def search(self, query_similarity: np.ndarray, query_probability: np.ndarray | None, k: int, *,
               exclude: np.ndarray | None = None, ds: str | None = None) -> PmsResult:
        """The ``k`` items of lowest DS for each query, ties by item position.

        Args:
            query_similarity: ``[Q, k_classes]``; query_probability: ``[Q, k_classes]``
                or ``None`` (unweighted DS).
            k: results per query (capped at the collection size).
            exclude: ``[Q]`` item positions to leave out (leave-one-out
                evaluation), ``-1`` for none.
            ds: a weighting of :data:`DS_WEIGHTINGS`; ``None``: ``"thesis"`` when
                probabilities are given, else ``"unweighted"``.
        """
        weighting = resolve_ds(ds, query_probability)
        queries = np.atleast_2d(np.asarray(query_similarity, np.float64))
        weights = None if query_probability is None else np.atleast_2d(np.asarray(query_probability, np.float64))
        if queries.shape[1] != self.similarity.shape[1] or (weights is not None and weights.shape != queries.shape):
            raise ParameterError(f"queries must be [Q, {self.similarity.shape[1]}], {queries.shape} is given.")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"`k` must be a positive integer, {k!r} is given.")
        available = len(self) - (0 if exclude is None else 1)
        k = int(min(k, max(available, 0)))
        ids = np.empty((len(queries), k), np.int64)
        distances = np.empty((len(queries), k), np.float64)
        positions = np.arange(len(self))
        for q in range(len(queries)):
            class_weights = ds_weights(weighting, None if weights is None else weights[q], self._probability_columns)
            ds_values = _ds_columns(self._columns, queries[q], class_weights)
            if exclude is not None and exclude[q] >= 0:
                ds_values[int(exclude[q])] = np.inf
            if k < len(ds_values):
                # all items with DS ≤ the k-th smallest value, so ties at the boundary are resolved by position
                cut = np.partition(ds_values, k - 1)[k - 1]
                candidates = positions[ds_values <= cut]
            else:
                candidates = positions
            order = candidates[np.lexsort((candidates, ds_values[candidates]))][:k]
            ids[q] = self.ids[order]
            distances[q] = ds_values[order]
        return PmsResult(ids=ids, distances=distances)
