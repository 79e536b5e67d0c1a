"""Exam and longitudinal BAC readouts (thesis §3.3.2).

A screening exam holds four views (LCC, RCC, LMLO, RMLO). The thesis follows a
patient's burden over years as the sum over the exam's views of
``TAM_100 / breast area`` of each view. Here that sum is computed per exam, and
per-view trends are matched by laterality and view across exams.

Change rule (the project's choice, stated so it can be tested): the CC and MLO
views of one breast at one exam image the same arteries, so their normalised
burdens should agree; their disagreement ``d_b = |CC_b − MLO_b|`` is the
measurement noise of that breast at that exam. Between two exams of a patient,

* a per-view change of breast ``b`` is flagged real when
  ``|Δ| > max(d_b(earlier), d_b(later))``;
* the exam total's change is flagged real when
  ``|Δ total| > Σ_b max(d_b(earlier), d_b(later))`` over the breasts present
  in both exams.

When a breast lacks its CC or MLO view at either exam, its noise is unknown and
the flag is ``None`` ("cannot tell"), never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from medlim.errors import ParameterError

__all__ = [
    "ViewReadout",
    "ExamReadout",
    "ViewChange",
    "ExamChange",
    "group_exams",
    "longitudinal_changes",
    "ExamSummary",
    "summarise_exams",
]

_VIEWS = ("CC", "MLO")
_SIDES = ("L", "R")


@dataclass(frozen=True)
class ViewReadout:
    """One view's burden.

    Attributes:
        patient_key: pseudonymous patient key.
        study_date: ISO date of the exam.
        laterality: ``"L"`` or ``"R"``.
        view: ``"CC"`` or ``"MLO"`` (other views are kept but not used for the noise).
        tam: TAM_X of the view (pixels), normally X = 100.
        breast_area: breast pixels of the view (> 0).
        file: source file name, for display.
    """

    patient_key: str
    study_date: str
    laterality: str
    view: str
    tam: float
    breast_area: float
    file: str = ""

    def __post_init__(self) -> None:
        if self.breast_area <= 0:
            raise ParameterError(
                f"breast area must be positive to normalise TAM; {self.breast_area} is given for {self.file or self.view}."
            )

    @property
    def normalised(self) -> float:
        """TAM / breast area (dimensionless)."""
        return self.tam / self.breast_area


@dataclass(frozen=True)
class ExamReadout:
    """All views of one patient at one exam date.

    Attributes:
        patient_key: pseudonymous key.
        study_date: ISO date.
        views: the view readouts (any number; normally four).
        total: Σ over views of TAM / breast area (thesis longitudinal readout).
        views_counted: number of views summed.
        disagreement: per laterality, ``|CC − MLO|`` of the normalised burden, or
            ``None`` when that breast lacks one of the two views.
    """

    patient_key: str
    study_date: str
    views: tuple[ViewReadout, ...]
    total: float
    views_counted: int
    disagreement: dict[str, float | None]

    def view(self, laterality: str, view: str) -> ViewReadout | None:
        """The readout of one view, or ``None`` when absent."""
        for readout in self.views:
            if readout.laterality == laterality and readout.view == view:
                return readout
        return None

    @property
    def view_names(self) -> tuple[str, ...]:
        """``("LCC", "LMLO", ...)`` in the exam's order."""
        return tuple(f"{v.laterality}{v.view}" for v in self.views)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values (the key names of ``medlim bac longitudinal --jsonl``)."""
        return {
            "patient_key": self.patient_key,
            "study_date": self.study_date,
            "tam_x_per_breast_area_sum": self.total,
            "views_counted": self.views_counted,
            "views": list(self.view_names),
            "cc_mlo_disagreement": dict(self.disagreement),
        }


@dataclass(frozen=True)
class ViewChange:
    """Change of one view (laterality + view) between two exams."""

    laterality: str
    view: str
    earlier: float
    later: float
    delta: float
    noise: float | None
    is_real: bool | None


@dataclass(frozen=True)
class ExamChange:
    """Change of the exam total between two consecutive exams of one patient."""

    patient_key: str
    earlier_date: str
    later_date: str
    delta: float
    noise: float | None
    is_real: bool | None
    views: tuple[ViewChange, ...]

    @property
    def flag(self) -> str:
        """The flag in words: ``"real change"``, ``"within view-to-view noise"`` or ``"cannot tell"``."""
        return CHANGE_WORDS[self.is_real]


#: Each change flag in words.
CHANGE_WORDS: dict[bool | None, str] = {True: "real change", False: "within view-to-view noise", None: "cannot tell"}


def _breast_disagreement(views: Iterable[ViewReadout], laterality: str) -> float | None:
    by_view = {v.view: v.normalised for v in views if v.laterality == laterality}
    if not all(name in by_view for name in _VIEWS):
        return None
    return abs(by_view["CC"] - by_view["MLO"])


def group_exams(views: Iterable[ViewReadout]) -> list[ExamReadout]:
    """Group view readouts into exams (patient key + study date), sorted by patient then date.

    A repeated (laterality, view) within one exam is an input error: which one counts
    would be a guess.
    """
    grouped: dict[tuple[str, str], list[ViewReadout]] = defaultdict(list)
    for readout in views:
        grouped[(readout.patient_key, readout.study_date)].append(readout)
    exams = []
    for (patient_key, study_date), members in sorted(grouped.items()):
        seen: set[tuple[str, str]] = set()
        for member in members:
            slot = (member.laterality, member.view)
            if slot in seen:
                raise ParameterError(
                    f"exam {study_date} has two {member.laterality}{member.view} views; keep one per view."
                )
            seen.add(slot)
        exams.append(
            ExamReadout(
                patient_key=patient_key,
                study_date=study_date,
                views=tuple(sorted(members, key=lambda v: (v.laterality, v.view))),
                total=float(sum(m.normalised for m in members)),
                views_counted=len(members),
                disagreement={side: _breast_disagreement(members, side) for side in _SIDES},
            )
        )
    return exams


def _max_or_none(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return max(a, b)


def longitudinal_changes(exams: Iterable[ExamReadout]) -> list[ExamChange]:
    """Changes between consecutive exams of each patient, flagged by the module's rule."""
    by_patient: dict[str, list[ExamReadout]] = defaultdict(list)
    for exam in exams:
        by_patient[exam.patient_key].append(exam)
    changes = []
    for patient_key, series in sorted(by_patient.items()):
        series.sort(key=lambda e: e.study_date)
        for earlier, later in zip(series, series[1:]):
            view_changes = []
            for side in _SIDES:
                noise = _max_or_none(earlier.disagreement.get(side), later.disagreement.get(side))
                for name in _VIEWS:
                    a, b = earlier.view(side, name), later.view(side, name)
                    if a is None or b is None:
                        continue
                    delta = b.normalised - a.normalised
                    view_changes.append(
                        ViewChange(
                            laterality=side,
                            view=name,
                            earlier=a.normalised,
                            later=b.normalised,
                            delta=delta,
                            noise=noise,
                            is_real=None if noise is None else abs(delta) > noise,
                        )
                    )
            sides_in_both = [
                s
                for s in _SIDES
                if any(v.laterality == s for v in earlier.views) and any(v.laterality == s for v in later.views)
            ]
            noises = [_max_or_none(earlier.disagreement.get(s), later.disagreement.get(s)) for s in sides_in_both]
            total_noise = None if (not noises or any(n is None for n in noises)) else float(sum(noises))
            delta_total = later.total - earlier.total
            changes.append(
                ExamChange(
                    patient_key=patient_key,
                    earlier_date=earlier.study_date,
                    later_date=later.study_date,
                    delta=delta_total,
                    noise=total_noise,
                    is_real=None if total_noise is None else abs(delta_total) > total_noise,
                    views=tuple(view_changes),
                )
            )
    return changes


