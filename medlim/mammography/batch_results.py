"""A finished BAC batch as typed results: per-view rows, per-exam totals, a distribution (issue 15).

A ``bac.quantify`` job (``medlim bac quantify FILES... --background``, or the
mammography page's batch tab) keeps in its result one row per file as the
command prints it (``medlim jobs show ID --json``: ``result.rows``), and the
per-exam totals computed here from those rows (``result.exams``). The page
draws :class:`BatchResults` — the table of views, the exams, the distribution
of a readout over the views — so every number it shows is one the command line
emits for the same job.

An exam is the views of one pseudonymous patient key at one study date (as
``medlim bac longitudinal`` groups them); its totals are
:func:`~medlim.mammography.readout.total_readouts` of its views (thesis §3.3:
Σ TAM_X / breast area is the exam readout; Σ TAM_100 / breast area the
longitudinal one). Views without a patient key or date are in no exam.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medlim.errors import ParameterError
from medlim.mammography.readout import BacReadout, ReadoutTotals, total_readouts

__all__ = ["DISTRIBUTION_METRICS", "BatchExam", "BatchResults", "batch_results", "exam_rows", "readout_from_row"]

#: Readouts whose distribution over a batch's views can be drawn → their label (unit in brackets).
DISTRIBUTION_METRICS: dict[str, str] = {
    "tam_x_per_breast_area": "TAM_X / breast area",
    "tam_x": "TAM_X (px)",
    "tam_x_mm2": "TAM_X (mm²)",
    "am": "AM (px)",
    "am_mm2": "AM (mm²)",
    "pm": "PM (Σ p)",
    "tam_100_per_breast_area": "TAM_100 / breast area",
}
_READOUT_FIELDS = frozenset(field.name for field in dataclasses.fields(BacReadout))


def readout_from_row(row: Mapping[str, Any]) -> BacReadout:
    """The :class:`BacReadout` of one ``ok`` row of ``medlim bac quantify`` (its ``to_dict`` keys; the row's
    own keys — ``ok``, ``reused``, ``index``, ... — are ignored).

    Raises:
        ParameterError: a failed row, or one that lacks a readout field.
    """
    from medlim.core.familiarity import FamiliarityResult
    from medlim.mammography.regions import FilterEffect

    if not row.get("ok"):
        raise ParameterError(f"row {row.get('file')!r} holds no readouts (the file could not be analysed).")
    values = {key: value for key, value in row.items() if key in _READOUT_FIELDS}
    missing = sorted(name for name in _READOUT_FIELDS if name not in values
                     and name not in ("warnings", "seconds", "unlike_training", "model_spacing_mm", "region_filter"))
    if missing:
        raise ParameterError(f"row {row.get('file')!r} lacks {', '.join(missing)}.")
    for name in ("pixel_spacing_mm", "model_spacing_mm"):
        if values.get(name) is not None:
            values[name] = tuple(float(v) for v in values[name])
    values["warnings"] = tuple(values.get("warnings") or ())
    check = values.get("unlike_training")
    values["unlike_training"] = None if check is None else FamiliarityResult.from_dict(check)
    dropped = values.get("region_filter")
    values["region_filter"] = None if dropped is None else FilterEffect.from_dict(dropped)
    return BacReadout(**values)


@dataclass(frozen=True)
class BatchExam:
    """The views of one patient at one study date, summed.

    Attributes:
        patient_key: pseudonymous patient key.
        study_date: ISO date.
        views: each view's name (``"LCC"``, ...; the row's file label when the file records no view).
        totals: the summed readouts (mm² only when every view has them).
        tam_100_per_breast_area_sum: Σ TAM_100 / breast area (the history's readout), ``None`` when no view has it.
    """

    patient_key: str
    study_date: str
    views: tuple[str, ...]
    totals: ReadoutTotals
    tam_100_per_breast_area_sum: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values (``result.exams`` of a ``bac.quantify`` job): ``views`` (names), ``views_counted``,
        the summed readouts (:class:`~medlim.mammography.readout.ReadoutTotals` fields) and the two exam ratios."""
        totals = dataclasses.asdict(self.totals)
        return {"patient_key": self.patient_key, "study_date": self.study_date, "views": list(self.views),
                "views_counted": totals.pop("views"), **totals,
                "tam_100_per_breast_area_sum": self.tam_100_per_breast_area_sum}


def _exams(readouts: Iterable[BacReadout]) -> tuple[BatchExam, ...]:
    groups: dict[tuple[str, str], list[BacReadout]] = {}
    for readout in readouts:
        if readout.patient_key and readout.study_date:
            groups.setdefault((readout.patient_key, readout.study_date), []).append(readout)
    exams = []
    for (patient_key, study_date), members in sorted(groups.items()):
        ratios = [r.tam_100_per_breast_area for r in members if r.tam_100_per_breast_area is not None]
        exams.append(BatchExam(patient_key=patient_key, study_date=study_date,
                               views=tuple(r.view_name or r.file for r in members), totals=total_readouts(members),
                               tam_100_per_breast_area_sum=float(sum(ratios)) if ratios else None))
    return tuple(exams)


def exam_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The per-exam totals of a batch's rows, JSON-able (``result.exams`` of a ``bac.quantify`` job)."""
    return [exam.to_dict() for exam in _exams(readout_from_row(row) for row in rows if row.get("ok"))]


@dataclass(frozen=True)
class BatchResults:
    """A finished ``bac.quantify`` job's results.

    Attributes:
        files: files the job planned.
        failed: files that could not be analysed.
        reused: files read back from the results store.
        rows: the job's rows, in input order (``index`` is each file's place, 1-based).
        readouts: each row's readout (``None`` for a failed file).
        exams: the exams the views make up (by patient key and date).
    """

    files: int
    failed: int
    reused: int
    rows: tuple[Mapping[str, Any], ...]
    readouts: tuple[BacReadout | None, ...]
    exams: tuple[BatchExam, ...]

    @property
    def views_in_no_exam(self) -> int:
        """Analysed views without a patient key or study date."""
        return sum(1 for r in self.readouts if r is not None and not (r.patient_key and r.study_date))

    def distribution(self, metric: str) -> tuple[list[float], list[str]]:
        """``(values, view names)`` of ``metric`` over the analysed views that have it (``"?"``: unknown view).

        Raises:
            ParameterError: ``metric`` is not one of :data:`DISTRIBUTION_METRICS`.
        """
        if metric not in DISTRIBUTION_METRICS:
            raise ParameterError(f"`metric` must be one of {', '.join(DISTRIBUTION_METRICS)}, {metric!r} is given.")
        values, views = [], []
        for readout in self.readouts:
            value = None if readout is None else getattr(readout, metric)
            if value is not None:
                values.append(float(value))
                views.append(readout.view_name or "?")  # type: ignore[union-attr]
        return values, views


def batch_results(result: Mapping[str, Any]) -> BatchResults:
    """The typed results of a ``bac.quantify`` job's ``result`` (``{"files", "failed", "reused", "rows", ...}``).

    Raises:
        ParameterError: a result without rows (not a ``bac.quantify`` job's).
    """
    rows: Sequence[Mapping[str, Any]] = result.get("rows") if isinstance(result, Mapping) else None  # type: ignore[assignment]
    if not isinstance(rows, list):
        raise ParameterError("this job's result holds no BAC rows (is it a bac.quantify job?).")
    readouts = tuple(readout_from_row(row) if row.get("ok") else None for row in rows)
    return BatchResults(files=int(result.get("files", len(rows))), failed=int(result.get("failed", 0)),
                        reused=int(result.get("reused", 0)), rows=tuple(rows), readouts=readouts,
                        exams=_exams(r for r in readouts if r is not None))
