"""The readouts of one mammogram as they leave the program (thesis §3.3.2, eq. 3.8–3.9).

:class:`BacReadout` is the one record of a view's numbers that every consumer
shares: ``medlim bac quantify --jsonl`` prints its :meth:`~BacReadout.to_dict`,
the mammography page renders it, the report writes it and the store keeps it.
Values are rounded once, here (areas in mm² and sums to 4 decimals), so a number
on the page equals the number on the command line for the same file, weights,
cut-off and X (issue 17, "The seam").

:class:`AnalysedView` is one analysed image at the settings a person chose
(cut-off ``t`` and intensity threshold ``X``): the cached analysis, the
recomputed metrics and what identifies the file without naming it.

Besides the chosen X, a readout can carry ``tam_100`` — TAM_X at X = 100, the
longitudinal readout of the thesis (Σ TAM_100 / breast area over an exam) — so a
patient's history never depends on the X an analysis was run at.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.familiarity import FamiliarityResult
    from medlim.core.io.record import ImageRecord
    from medlim.core.store.bac import StoredBacResult
    from medlim.mammography.analysis import BacAnalysis
    from medlim.mammography.cutoffs import CutoffTable
    from medlim.mammography.quantify import BacMetrics
    from medlim.mammography.regions import FilterEffect

__all__ = [
    "HISTORY_X",
    "AnalysedView",
    "BacReadout",
    "ReadoutTotals",
    "context_of",
    "readout_of",
    "total_readouts",
    "tam_100_of",
    "view_label",
    "with_view_labels",
]

#: X of the longitudinal readout (thesis §3.3.2: Σ TAM_100 / breast area).
HISTORY_X = 100.0


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class BacReadout:
    """The five readouts of one view at ``(threshold, x)``, with their context.

    Attributes:
        file: the file's name or label as the caller gave it ("" when none).
        pm: Σ p over the image (4 decimals).
        am: pixels with ``p > threshold``.
        sim: Σ I over those pixels (8-bit grey units).
        tam_x: AM pixels whose intensity passes X (``intensity_rule``).
        tsim_x: Σ I over the TAM_X pixels.
        x: intensity threshold X in [0, 255].
        threshold: probability cut-off t in [0, 1].
        intensity_rule: ``">"`` (thesis) or ``">="`` (published code).
        breast_area: breast pixels.
        breast_area_rule: ``"mask"`` or ``"nonzero"``.
        tam_x_per_breast_area: TAM_X / breast area, or ``None`` when the breast area is 0.
        am_mm2, tam_x_mm2: the areas in mm² (4 decimals), or ``None`` without a pixel spacing.
        pixel_spacing_mm: (row, column) spacing in mm of the image as given, or ``None``.
        spacing_source: where the spacing came from: the file's DICOM attribute
            (``"PixelSpacing"`` …), ``"user"`` (stated by the person) or
            ``"model-default"`` (the file states none; the weights' own is assumed), or ``None``.
        tam_100: TAM_X at X = 100 and the same cut-off (the longitudinal readout),
            or ``None`` when not computed.
        view, laterality, study_date, patient_key: from the file (``None`` when absent);
            the patient only as the pseudonymous key.
        weights: ``name v<version>`` of the weights.
        warnings: plain-language warnings about the image (one of them when the
            training-data check flags it).
        seconds: analysis time (0 for readouts taken from the store).
        unlike_training: the weights' training-data check (issue 13): score, limit and
            flag; ``None`` when the weights carry no check.
        model_spacing_mm: the weights' spacing (mm) when the image was resampled to it for
            inference (issue 13; areas are still pixels of the image as given), else ``None``.
        region_filter: what the weights' region filter dropped from the view (regions, px, mm²;
            :class:`~medlim.mammography.regions.FilterEffect`), ``None`` when they carry none.

    A readout taken from the store (:meth:`from_stored`) keeps the warnings, check, filter account and
    model spacing its analysis gave (the row's ``context``, migration 0006).
    """

    file: str
    pm: float
    am: int
    sim: float
    tam_x: int
    tsim_x: float
    x: float
    threshold: float
    intensity_rule: str
    breast_area: int
    breast_area_rule: str | None
    tam_x_per_breast_area: float | None
    am_mm2: float | None
    tam_x_mm2: float | None
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    tam_100: int | None
    view: str | None
    laterality: str | None
    study_date: str | None
    patient_key: str | None
    weights: str
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    unlike_training: FamiliarityResult | None = None
    model_spacing_mm: tuple[float, float] | None = None
    region_filter: FilterEffect | None = None

    @property
    def spacing_text(self) -> str:
        """Where the mm² come from, in words (the page's caption under the readouts)."""
        from medlim.core.io.record import PIXEL_SPACING_LABELS
        from medlim.core.spacing import MODEL_DEFAULT, USER

        if self.pixel_spacing_mm is None:
            return "The file records no pixel spacing and the weights none: areas in pixels only."
        spacing = f"{self.pixel_spacing_mm[0]:.4g} × {self.pixel_spacing_mm[1]:.4g} mm per pixel"
        if self.spacing_source == USER:
            text = f"mm² at the spacing you stated: {spacing}."
        elif self.spacing_source == MODEL_DEFAULT:
            text = f"The file states no pixel spacing: mm² assume the weights' own, {spacing}."
        else:
            where = PIXEL_SPACING_LABELS.get(self.spacing_source or "", "")
            text = f"mm² from the file's {self.spacing_source}{f' ({where})' if where else ''}: {spacing}."
        if self.model_spacing_mm is not None:
            text += (f" Resampled to the weights' {self.model_spacing_mm[0]:.4g} × {self.model_spacing_mm[1]:.4g} mm "
                     "for inference; areas count pixels of the image as given.")
        return text

    @property
    def tam_100_per_breast_area(self) -> float | None:
        """TAM_100 / breast area, or ``None`` when either is unknown or the area is 0."""
        if self.tam_100 is None or self.breast_area <= 0:
            return None
        return self.tam_100 / self.breast_area

    @property
    def view_name(self) -> str | None:
        """``"LCC"``, ``"RMLO"``, ... or ``None`` when view or laterality is unknown."""
        return f"{self.laterality}{self.view}" if self.view and self.laterality else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values: the keys ``medlim bac quantify --jsonl`` prints."""
        values = dataclasses.asdict(self)
        values["warnings"] = list(self.warnings)
        values["pixel_spacing_mm"] = list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None
        values["model_spacing_mm"] = list(self.model_spacing_mm) if self.model_spacing_mm else None
        values["tam_100_per_breast_area"] = self.tam_100_per_breast_area
        values["unlike_training"] = None if self.unlike_training is None else self.unlike_training.to_dict()
        values["region_filter"] = None if self.region_filter is None else self.region_filter.to_dict()
        return values

    def to_json(self) -> str:
        """One JSON object (one line)."""
        return json.dumps(self.to_dict())

    def with_file(self, file: str) -> BacReadout:
        """The same readout under another file name or label."""
        return dataclasses.replace(self, file=file)

    @classmethod
    def from_stored(cls, stored: StoredBacResult, *, file: str, weights: str) -> BacReadout:
        """A readout from a stored result (0 s), with what the analysis said beside its numbers when the row
        keeps it (its ``context``, :func:`context_of`; rows stored before migration 0006: no warnings)."""
        from medlim.core.familiarity import FamiliarityResult
        from medlim.mammography.regions import FilterEffect

        area = int(stored.breast_area)
        image = stored.image
        context = stored.context or {}
        familiarity, effect, model_spacing = (context.get(k) for k in ("unlike_training", "region_filter",
                                                                         "model_spacing_mm"))
        return cls(
            file=file,
            pm=round(float(stored.pm), 4),
            am=int(stored.am),
            sim=round(float(stored.sim), 4),
            tam_x=int(stored.tam_x),
            tsim_x=round(float(stored.tsim_x), 4),
            x=float(stored.x),
            threshold=float(stored.threshold),
            intensity_rule=_stored_rule(stored.preset),
            breast_area=area,
            breast_area_rule=None,
            tam_x_per_breast_area=(int(stored.tam_x) / area) if area else None,
            am_mm2=_round(stored.am_mm2),
            tam_x_mm2=_round(stored.tam_x_mm2),
            pixel_spacing_mm=image.pixel_spacing_mm,
            spacing_source=stored.spacing_source,
            tam_100=stored.tam_100,
            view=image.view,
            laterality=image.laterality,
            study_date=image.study_date,
            patient_key=image.patient_key,
            weights=weights,
            warnings=tuple(context.get("warnings") or ()),
            unlike_training=None if familiarity is None else FamiliarityResult.from_dict(familiarity),
            model_spacing_mm=None if model_spacing is None else (float(model_spacing[0]), float(model_spacing[1])),
            region_filter=None if effect is None else FilterEffect.from_dict(effect),
        )


def context_of(analysis: BacAnalysis) -> dict[str, Any]:
    """What an analysis says beside its numbers, as the store keeps it (``bac_results.context``; the keys and
    values of a readout's JSON: warnings, unlike_training, region_filter, model_spacing_mm)."""
    return {
        "warnings": list(analysis.warnings),
        "unlike_training": None if analysis.unlike_training is None else analysis.unlike_training.to_dict(),
        "region_filter": None if analysis.region_filter is None else analysis.region_filter.to_dict(),
        "model_spacing_mm": None if analysis.model_spacing_mm is None else [float(v) for v in analysis.model_spacing_mm],
    }


def _stored_rule(preset: str) -> str:
    from medlim.mammography.preprocess import get_preset

    try:
        return get_preset(preset).intensity_rule
    except ParameterError:  # a preset this version does not know: the thesis rule is the default
        return ">"


def tam_100_of(analysis: BacAnalysis, metrics: BacMetrics, table: CutoffTable | None = None) -> int:
    """TAM_X at X = 100 and the cut-off of ``metrics``, from the cached probability map (or its cut-off table)."""
    if metrics.x == HISTORY_X:
        return int(metrics.tam_x)
    from medlim.mammography.analysis import requantify

    return int(requantify(analysis, threshold=metrics.threshold, x=HISTORY_X, table=table).tam_x)


def readout_of(
    analysis: BacAnalysis,
    metrics: BacMetrics | None = None,
    *,
    file: str = "",
    with_tam_100: bool = True,
    table: CutoffTable | None = None,
) -> BacReadout:
    """The :class:`BacReadout` of an analysis.

    Args:
        analysis: the analysed mammogram.
        metrics: readouts at another cut-off or X (from
            :func:`medlim.mammography.analysis.requantify`); ``None``: the analysis' own.
        file: the name or label the readout carries.
        with_tam_100: also compute TAM_100 (one more pass over the probability map
            when X is not 100 and no ``table`` answers it).
        table: the analysis' cut-off table (:mod:`medlim.mammography.cutoffs`), if kept.
    """
    m = analysis.metrics if metrics is None else metrics
    ratio = m.tam_x_per_breast_area
    return BacReadout(
        file=file,
        pm=round(float(m.pm), 4),
        am=int(m.am),
        sim=round(float(m.sim), 4),
        tam_x=int(m.tam_x),
        tsim_x=round(float(m.tsim_x), 4),
        x=float(m.x),
        threshold=float(m.threshold),
        intensity_rule=m.intensity_rule,
        breast_area=int(m.breast_area),
        breast_area_rule=m.breast_area_rule,
        tam_x_per_breast_area=None if math.isnan(ratio) else float(ratio),
        am_mm2=_round(m.am_mm2),
        tam_x_mm2=_round(m.tam_x_mm2),
        pixel_spacing_mm=tuple(float(v) for v in m.pixel_spacing_mm) if m.pixel_spacing_mm else None,
        spacing_source=m.spacing_source,
        tam_100=tam_100_of(analysis, m, table) if with_tam_100 else None,
        view=analysis.view,
        laterality=analysis.laterality,
        study_date=analysis.study_date,
        patient_key=analysis.patient_key,
        weights=analysis.weights,
        warnings=tuple(analysis.warnings),
        seconds=round(float(analysis.seconds), 3),
        unlike_training=analysis.unlike_training,
        model_spacing_mm=analysis.model_spacing_mm,
        region_filter=analysis.region_filter,
    )


def view_label(analysis: BacAnalysis) -> str:
    """``"LCC"``, ``"RMLO"``, ... or the file name when view or laterality is unknown."""
    if analysis.view and analysis.laterality:
        return f"{analysis.laterality}{analysis.view}"
    return analysis.name or "image"


@dataclass(frozen=True)
class AnalysedView:
    """One analysed image at the cut-off and X a person chose.

    Attributes:
        analysis: the cached analysis (probability map; metrics at the weights' defaults).
        metrics: readouts at the chosen cut-off and X (from ``requantify``).
        record: the decoded image (for display and for storing its metadata).
        content_sha256: sha256 of the file bytes (the store's image key).
        file_label: the file's pseudonymous label (:func:`medlim.core.io.pseudonym.file_label`),
            which downloads and the store carry instead of its name.
        cutoffs: the analysis' cut-off table, when kept (TAM_100 from it, no extra pass).
    """

    analysis: BacAnalysis
    metrics: BacMetrics
    record: ImageRecord
    content_sha256: str
    file_label: str = ""
    cutoffs: CutoffTable | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def current(self) -> BacAnalysis:
        """The analysis carrying the chosen ``metrics`` (what is shown, saved and reported)."""
        return dataclasses.replace(self.analysis, metrics=self.metrics)

    @property
    def label(self) -> str:
        """The view (``"LCC"``) or, when the file does not record it, the file name (this session only)."""
        return view_label(self.analysis)

    @property
    def download_label(self) -> str:
        """The view, or the file's pseudonymous label when the view is unknown: what reports carry."""
        if self.analysis.view and self.analysis.laterality:
            return self.label
        if self.file_label:
            return self.file_label
        from medlim.core.io.pseudonym import file_label

        return file_label(self.record.name, content_sha256=self.content_sha256)

    def readout(self, *, with_tam_100: bool = True) -> BacReadout:
        """This view's :class:`BacReadout`, labelled with :attr:`download_label`."""
        return readout_of(self.analysis, self.metrics, file=self.download_label, with_tam_100=with_tam_100,
                          table=self.cutoffs)


@dataclass(frozen=True)
class ReadoutTotals:
    """The readouts of an exam's views summed (the exam row of a readout table).

    Attributes:
        views: views summed.
        pm, am, sim, tam_x, tsim_x, breast_area: sums over the views.
        am_mm2, tam_x_mm2: sums in mm², or ``None`` unless every view has a pixel spacing.
        tam_x_per_breast_area_sum: Σ TAM_X / breast area over the views with a
            breast area (the exam readout at this X), or ``None`` when none has one.
        region_filter_dropped, region_filter_dropped_px: regions and pixels the weights' region filter
            dropped, summed over the views that carry its account, or ``None`` when none does.
        region_filter_dropped_mm2: the same area in mm², or ``None`` unless every such view has it.
    """

    views: int
    pm: float
    am: int
    sim: float
    tam_x: int
    tsim_x: float
    breast_area: int
    am_mm2: float | None
    tam_x_mm2: float | None
    tam_x_per_breast_area_sum: float | None
    region_filter_dropped: int | None = None
    region_filter_dropped_px: int | None = None
    region_filter_dropped_mm2: float | None = None

    @property
    def region_filter_text(self) -> str | None:
        """What the region filter dropped from these views, in words ("2 regions, 1.30 mm²"; px without mm²),
        or ``None`` when no view carries its account (the page's exam table cell, the PDF's exam line)."""
        from medlim.core.text import counted

        if self.region_filter_dropped is None:
            return None
        area = (f"{self.region_filter_dropped_px or 0:,} px" if self.region_filter_dropped_mm2 is None
                else f"{self.region_filter_dropped_mm2:,.2f} mm²")
        return f"{counted(self.region_filter_dropped, 'region')}, {area}"


def total_readouts(readouts: Sequence[BacReadout]) -> ReadoutTotals:
    """Sum the readouts of several views (mm² only when every view has them), and what the region filter
    dropped from them (:class:`ReadoutTotals`)."""
    with_mm = bool(readouts) and all(r.am_mm2 is not None and r.tam_x_mm2 is not None for r in readouts)
    ratios = [r.tam_x_per_breast_area for r in readouts if r.tam_x_per_breast_area is not None]
    effects = [r.region_filter for r in readouts if r.region_filter is not None]
    areas = [e.dropped_mm2 for e in effects]
    return ReadoutTotals(
        views=len(readouts),
        pm=round(sum(r.pm for r in readouts), 4),
        am=sum(r.am for r in readouts),
        sim=round(sum(r.sim for r in readouts), 4),
        tam_x=sum(r.tam_x for r in readouts),
        tsim_x=round(sum(r.tsim_x for r in readouts), 4),
        breast_area=sum(r.breast_area for r in readouts),
        am_mm2=round(sum(r.am_mm2 for r in readouts), 4) if with_mm else None,
        tam_x_mm2=round(sum(r.tam_x_mm2 for r in readouts), 4) if with_mm else None,
        tam_x_per_breast_area_sum=float(sum(ratios)) if ratios else None,
        region_filter_dropped=sum(e.dropped for e in effects) if effects else None,
        region_filter_dropped_px=sum(e.dropped_px for e in effects) if effects else None,
        region_filter_dropped_mm2=(round(sum(a for a in areas if a is not None), 4)
                                   if effects and all(a is not None for a in areas) else None),
    )


def with_view_labels(
    analysis: BacAnalysis, record: ImageRecord, *, laterality: str | None, view: str | None
) -> tuple[BacAnalysis, ImageRecord]:
    """Fill a file's missing laterality and view with what a person set (e.g. for a PNG export).

    Only missing fields are filled; they reach the analysis (exam readout,
    report) and the record's metadata (the store). The "not recorded" warning
    goes once both are known.

    Args:
        analysis: the analysis of the file.
        record: its decoded image.
        laterality: ``"L"``/``"R"`` or ``None``.
        view: ``"CC"``/``"MLO"`` or ``None``.

    Raises:
        ParameterError: an unknown laterality or view.
    """
    from medlim.core.io.record import ImageRecord as Record

    if laterality not in (None, "L", "R") or view not in (None, "CC", "MLO"):
        raise ParameterError(f"laterality must be L or R and view CC or MLO; {laterality!r}, {view!r} is given.")
    if not (laterality or view):
        return analysis, record
    laterality, view = analysis.laterality or laterality, analysis.view or view
    warnings = analysis.warnings
    if laterality and view:
        warnings = tuple(w for w in warnings if not w.startswith("View or laterality is not recorded"))
    analysis = dataclasses.replace(analysis, laterality=laterality, view=view, warnings=warnings)
    meta = dataclasses.replace(record.metadata, laterality=laterality, view=view)
    return analysis, Record(pixels=record.pixels, raw=record.raw, metadata=meta, name=record.name)
