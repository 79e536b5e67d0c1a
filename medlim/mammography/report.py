"""The BAC report of one exam: what a radiologist takes away (thesis §3.3; issue 17).

One :class:`BacReport` per exam (pseudonymous patient key + study date): the
weights and preprocessing that produced the numbers, one row per view (the
:class:`~medlim.mammography.readout.BacReadout` values plus the image's content
digest), and the exam readout (Σ TAM_X / breast area at the chosen X, and
Σ TAM_100 / breast area, the longitudinal readout). It is written as
``<patient key>_<study date>_report.csv`` and ``.json`` — by the page's download
buttons and by ``medlim bac report FILES... --out DIR`` alike, from the same
functions, so both give the same files.

No identifying field is ever written: a view is named by its view code
(``"LCC"``) or, when the file does not record it, by the file's pseudonymous
label; the patient appears only as the pseudonymous key.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.mammography.exam import ExamReadout, summarise_exams
from medlim.mammography.readout import AnalysedView, BacReadout, total_readouts

if TYPE_CHECKING:  # pragma: no cover
    from medlim.mammography.analysis import BacModel

__all__ = [
    "NO_DATE",
    "NO_PATIENT_KEY",
    "BacReport",
    "ReportedView",
    "WeightsSummary",
    "build_reports",
    "csv_bytes",
    "numbers_from",
    "pseudonymous_rows",
    "report_stem",
    "reported_view",
]

#: Stand-ins in a report's file name when the files record no patient key or no date.
NO_PATIENT_KEY = "no-patient-key"
NO_DATE = "no-date"

_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WeightsSummary:
    """Which weights and settings produced a report's numbers.

    Attributes:
        name, version, sha256: the weights' registry entry (sha256 of the file).
        preset: preprocessing preset name.
        overlap_px: patch overlap in pixels (512 − stride).
        merge: overlap merge rule.
        skip_background: skip rule of background patches (true, false or ``"black"``).
        output_activation: ``"identity"`` or ``"sigmoid"``.
        intended_use: the entry's intended-use statement.
        gate: the weights' component gate as ``{"floor", "seed"}`` (:mod:`medlim.mammography.gating`), or ``None``.
        region_filter: the weights' region filter (:mod:`medlim.mammography.regions`) as ``{"floor", "threshold"}``
            (its coefficients are in the manifest), or ``None``. Both are deviations from the thesis's single
            cut-off that change every number of the report.
    """

    name: str
    version: str
    sha256: str
    preset: str
    overlap_px: int
    merge: str
    skip_background: bool | str
    output_activation: str
    intended_use: str
    gate: dict[str, float] | None = None
    region_filter: dict[str, float] | None = None

    @classmethod
    def of(cls, bac_model: BacModel) -> WeightsSummary:
        """The summary of a loaded :class:`~medlim.mammography.analysis.BacModel`."""
        entry = bac_model.entry
        return cls(
            name=entry.name,
            version=str(entry.version),
            sha256=entry.sha256,
            preset=bac_model.preset,
            overlap_px=512 - bac_model.stride,
            merge=bac_model.merge,
            skip_background=bac_model.skip,
            output_activation=bac_model.output_activation,
            intended_use=entry.intended_use,
            gate=None if bac_model.gate is None else bac_model.gate.to_json(),
            region_filter=None if bac_model.region_filter is None else {
                "floor": bac_model.region_filter.floor, "threshold": round(bac_model.region_filter.threshold, 6)},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "preset": self.preset,
            "overlap_px": self.overlap_px,
            "merge": self.merge,
            "skip_background": self.skip_background,
            "output_activation": self.output_activation,
            "intended_use": self.intended_use,
            "gate": self.gate,
            "region_filter": self.region_filter,
        }

    @property
    def tiles_text(self) -> str:
        """How the view was tiled, in words."""
        if self.skip_background == "black":
            skip = "only empty black background tiles skipped"
        else:
            skip = "background tiles skipped" if self.skip_background else "every tile analysed"
        return f"overlap {self.overlap_px} px, {self.merge} merge, {skip}"

    @property
    def gate_text(self) -> str | None:
        """The component gate in words (a deviation from the thesis's single cut-off), ``None`` without one."""
        if self.gate is None:
            return None
        return f"regions of p > {self.gate['floor']:g} kept where they reach p > {self.gate['seed']:g}"

    @property
    def region_filter_text(self) -> str | None:
        """The region filter in words (a deviation from the thesis), ``None`` without one."""
        if self.region_filter is None:
            return None
        return f"regions of p > {self.region_filter['floor']:g} judged tissue dropped, fitted on the site's views"

    def settings_text(self, *, threshold: float, x: float, rule: str, dice: float | None = None) -> str:
        """The sentence that says which weights and settings produced the numbers (the BAC page's "Numbers
        from" line; ``medlim bac quantify`` prints it on stderr).

        Args:
            threshold, x, rule: the cut-off, the intensity threshold and its rule (``">"``) of the readouts.
            dice: the weights' held-out phantom Dice from their manifest, when recorded.
        """
        from medlim.mammography.preprocess import PRESET_SUMMARIES

        quality = "" if dice is None else f", held-out phantom Dice {dice:.2f}"
        text = (f"Numbers from {self.name} v{self.version}{quality} · preset {self.preset} "
                f"({PRESET_SUMMARIES.get(self.preset, 'custom preprocessing')}; {self.tiles_text}) · "
                f"cut-off p > {threshold:.2f}, X = {x:g} (I {rule} X)")  # fmt: skip
        if self.gate_text is not None:
            text += f" · gate: {self.gate_text}"
        if self.region_filter_text is not None:
            text += f" · region filter: {self.region_filter_text}"
        return text + "."


@dataclass(frozen=True)
class ReportedView:
    """One view of a report.

    Attributes:
        image: the view code (``"LCC"``) or the file's pseudonymous label.
        readout: the view's readouts (with ``tam_100``).
        content_sha256: sha256 of the file's bytes.
    """

    image: str
    readout: BacReadout
    content_sha256: str


def reported_view(view: AnalysedView) -> ReportedView:
    """A page's analysed view as a report row (TAM_100 computed)."""
    readout = view.readout(with_tam_100=True)
    return ReportedView(image=readout.file, readout=readout, content_sha256=view.content_sha256)


@dataclass(frozen=True)
class BacReport:
    """The report of one exam.

    Attributes:
        patient_key: pseudonymous patient key, or ``None`` when the files record none.
        study_date: ISO exam date, or ``None``.
        weights: the weights and settings used.
        views: the exam's views, in the order given.
        exam: the exam readout at the views' X, or ``None`` when the views cannot
            form one (no view, laterality, key or date).
        exam_tam_100: Σ TAM_100 / breast area over the exam's views (the
            longitudinal readout), or ``None``.
        medlim_version: the medlim version that wrote it.
        notice: the research-use notice.
    """

    patient_key: str | None
    study_date: str | None
    weights: WeightsSummary
    views: tuple[ReportedView, ...]
    exam: ExamReadout | None
    exam_tam_100: float | None
    medlim_version: str
    notice: str

    @property
    def stem(self) -> str:
        """``<patient key>_<study date>_report``: the file names' common part."""
        return report_stem(self.patient_key, self.study_date)

    def records(self) -> list[dict[str, Any]]:
        """One flat row per view (the CSV's rows and the JSON's ``views``)."""
        rows = []
        for view in self.views:
            values = view.readout.to_dict()
            values.pop("file")
            rows.append(
                {
                    "image": view.image,
                    **values,
                    "content_sha256": view.content_sha256,
                    "weights_sha256": self.weights.sha256,
                    "preset": self.weights.preset,
                    "overlap_px": self.weights.overlap_px,
                    "merge": self.weights.merge,
                    "output_activation": self.weights.output_activation,
                    "medlim_version": self.medlim_version,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: notice, weights, views, their sums (``totals``: the page's exam row,
        :class:`~medlim.mammography.readout.ReadoutTotals`, with what the region filter dropped) and the exam
        readout."""
        first = self.views[0].readout if self.views else None
        exam = None
        if self.exam is not None:
            exam = {
                **self.exam.to_dict(),
                "x": first.x if first else None,
                "threshold": first.threshold if first else None,
                "tam_100_per_breast_area_sum": self.exam_tam_100,
            }
        return {
            "notice": self.notice,
            "patient_key": self.patient_key,
            "study_date": self.study_date,
            "weights": self.weights.to_dict(),
            "views": self.records(),
            "totals": dataclasses.asdict(total_readouts([v.readout for v in self.views])),
            "exam": exam,
            "medlim_version": self.medlim_version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> bytes:
        """The view rows as UTF-8 CSV (:func:`csv_bytes`)."""
        return csv_bytes(self.records())

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.csv`` and ``<stem>.json`` into ``folder`` (created when missing).

        Returns:
            The two paths, CSV first.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = folder / f"{self.stem}.csv", folder / f"{self.stem}.json"
        csv_path.write_bytes(self.to_csv())
        json_path.write_text(self.to_json() + "\n", encoding="utf-8")
        return csv_path, json_path


def numbers_from(bac_model: BacModel, *, threshold: float, x: float, rule: str | None = None) -> str:
    """The "Numbers from" sentence of loaded weights (:meth:`WeightsSummary.settings_text`): the BAC page's
    caption and ``medlim bac quantify``'s stderr line.

    Args:
        bac_model: the loaded weights; their manifest's ``whole_image_dice`` is quoted when recorded.
        threshold, x: the cut-off and intensity threshold of the readouts.
        rule: the readouts' intensity rule; ``None``: the weights' preset's (what the readouts use).
    """
    from medlim.mammography.preprocess import get_preset

    metrics = bac_model.entry.metrics if isinstance(bac_model.entry.metrics, dict) else {}
    dice = metrics.get("whole_image_dice")
    return WeightsSummary.of(bac_model).settings_text(
        threshold=threshold, x=x, rule=get_preset(bac_model.preset).intensity_rule if rule is None else rule,
        dice=float(dice) if isinstance(dice, (int, float)) else None)


def build_reports(views: Iterable[ReportedView], weights: WeightsSummary) -> tuple[BacReport, ...]:
    """One report per exam (patient key + study date) of ``views``, sorted by key then date.

    Views without a patient key or date are grouped under ``None`` for the
    missing part (one report for them).

    Args:
        views: the reported views (any order; their order within an exam is kept).
        weights: the weights that produced them.
    """
    from medlim import RESEARCH_USE_NOTICE, __version__

    groups: dict[tuple[str | None, str | None], list[ReportedView]] = {}
    for view in views:
        groups.setdefault((view.readout.patient_key, view.readout.study_date), []).append(view)
    reports = []
    for (patient_key, study_date), members in sorted(groups.items(), key=lambda item: (item[0][0] or "", item[0][1] or "")):
        readouts = [m.readout for m in members]
        at_x = summarise_exams(readouts)
        at_100 = summarise_exams(readouts, tam_100=True)
        reports.append(
            BacReport(
                patient_key=patient_key,
                study_date=study_date,
                weights=weights,
                views=tuple(members),
                exam=at_x.exams[0] if at_x.exams else None,
                exam_tam_100=at_100.exams[0].total if at_100.exams else None,
                medlim_version=__version__,
                notice=RESEARCH_USE_NOTICE,
            )
        )
    return tuple(reports)


def csv_bytes(records: Sequence[Mapping[str, Any]]) -> bytes:
    """``records`` as UTF-8 CSV: lists joined with ``"; "``, ``None`` empty, cells neutralised
    by :func:`medlim.core.text.csv_text` (no formula injection)."""
    from medlim.core.text import csv_text

    rows = [_flat_cells(record) for record in records]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(rows, keys).encode("utf-8")


def _flat_cells(record: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row: a nested object becomes ``<key>_<field>`` columns (``unlike_training_score`` …),
    a list one cell joined with ``"; "``."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            row.update({f"{key}_{field}": inner for field, inner in value.items()})
        elif isinstance(value, (list, tuple)):
            row[key] = "; ".join(str(v) for v in value)
        else:
            row[key] = value
    return row


def pseudonymous_rows(rows: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows for a download: ``file`` replaced by its pseudonymous label, in every text value too.

    Args:
        rows: result rows with a ``file`` key (the name as given).
        labels: label of each file name (:func:`medlim.core.io.pseudonym.file_label`
            of the name when missing).
    """
    from medlim.core.io.pseudonym import file_label

    out = []
    for row in rows:
        name = str(row.get("file") or "")
        if not name:
            out.append(dict(row))
            continue
        label = labels.get(name) or file_label(name)
        names = sorted({name, Path(name).name} - {""}, key=len, reverse=True)
        values = {}
        for key, value in row.items():
            if isinstance(value, str):
                for original in names:
                    value = value.replace(original, label)
            values[key] = value
        out.append({**values, "file": label})
    return out


def report_stem(patient_key: str | None, study_date: str | None) -> str:
    """``<patient key>_<study date>_report`` (stand-ins for what is missing; only ``[A-Za-z0-9._-]``)."""
    key = _SAFE_STEM.sub("-", patient_key or NO_PATIENT_KEY)
    date = _SAFE_STEM.sub("-", study_date or NO_DATE)
    return f"{key}_{date}_report"
