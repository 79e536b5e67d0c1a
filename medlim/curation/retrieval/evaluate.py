"""Held-out retrieval evaluation and the comparison tables (thesis Tables 6.1–6.2).

Protocol (both chapters): every held-out image queries all other held-out
images (leave-one-out), so K ≤ 100 needs a held-out set of more than 100
images. OSCARS and its baselines rank by cosine similarity on an exact
:class:`~medlim.curation.retrieval.index.RetrievalIndex`; PMS ranks by DS on
an exact :class:`~medlim.curation.retrieval.pms.PmsCollection`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlim.curation.retrieval.index import RetrievalIndex
from medlim.curation.retrieval.metrics import (
    K_VALUES,
    class_auc,
    hit_rate_at_k,
    precision_at_k,
    relevance_multilabel,
    relevance_single,
    sensitivity_at_k,
)
from medlim.curation.retrieval.pms import PmsCollection
from medlim.errors import ParameterError

__all__ = [
    "RetrievalTable",
    "leave_one_out_ranking",
    "evaluate_single_label",
    "evaluate_pms",
    "table_from_metrics",
    "comparison_tables",
    "METHOD_TITLES",
]

#: Row titles of the single-label methods, in table order.
METHOD_TITLES: dict[str, str] = {"triplet": "Plain triplet (DeepRank-style)", "classification": "Classification embedding",
                                 "oscars": "OSCARS"}


@dataclass(frozen=True)
class RetrievalTable:
    """A comparison table: one row per method, one column per metric@K.

    Attributes:
        title: caption; columns: metric names (``"precision@10"``, ...);
        rows: ``{method: {column: value}}`` in display order; notes: provenance lines.
    """

    title: str
    columns: tuple[str, ...]
    rows: Mapping[str, Mapping[str, float]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def records(self) -> list[dict[str, Any]]:
        """One dict per method: ``{"method": name, column: value, ...}``."""
        return [{"method": name, **{c: values.get(c, float("nan")) for c in self.columns}}
                for name, values in self.rows.items()]

    def to_markdown(self, *, digits: int = 3) -> str:
        """A Markdown table (values rounded to ``digits``)."""
        lines = [f"**{self.title}**", "", "| method | " + " | ".join(self.columns) + " |",
                 "|---" * (len(self.columns) + 1) + "|"]
        for record in self.records():
            cells = [f"{record[c]:.{digits}f}" if isinstance(record[c], float) else str(record[c]) for c in self.columns]
            lines.append(f"| {record['method']} | " + " | ".join(cells) + " |")
        return "\n".join(lines + [""] + [f"_{n}_" for n in self.notes])


def leave_one_out_ranking(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine ranking of every vector against all others: ``(positions [N, k], similarities [N, k])``."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if len(matrix) <= k:
        raise ParameterError(f"leave-one-out at K = {k} needs more than {k} items, {len(matrix)} are given.")
    result = RetrievalIndex.build(matrix).search(matrix, k + 1)
    positions = np.empty((len(matrix), k), np.int64)
    scores = np.empty((len(matrix), k), np.float32)
    for row in range(len(matrix)):
        keep = result.ids[row] != row
        positions[row] = result.ids[row][keep][:k]
        scores[row] = result.scores[row][keep][:k]
    return positions, scores


def evaluate_single_label(vectors: np.ndarray, classes: np.ndarray, anomaly: np.ndarray, *,
                          ks: Sequence[int] = K_VALUES) -> dict[str, float]:
    """precision@K, hit_rate@K and sensitivity@K of a single-label embedding (leave-one-out).

    Args:
        vectors: ``[N, D]`` embeddings; classes: ``[N]`` int; anomaly: ``[N]`` scaled anomaly scores.
        ks: cut-offs.
    """
    labels = np.asarray(classes)
    ranked, _ = leave_one_out_ranking(vectors, max(ks))
    relevant = relevance_single(labels, labels, ranked)
    out: dict[str, float] = {}
    for k in ks:
        out[f"precision@{k}"] = precision_at_k(relevant, k)
        out[f"hit_rate@{k}"] = hit_rate_at_k(relevant, k)
        out[f"sensitivity@{k}"] = sensitivity_at_k(relevant, k, anomaly, anomaly, ranked)
    return out


def evaluate_pms(similarity: np.ndarray, probability: np.ndarray, labels: np.ndarray, *, weighted: bool,
                 names: Sequence[str], ks: Sequence[int] = (1, 5, 10, 50)) -> dict[str, float]:
    """Full- and partial-match precision@K and hit rate@K of PMS (leave-one-out), plus class AUCs.

    Args:
        similarity: ``[N, k]`` s; probability: ``[N, k]`` p; labels: ``[N, k]`` multi-hot.
        weighted: weighted DS (eq. 6.5) or unweighted.
        names: class names for the AUC keys (``auc/<name>``).
    """
    collection = PmsCollection(similarity)
    result = collection.search(similarity, probability if weighted else None, max(ks),
                               exclude=np.arange(len(collection)))
    out: dict[str, float] = {}
    for mode in ("full", "partial"):
        relevant = relevance_multilabel(labels, labels, result.ids, mode=mode)
        for k in ks:
            out[f"{mode}_precision@{k}"] = precision_at_k(relevant, k)
            out[f"{mode}_hit_rate@{k}"] = hit_rate_at_k(relevant, k)
    for key, value in class_auc(labels, probability, names=names).items():
        out[f"auc/{key}"] = value
    return out


def table_from_metrics(title: str, results: Mapping[str, Mapping[str, float]], columns: Sequence[str], *,
                       notes: Sequence[str] = ()) -> RetrievalTable:
    """Build a :class:`RetrievalTable` from per-method metric dicts (missing columns become NaN)."""
    rows = {method: {c: float(values.get(c, float("nan"))) for c in columns} for method, values in results.items()}
    return RetrievalTable(title=title, columns=tuple(columns), rows=rows, notes=tuple(notes))


def comparison_tables(single: Mapping[str, Mapping[str, Any]], pms: Mapping[str, Any], *,
                      classes: Sequence[str] = ()) -> list[RetrievalTable]:
    """The thesis-style tables from held-out metrics.

    Args:
        single: method (``oscars``, ``triplet``, ``classification``) → metrics of
            :func:`evaluate_single_label` (plus ``n``).
        pms: ``{"weighted": metrics, "unweighted": metrics, "n": count}`` of :func:`evaluate_pms` (may be empty).
        classes: PMS class names (AUC columns).

    Returns:
        Table 6.1-style tables (precision@K, hit rate@K, S@K), then the PMS
        full/partial precision@K table and the per-class AUC table.
    """
    tables: list[RetrievalTable] = []
    rows = {METHOD_TITLES[m]: single[m] for m in METHOD_TITLES if m in single}
    if rows:
        n = next(iter(rows.values())).get("n", "?")
        for metric, caption in (("precision@", "precision@K (thesis R@K; higher is better)"),
                                ("hit_rate@", "hit rate@K (thesis P@K; higher is better)"),
                                ("sensitivity@", "S@K outlier sensitivity (lower is better)")):
            tables.append(table_from_metrics(
                f"Radiograph phantoms — {caption}", rows, [f"{metric}{k}" for k in K_VALUES],
                notes=(f"Held-out external radiograph phantoms (n = {n}, leave-one-out); same backbone in every row.",)))
    if pms:
        results = {"Unweighted PMS": pms.get("unweighted", {}), "Weighted PMS": pms.get("weighted", {})}
        columns = [f"{mode}_precision@{k}" for mode in ("full", "partial") for k in (1, 5, 10, 50)]
        tables.append(table_from_metrics("Chest phantoms — precision@K, full and partial match", results, columns,
                                         notes=(f"Held-out chest phantoms (n = {pms.get('n', '?')}, leave-one-out).",)))
        auc_columns = [f"auc/{c}" for c in classes] + ["auc/micro", "auc/macro", "auc/weighted"]
        tables.append(table_from_metrics("Chest phantoms — PMS classification AUC per class",
                                         {"PMS": pms.get("weighted", {})}, auc_columns))
    return tables
