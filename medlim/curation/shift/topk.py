"""G's TOP-k evaluation on the external data (thesis ch. 5, MedShift step 4, Table 5.2).

TOP k is every external image, TOP k−1 the images left when the
highest-score group of every class is dropped, …, TOP 1 the lowest group of
every class. On each subset G is scored per class and macro / weighted:
precision, recall, F1, one-vs-rest AUC and image counts. The rows are plain
frozen dataclasses (no torch here), so reports read back without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = ["ClassReport", "TopKRow", "classification_report", "topk_table"]


@dataclass(frozen=True)
class ClassReport:
    """Precision, recall, F1, one-vs-rest AUC and image count of one class (or an average)."""

    name: str
    precision: float
    recall: float
    f1: float
    auc: float
    count: int


@dataclass(frozen=True)
class TopKRow:
    """G on one TOP-j subset (thesis Table 5.2).

    Attributes:
        level: j (TOP j keeps the j lowest-score groups of every class).
        count: images in the subset.
        per_class: one :class:`ClassReport` per class.
        macro, weighted: averages (weighted by the class counts).
        accuracy: overall accuracy.
    """

    level: int
    count: int
    per_class: tuple[ClassReport, ...]
    macro: ClassReport
    weighted: ClassReport
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _auc(binary: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if binary.all() or not binary.any():
        return float("nan")
    return float(roc_auc_score(binary, score))


def classification_report(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], *, level: int = 0
) -> TopKRow:
    """Per-class and averaged metrics of predictions ``argmax(probabilities)``.

    Args:
        y_true: ``np.ndarray[N]`` int class indices.
        probabilities: ``np.ndarray[N, C]`` float.
        class_names: the C class names.
        level: the TOP level recorded in the row.

    Returns:
        :class:`TopKRow`. Precision of a class never predicted is 0; AUC is NaN
        for a class absent (or alone) in the subset; macro AUC averages the
        defined ones.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(class_names)
    if probabilities.shape != (len(y_true), n_classes):
        raise ParameterError(f"probabilities must be [N, C] = [{len(y_true)}, {n_classes}], {probabilities.shape} is given.")
    if len(y_true) == 0:
        nan = float("nan")
        return TopKRow(level, 0, tuple(ClassReport(str(c), nan, nan, nan, nan, 0) for c in class_names),
                       ClassReport("macro", nan, nan, nan, nan, 0), ClassReport("weighted", nan, nan, nan, nan, 0), nan)
    predicted = probabilities.argmax(1)
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, predicted, labels=labels, zero_division=0)
    aucs = np.array([_auc(y_true == c, probabilities[:, c]) for c in labels])
    per_class = tuple(ClassReport(str(class_names[c]), float(precision[c]), float(recall[c]), float(f1[c]),
                                  float(aucs[c]), int(support[c])) for c in labels)
    present = support > 0
    weights = support / support.sum()
    defined = present & np.isfinite(aucs)
    macro = ClassReport("macro", float(precision[present].mean()), float(recall[present].mean()),
                        float(f1[present].mean()), float(aucs[defined].mean()) if defined.any() else float("nan"),
                        int(support.sum()))
    weighted_auc = (
        float((aucs[defined] * support[defined]).sum() / support[defined].sum()) if defined.any() else float("nan")
    )
    weighted = ClassReport("weighted", float((precision * weights).sum()), float((recall * weights).sum()),
                           float((f1 * weights).sum()), weighted_auc, int(support.sum()))
    return TopKRow(level=level, count=len(y_true), per_class=per_class, macro=macro, weighted=weighted,
                   accuracy=float((predicted == y_true).mean()))


def topk_table(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    groups: np.ndarray,
    class_names: Sequence[str],
    k: int,
) -> tuple[TopKRow, ...]:
    """G on TOP k, TOP k−1, …, TOP 1 (``groups`` numbered by ascending score, 0 = lowest).

    Returns:
        ``k`` rows, TOP k first.
    """
    groups = np.asarray(groups)
    return tuple(classification_report(np.asarray(y_true)[groups < level], np.asarray(probabilities)[groups < level],
                                       class_names, level=level) for level in range(k, 0, -1))
