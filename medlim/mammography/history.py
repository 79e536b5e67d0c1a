"""A patient's BAC history across exams, read from the results store (thesis §3.3.2; issue 17).

The longitudinal readout is Σ TAM_100 / breast area over an exam's views. Every
stored analysis keeps TAM_100 beside the X a person chose
(:attr:`medlim.core.store.StoredBacResult.tam_100`), so the history does not
depend on the cut-off or X an exam was saved at: for each image of the patient
it takes the **latest saved analysis** with the chosen weights (name and
version) that has a TAM_100, and names it by its result id — never by matching
a float cut-off. Exams and the change flags then come from
:func:`medlim.mammography.exam.summarise_exams`, so the page's history plot and
``medlim bac history PATIENT_KEY`` show the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlim.mammography.exam import ExamChange, ExamReadout, ExamSummary, summarise_exams

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store import Store, StoredBacResult

__all__ = ["HistoryEntry", "PatientHistory", "patient_history"]


@dataclass(frozen=True)
class HistoryEntry:
    """One image's analysis in a patient's history.

    Attributes:
        analysis_id: the stored result's id (the key of this entry).
        image: the image's pseudonymous label.
        study_date, laterality, view: from the image (``None`` when not recorded).
        patient_key: the pseudonymous patient key.
        threshold: the cut-off the analysis was saved at.
        x: the X the analysis was saved at (TAM_100 does not depend on it).
        tam_100: TAM_X at X = 100 and ``threshold`` (pixels).
        breast_area: breast pixels.
        saved_at: when the analysis was last saved (UTC).
    """

    analysis_id: int
    image: str
    patient_key: str
    study_date: str | None
    laterality: str | None
    view: str | None
    threshold: float
    x: float
    tam_100: int
    breast_area: int
    saved_at: dt.datetime

    # The attributes summarise_exams reads.
    @property
    def file(self) -> str:
        return self.image

    @property
    def tam_x(self) -> int:
        return self.tam_100

    @property
    def tam_100_per_breast_area(self) -> float | None:
        return self.tam_100 / self.breast_area if self.breast_area > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis_id": self.analysis_id,
            "image": self.image,
            "study_date": self.study_date,
            "laterality": self.laterality,
            "view": self.view,
            "threshold": self.threshold,
            "x": self.x,
            "tam_100": self.tam_100,
            "breast_area": self.breast_area,
            "tam_100_per_breast_area": self.tam_100_per_breast_area,
            "saved_at": self.saved_at.isoformat(),
        }

    @classmethod
    def of(cls, stored: StoredBacResult) -> HistoryEntry:
        image = stored.image
        return cls(
            analysis_id=stored.id,
            image=image.file_name,
            patient_key=image.patient_key or "",
            study_date=image.study_date,
            laterality=image.laterality,
            view=image.view,
            threshold=float(stored.threshold),
            x=float(stored.x),
            tam_100=int(stored.tam_100),
            breast_area=int(stored.breast_area),
            saved_at=stored.updated_at,
        )


@dataclass(frozen=True)
class PatientHistory:
    """One patient's saved exams with one set of weights.

    Attributes:
        patient_key: the pseudonymous key.
        weights_name, weights_version: the weights whose analyses count.
        entries: one per image (its latest saved analysis with a TAM_100), by date then view.
        summary: the entries grouped into exams (Σ TAM_100 / breast area) with change flags.
        without_tam_100: images whose analyses were all saved before TAM_100 was
            kept (migration 0003, X ≠ 100); saving them again brings them in.
        other_weights: ``name@version`` of other weights with saved analyses of this patient.
    """

    patient_key: str
    weights_name: str
    weights_version: str
    entries: tuple[HistoryEntry, ...]
    summary: ExamSummary
    without_tam_100: int = 0
    other_weights: tuple[str, ...] = ()

    @property
    def exams(self) -> tuple[ExamReadout, ...]:
        return self.summary.exams

    @property
    def changes(self) -> tuple[ExamChange, ...]:
        return self.summary.changes

    @property
    def weights_label(self) -> str:
        return f"{self.weights_name}@{self.weights_version}"

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The distinct cut-offs the entries were saved at (the history is comparable when one)."""
        return tuple(sorted({entry.threshold for entry in self.entries}))

    def entries_of(self, exam: ExamReadout) -> tuple[HistoryEntry, ...]:
        """The entries an exam was summed from."""
        return tuple(e for e in self.entries if e.study_date == exam.study_date and e.patient_key == exam.patient_key)

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able row per exam (what ``medlim bac history --jsonl`` prints)."""
        rows = []
        for exam in self.exams:
            change = self.summary.change_before(exam)
            entries = self.entries_of(exam)
            rows.append(
                {
                    "patient_key": exam.patient_key,
                    "study_date": exam.study_date,
                    "weights": self.weights_label,
                    "tam_100_per_breast_area_sum": exam.total,
                    "views_counted": exam.views_counted,
                    "views": list(exam.view_names),
                    "cc_mlo_disagreement": dict(exam.disagreement),
                    "change_from_previous": None if change is None else change.delta,
                    "change_noise": None if change is None else change.noise,
                    "change_is_real": None if change is None else change.is_real,
                    "thresholds": sorted({e.threshold for e in entries}),
                    "analysis_ids": [e.analysis_id for e in entries],
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "patient_key": self.patient_key,
            "weights": self.weights_label,
            "exams": self.rows(),
            "entries": [entry.to_dict() for entry in self.entries],
            "without_tam_100": self.without_tam_100,
            "other_weights": list(self.other_weights),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _latest(results: list[StoredBacResult]) -> StoredBacResult:
    return max(results, key=lambda r: (r.updated_at, r.id))


def patient_history(
    store: Store,
    patient_key: str,
    *,
    weights_name: str,
    weights_version: str,
) -> PatientHistory:
    """The patient's history with one set of weights, from the results store.

    For each image of the patient, its latest saved analysis with these weights
    that has a TAM_100 counts, whatever its cut-off and X.

    Args:
        store: the results store.
        patient_key: the pseudonymous patient key.
        weights_name, weights_version: the weights whose analyses count.

    Returns:
        A :class:`PatientHistory` (no entries when nothing is saved).

    Raises:
        StoreError: the store cannot be read.
    """
    from medlim.core.store import list_bac_results

    stored = list_bac_results(store, patient_key=patient_key)
    chosen = [r for r in stored if (r.weights_name, r.weights_version) == (weights_name, weights_version)]
    others = sorted({f"{r.weights_name}@{r.weights_version}" for r in stored} - {f"{weights_name}@{weights_version}"})
    by_image: dict[int, list[StoredBacResult]] = {}
    for result in chosen:
        by_image.setdefault(result.image.id, []).append(result)
    entries, without = [], 0
    for results in by_image.values():
        known = [r for r in results if r.tam_100 is not None]
        if known:
            entries.append(HistoryEntry.of(_latest(known)))
        else:
            without += 1
    entries.sort(key=lambda e: (e.study_date or "", e.laterality or "", e.view or "", e.analysis_id))
    return PatientHistory(
        patient_key=patient_key,
        weights_name=weights_name,
        weights_version=str(weights_version),
        entries=tuple(entries),
        summary=summarise_exams(entries),
        without_tam_100=without,
        other_weights=tuple(others),
    )
