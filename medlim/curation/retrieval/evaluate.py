"""Held-out retrieval evaluation and the comparison tables (thesis Tables 6.1–6.2).

Protocol (both chapters): every held-out image queries all other held-out
images (leave-one-out), so K ≤ 100 needs a held-out set of more than 100
images. OSCARS and its baselines rank by cosine similarity on an exact
:class:`~medlim.curation.retrieval.index.RetrievalIndex`; PMS ranks by DS on
an exact :class:`~medlim.curation.retrieval.pms.PmsCollection`, with each of
the DS weightings asked for.

The tables name metrics by what they compute: P@K is precision (the share of
the top K that is relevant; the thesis's OSCARS "R@K"), shown beside hit@K,
the thesis's OSCARS "P@K" (at least one relevant item in the top K). The same
functions make the tables of the shipped phantom models and of a user's data
(``medlim retrieval evaluate --model NAME --data DIR``).
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
    "column_header",
    "METHOD_TITLES",
    "DS_TITLES",
]

#: Row titles of the single-label methods, in table order.
METHOD_TITLES: dict[str, str] = {"triplet": "Plain triplet (DeepRank-style)", "classification": "Classification embedding",
                                 "oscars": "OSCARS"}
#: Row titles of the PMS DS weightings, in table order (``weighted`` is eq. 6.5, the ``--ds thesis`` weighting).
DS_TITLES: dict[str, str] = {"unweighted": "Unweighted PMS", "weighted": "Weighted PMS",
                             "symmetric": "Symmetric PMS"}
_SHORT = (("full_precision@", "full P@"), ("partial_precision@", "partial P@"), ("full_hit_rate@", "full hit@"),
          ("partial_hit_rate@", "partial hit@"), ("precision@", "P@"), ("hit_rate@", "hit@"), ("sensitivity@", "S@"))


def column_header(column: str) -> str:
    """A metric's column header: ``precision@10`` → ``P@10``, ``hit_rate@10`` → ``hit@10``, ``sensitivity@10`` → ``S@10``."""
    for key, short in _SHORT:
        if column.startswith(key):
            return short + column[len(key):]
    return column


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
        lines = [f"**{self.title}**", "", "| method | " + " | ".join(column_header(c) for c in self.columns) + " |",
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


def evaluate_pms(similarity: np.ndarray, probability: np.ndarray, labels: np.ndarray, *, weighted: bool | None = None,
                 names: Sequence[str], ks: Sequence[int] = (1, 5, 10, 50), ds: str | None = None) -> dict[str, float]:
    """Full- and partial-match precision@K and hit rate@K of PMS (leave-one-out), plus class AUCs.

    Args:
        similarity: ``[N, k]`` s; probability: ``[N, k]`` p; labels: ``[N, k]`` multi-hot.
        weighted: weighted DS (eq. 6.5) or unweighted, when ``ds`` is not given.
        names: class names for the AUC keys (``auc/<name>``).
        ks: cut-offs (each below N).
        ds: ``"thesis"``, ``"symmetric"`` or ``"unweighted"`` (wins over ``weighted``).
    """
    if ds is None and weighted is None:
        raise ParameterError("give the DS weighting: `ds` (or `weighted`).")
    weighting = ds if ds is not None else ("thesis" if weighted else "unweighted")
    collection = PmsCollection(similarity, probability=probability)
    result = collection.search(similarity, probability, max(ks), exclude=np.arange(len(collection)), ds=weighting)
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


def _cutoffs(results: Mapping[str, Mapping[str, Any]], prefix: str) -> list[int]:
    """The K of every ``<prefix>K`` key in any of the results, ascending."""
    return sorted({int(key[len(prefix):]) for values in results.values() for key in values
                   if key.startswith(prefix) and key[len(prefix):].isdigit()})


def comparison_tables(single: Mapping[str, Mapping[str, Any]], pms: Mapping[str, Any], *,
                      classes: Sequence[str] = (), source: str | None = None,
                      row_titles: Mapping[str, str] | None = None) -> list[RetrievalTable]:
    """The thesis-style tables from held-out metrics.

    Args:
        single: method (``oscars``, ``triplet``, ``classification``) → metrics of
            :func:`evaluate_single_label` (plus ``n``).
        pms: ``{"weighted": metrics, "unweighted": metrics[, "symmetric": metrics], "n": count}`` of
            :func:`evaluate_pms` (may be empty; ``weighted`` is the thesis's eq. 6.5).
        classes: PMS class names (AUC columns).
        source: what was evaluated, for captions (``None``: the held-out phantoms of the shipped models).
        row_titles: method → row title instead of :data:`METHOD_TITLES` (e.g. with the model's label).

    Returns:
        Table 6.1-style tables (P@K, hit@K beside it, then S@K — left out for a
        user's data without anomaly scores), then the PMS full/partial P@K and
        hit@K table and the per-class AUC table.
    """
    tables: list[RetrievalTable] = []
    titles = {**METHOD_TITLES, **dict(row_titles or {})}
    rows = {titles[m]: single[m] for m in METHOD_TITLES if m in single}
    if rows:
        n = next(iter(rows.values())).get("n", "?")
        ks = _cutoffs(rows, "precision@") or list(K_VALUES)
        title = "Radiograph phantoms" if source is None else "Your data"
        note = (f"Held-out external radiograph phantoms (n = {n}, leave-one-out); same backbone in every row."
                if source is None else f"{source} (n = {n}, leave-one-out).")
        sensitivity = [f"sensitivity@{k}" for k in ks]
        scored = source is None or any(np.isfinite(float(values.get(c, float("nan"))))
                                       for values in rows.values() for c in sensitivity)
        captions = [("precision@", "P@K, precision: share of the top K in the query's class (thesis R@K); "
                                   "higher is better"),
                    ("hit_rate@", "hit@K, hit rate: at least one of the top K in the query's class (thesis P@K); "
                                  "higher is better")]
        if scored:
            captions.append(("sensitivity@", "S@K outlier sensitivity (lower is better)"))
        notes = (note,) if scored else (note, "S@K is not shown: the images have no anomaly scores "
                                              "(give an anomaly_score column).")
        for metric, caption in captions:
            tables.append(table_from_metrics(f"{title} — {caption}", rows, [f"{metric}{k}" for k in ks], notes=notes))
    if pms:
        results = {title: pms[mode] for mode, title in DS_TITLES.items() if mode in pms}
        ks = _cutoffs(results, "full_precision@") or [1, 5, 10, 50]
        columns = [f"{mode}_{m}{k}" for mode in ("full", "partial") for k in ks for m in ("precision@", "hit_rate@")]
        title = "Chest phantoms" if source is None else "Your data"
        note = (f"Held-out chest phantoms (n = {pms.get('n', '?')}, leave-one-out)." if source is None
                else f"{source} (n = {pms.get('n', '?')}, leave-one-out).")
        tables.append(table_from_metrics(f"{title} — P@K beside hit@K, full and partial match", results, columns,
                                         notes=(note, "Weighted PMS = eq. 6.5 (--ds thesis); symmetric = "
                                                      "weights max(p^q, p^t), a deviation (--ds symmetric).")))
        auc_columns = [f"auc/{c}" for c in classes] + ["auc/micro", "auc/macro", "auc/weighted"]
        # the AUCs depend on the probabilities only: every weighting's metrics hold the same ones
        source_metrics: Mapping[str, Any] = next(
            (pms[mode] for mode in ("weighted", "symmetric", "unweighted") if mode in pms), {})
        tables.append(table_from_metrics(f"{title} — PMS classification AUC per class", {"PMS": source_metrics},
                                         auc_columns))
    return tables