@dataclass(frozen=True)
class ExamSummary:
    """View readouts grouped into exams, with the changes between consecutive exams.

    Attributes:
        exams: one per patient and study date, sorted by patient then date.
        changes: between consecutive exams of each patient.
        unplaced: the files that could not be placed in an exam (no patient key,
            study date, view, laterality or breast area).
    """

    exams: tuple[ExamReadout, ...]
    changes: tuple[ExamChange, ...]
    unplaced: tuple[str, ...]

    def change_before(self, exam: ExamReadout) -> ExamChange | None:
        """The change from the previous exam of the same patient to ``exam``, or ``None`` for a first exam."""
        for change in self.changes:
            if change.patient_key == exam.patient_key and change.later_date == exam.study_date:
                return change
        return None


def summarise_exams(readouts: Iterable[Any], *, tam_100: bool = False) -> ExamSummary:
    """Group per-view readouts into exams and flag the changes between them.

    Args:
        readouts: objects with ``patient_key``, ``study_date``, ``view``,
            ``laterality``, ``tam_x``, ``breast_area``, ``file`` and ``tam_100``
            attributes (:class:`medlim.mammography.readout.BacReadout`).
        tam_100: sum TAM_100 (the longitudinal readout) instead of each readout's TAM_X.

    Returns:
        An :class:`ExamSummary`.

    Raises:
        ParameterError: two readouts of one view in one exam.
    """
    placed, unplaced = [], []
    for readout in readouts:
        tam = readout.tam_100 if tam_100 else readout.tam_x
        known = readout.patient_key and readout.study_date and readout.view and readout.laterality
        if not known or not readout.breast_area or tam is None:
            unplaced.append(str(readout.file))
            continue
        placed.append(
            ViewReadout(
                patient_key=readout.patient_key,
                study_date=readout.study_date,
                laterality=readout.laterality,
                view=readout.view,
                tam=float(tam),
                breast_area=float(readout.breast_area),
                file=str(readout.file),
            )
        )
    exams = group_exams(placed)
    return ExamSummary(tuple(exams), tuple(longitudinal_changes(exams)), tuple(unplaced))
