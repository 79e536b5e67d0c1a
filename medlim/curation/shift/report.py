"""MedShift outputs: the typed report, per-image table, TOP-k table, plots and the curated manifest.

Thesis ch. 5, Figs. 5.5–5.10, Table 5.2.

* :class:`ShiftReport` — everything a curator needs, typed: settings, k and
  the elbow curve, the TOP-k rows, the OTDD curve, ground-truth evidence when
  known, the held-back internal scores; ``to_json``/``from_json`` give the
  ``report.json`` the command line writes and the page reads back;
* :func:`image_rows` — one row per external image: ``file, class, score, group``;
* :func:`topk_table_rows` — the flat TOP-k table (Table 5.2) the page shows and
  ``medlim shift topk`` prints;
* figures (plotly, Okabe–Ito colours, every axis titled): score histograms
  internal vs external per class (Figs. 5.5–5.6), the elbow curve with the
  chosen k, the OTDD-versus-TOP-k curve with error bars;
* :func:`curated_rows` — the kept images after tagging, for the page's
  download and ``medlim shift export`` alike;
* :func:`write_outputs` — writes ``report.json``, ``images.csv``, ``topk.csv``
  and the figures as HTML into one folder;
* :func:`save_result` / :func:`load_report` — a run in the results store and
  its report under ``MEDLIM_HOME`` (a taken name is replaced only on request).

Every CSV goes through :func:`medlim.core.text.write_csv` (issue 14): a file
name starting with ``=`` or holding a newline cannot run as a spreadsheet
formula or forge a row.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.colours import OKABE_ITO
from medlim.curation.ood.shift_types import ShiftTypeTable
from medlim.curation.shift.otdd import OtddResult
from medlim.curation.shift.topk import ClassReport, TopKRow
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from medlim.curation.shift.pipeline import ShiftResult

__all__ = [
    "ShiftEvidence",
    "OtddLevel",
    "ShiftReport",
    "TopKTableRow",
    "report_dict",
    "image_rows",
    "topk_table_rows",
    "topk_rows",
    "histogram_figure",
    "elbow_figure",
    "otdd_figure",
    "curated_manifest",
    "curated_rows",
    "curated_csv",
    "write_csv",
    "write_outputs",
    "method_name",
    "report_path",
    "save_result",
    "load_report",
]

#: Colours of the report's charts (Okabe–Ito: internal blue, external orange; no red/green pair).
INTERNAL_COLOUR = OKABE_ITO["blue"]
EXTERNAL_COLOUR = OKABE_ITO["orange"]
MARK_COLOUR = OKABE_ITO["vermillion"]


def _clean(value: Any) -> Any:
    # JSON has no NaN: write null
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    return value


def _number(value: Any) -> float:
    """A JSON number back as a float (``null``, written for NaN, is NaN again)."""
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class ShiftEvidence:
    """Ground-truth checks of a run whose external set knows its shifted images.

    Attributes:
        auroc: AUROC of the score against the shifted flag, all classes pooled (NaN when undefined).
        auroc_per_class: class → AUROC within the class; auroc_class_mean: their mean.
        shifted_fraction_by_group: shifted share of groups 0 … k−1 (NaN for an empty group).
        lowest_group_shifted, highest_group_shifted: the first and last of those.
        n_shifted, n: shifted and scored images.
        shift_types: per shift type (when the external images carry one): images, the share above
            their class detector's calibrated threshold and the AUROC against the unshifted images.
        auroc_parts: with the acquisition statistics fused in (issue 13), the pooled AUROC of each
            view alone (``"cvad"`` or ``"tend"``: the class detector's score, ``"stats"``: the
            acquisition ratio); empty otherwise. ``shift_types`` then holds the fused score
            (labelled by the store's method name, e.g. ``"medshift-cvad"``).
        shift_types_parts: the same views' tables per shift type.
    """

    auroc: float
    auroc_per_class: Mapping[str, float]
    auroc_class_mean: float
    shifted_fraction_by_group: tuple[float, ...]
    lowest_group_shifted: float
    highest_group_shifted: float
    n_shifted: int
    n: int
    shift_types: ShiftTypeTable | None = None
    auroc_parts: Mapping[str, float] = field(default_factory=dict)
    shift_types_parts: Mapping[str, ShiftTypeTable] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        plain = {k: v for k, v in asdict(self).items() if k not in ("shift_types", "auroc_parts", "shift_types_parts")}
        return _clean({**plain, "auroc_per_class": dict(self.auroc_per_class),
                       "shifted_fraction_by_group": list(self.shifted_fraction_by_group),
                       **({"shift_types": self.shift_types.to_dict()} if self.shift_types is not None else {}),
                       **({"auroc_parts": dict(self.auroc_parts)} if self.auroc_parts else {}),
                       **({"shift_types_parts": {name: table.to_dict() for name, table in self.shift_types_parts.items()}}
                          if self.shift_types_parts else {})})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShiftEvidence:
        fractions = tuple(_number(v) for v in data.get("shifted_fraction_by_group", ()))
        return cls(auroc=_number(data.get("auroc")),
                   auroc_per_class={str(k): _number(v) for k, v in (data.get("auroc_per_class") or {}).items()},
                   auroc_class_mean=_number(data.get("auroc_class_mean")), shifted_fraction_by_group=fractions,
                   lowest_group_shifted=_number(data.get("lowest_group_shifted")),
                   highest_group_shifted=_number(data.get("highest_group_shifted")),
                   n_shifted=int(data.get("n_shifted", 0)), n=int(data.get("n", 0)),
                   shift_types=ShiftTypeTable.from_dict(data["shift_types"]) if data.get("shift_types") else None,
                   auroc_parts={str(k): _number(v) for k, v in (data.get("auroc_parts") or {}).items()},
                   shift_types_parts={str(k): ShiftTypeTable.from_dict(v)
                                      for k, v in (data.get("shift_types_parts") or {}).items()})


@dataclass(frozen=True)
class OtddLevel:
    """The OTDD between the internal pool and the TOP ``level`` part of the external pool."""

    level: int
    result: OtddResult

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, **self.result.to_dict()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OtddLevel:
        result = OtddResult(mean=_number(data["mean"]), std=_number(data["std"]),
                            values=tuple(_number(v) for v in data.get("values", ())), n_a=int(data["n_a"]),
                            n_b=int(data["n_b"]), repeats=int(data["repeats"]), p=int(data.get("p", 1)))
        return cls(level=int(data["level"]), result=result)


def _class_report(data: Mapping[str, Any]) -> ClassReport:
    return ClassReport(name=str(data["name"]), precision=_number(data["precision"]), recall=_number(data["recall"]),
                       f1=_number(data["f1"]), auc=_number(data["auc"]), count=int(data["count"]))


def _topk_row(data: Mapping[str, Any]) -> TopKRow:
    return TopKRow(level=int(data["level"]), count=int(data["count"]),
                   per_class=tuple(_class_report(item) for item in data["per_class"]),
                   macro=_class_report(data["macro"]), weighted=_class_report(data["weighted"]),
                   accuracy=_number(data["accuracy"]))


@dataclass(frozen=True)
class ShiftReport:
    """A MedShift run as the page shows it and ``report.json`` keeps it (thesis ch. 5).

    Attributes:
        internal, external: dataset names; method: the store's score method (``"medshift-cvad"``).
        k: groups per class; k_rule: how k was chosen; group_scale: ``"log"`` or ``"raw"``.
        elbow_ks, elbow_distortion: the elbow curve (mean normalised distortion per candidate k).
        class_elbows: class → its own elbow (shown; the shared k comes from the mean curve).
        group_centres: class → ascending group centres; group_counts: class → images per group.
        topk: G on TOP k … TOP 1 (Table 5.2).
        otdd: the OTDD curve, TOP k … TOP 1.
        evidence: ground-truth checks, or ``None`` when the shifted images are unknown.
        settings: the run's settings and sizes (``external_source`` reopens the images).
        internal_scores: class → held-back internal scores (the histograms' internal side).
        group_anchor: ``"threshold"`` when each class's group 0 is its images below
            ``group_floors[class]`` (its detector's calibrated threshold), ``"none"`` when k-means
            alone set the groups (the thesis; reports saved before the anchor existed).
    """

    internal: str
    external: str
    method: str
    k: int
    k_rule: str
    group_scale: str
    elbow_ks: tuple[int, ...]
    elbow_distortion: tuple[float, ...]
    class_elbows: Mapping[str, int] = field(default_factory=dict)
    group_centres: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    group_counts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    topk: tuple[TopKRow, ...] = ()
    otdd: tuple[OtddLevel, ...] = ()
    evidence: ShiftEvidence | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    internal_scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    group_anchor: str = "none"
    group_floors: Mapping[str, float] = field(default_factory=dict)

    @property
    def levels(self) -> list[int]:
        """TOP levels, k first."""
        return [row.level for row in self.topk]

    @property
    def macro_f1(self) -> list[float]:
        """Macro-F1 of G at TOP k, …, TOP 1."""
        return [row.macro.f1 for row in self.topk]

    @property
    def otdd_mean(self) -> list[float]:
        return [level.result.mean for level in self.otdd]

    @property
    def otdd_std(self) -> list[float]:
        return [level.result.std for level in self.otdd]

    @property
    def external_source(self) -> str:
        """The external dataset's spec (a folder or a phantom spec; empty when unknown)."""
        return str(self.settings.get("external_source", "") or "")

    @classmethod
    def from_result(cls, result: ShiftResult) -> ShiftReport:
        """The report of a finished run."""
        grouping = result.grouping
        classes = np.asarray(result.classes)
        return cls(
            internal=result.internal_name, external=result.external_name,
            method=method_name(str(result.settings.get("detector", {}).get("kind", "cvad"))), k=int(grouping.k),
            k_rule="elbow: max distance below the chord of the mean per-class normalised distortion curve"
            if grouping.auto else "given",
            group_scale=str(result.settings.get("group_scale", "raw")),
            elbow_ks=tuple(int(k) for k in grouping.ks),
            elbow_distortion=tuple(float(d) for d in grouping.distortion),
            class_elbows={str(n): int(v) for n, v in grouping.class_elbows.items()},
            group_centres={n: tuple(float(c) for c in g.centres) for n, g in grouping.per_class.items()},
            group_counts={n: tuple(int(c) for c in np.bincount(result.groups[classes == n], minlength=grouping.k))
                          for n in grouping.per_class},
            topk=tuple(result.topk), otdd=tuple(OtddLevel(level=int(level), result=r) for level, r in result.otdd),
            evidence=None if result.evidence is None else ShiftEvidence.from_json(_clean(dict(result.evidence))),
            settings=_clean(dict(result.settings)),
            internal_scores={n: tuple(float(v) for v in np.asarray(values))
                             for n, values in result.internal_scores.items()},
            group_anchor="threshold" if grouping.floors else "none",
            group_floors={str(n): float(v) for n, v in grouping.floors.items()})

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able data (NaN → ``None``); ``series`` holds the curves for plotting tools."""
        return _clean({
            "internal": self.internal, "external": self.external, "method": self.method, "k": self.k,
            "k_rule": self.k_rule, "group_scale": self.group_scale, "group_anchor": self.group_anchor,
            "group_floors": dict(self.group_floors),
            "elbow": {"ks": list(self.elbow_ks), "distortion": list(self.elbow_distortion),
                      "class_elbows": dict(self.class_elbows)},
            "group_centres": {n: list(v) for n, v in self.group_centres.items()},
            "group_counts": {n: list(v) for n, v in self.group_counts.items()},
            "topk": [row.to_dict() for row in self.topk],
            "otdd": [level.to_json() for level in self.otdd],
            "series": {"levels": self.levels, "macro_f1": self.macro_f1, "otdd_mean": self.otdd_mean,
                       "otdd_std": self.otdd_std},
            "evidence": None if self.evidence is None else self.evidence.to_json(),
            "settings": dict(self.settings),
            "internal_scores": {n: list(v) for n, v in self.internal_scores.items()},
        })

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShiftReport:
        """The report from :meth:`to_json`'s data (``series`` is derived, not read).

        Raises:
            ParameterError: the data lacks a field a report needs.
        """
        try:
            elbow = data["elbow"]
            settings = dict(data.get("settings") or {})
            return cls(
                internal=str(data["internal"]), external=str(data["external"]),
                method=str(data.get("method") or method_name(str(settings.get("detector", {}).get("kind", "cvad")))),
                k=int(data["k"]), k_rule=str(data.get("k_rule", "")), group_scale=str(data.get("group_scale", "raw")),
                elbow_ks=tuple(int(k) for k in elbow["ks"]),
                elbow_distortion=tuple(_number(d) for d in elbow["distortion"]),
                class_elbows={str(n): int(v) for n, v in (elbow.get("class_elbows") or {}).items()},
                group_centres={str(n): tuple(_number(c) for c in v) for n, v in data.get("group_centres", {}).items()},
                group_counts={str(n): tuple(int(c) for c in v) for n, v in data.get("group_counts", {}).items()},
                topk=tuple(_topk_row(row) for row in data["topk"]),
                otdd=tuple(OtddLevel.from_json(level) for level in data["otdd"]),
                evidence=None if not data.get("evidence") else ShiftEvidence.from_json(data["evidence"]),
                settings=settings,
                internal_scores={str(n): tuple(_number(v) for v in values)
                                 for n, values in (data.get("internal_scores") or {}).items()},
                group_anchor=str(data.get("group_anchor", "none")),
                group_floors={str(n): float(v) for n, v in (data.get("group_floors") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"a MedShift report lacks or mangles a field ({exc!s}); run MedShift again.") from None


def report_dict(result: ShiftResult) -> dict[str, Any]:
    """The run as JSON-able data: :meth:`ShiftReport.to_json` of :meth:`ShiftReport.from_result`."""
    return ShiftReport.from_result(result).to_json()


@dataclass(frozen=True)
class TopKTableRow:
    """One row of the flat TOP-k table (thesis Table 5.2): G on one subset for one class or an average.

    Attributes:
        level: j of TOP j; class_name: a class, ``"macro"`` or ``"weighted"``;
        precision, recall, f1, auc: G's metrics (AUC NaN when undefined); images: images of that class in the subset.
    """

    level: int
    class_name: str
    precision: float
    recall: float
    f1: float
    auc: float
    images: int

    @property
    def subset(self) -> str:
        return f"TOP {self.level}"

    def to_json(self) -> dict[str, Any]:
        """``subset, class, precision, recall, f1, auc, images`` (``topk.csv``'s columns; NaN kept)."""
        return {"subset": self.subset, "class": self.class_name, "precision": self.precision, "recall": self.recall,
                "f1": self.f1, "auc": self.auc, "images": self.images}


def topk_table_rows(topk: Sequence[TopKRow]) -> tuple[TopKTableRow, ...]:
    """The flat TOP-k table: per level (TOP k first) one row per class, then ``macro`` and ``weighted``."""
    return tuple(TopKTableRow(level=row.level, class_name=item.name, precision=item.precision, recall=item.recall,
                              f1=item.f1, auc=item.auc, images=item.count)
                 for row in topk for item in (*row.per_class, row.macro, row.weighted))


def image_rows(result: ShiftResult) -> list[dict[str, Any]]:
    """``[{"file", "class", "score", "group"}]`` for every scored external image, in dataset order."""
    return [{"file": f, "class": c, "score": float(s), "group": int(g)}
            for f, c, s, g in zip(result.files, result.classes, result.scores, result.groups)]


def topk_rows(result: ShiftResult) -> list[dict[str, Any]]:
    """The flat TOP-k table of a run as dicts (``topk.csv``): :func:`topk_table_rows` of its TOP-k rows."""
    return [row.to_json() for row in topk_table_rows(result.topk)]


def histogram_figure(internal_scores: Mapping[str, Sequence[float]], external_scores: Sequence[float] | np.ndarray,
                     external_classes: Sequence[str], *, bins: int = 30) -> go.Figure:
    """Score histograms, internal (held-back) vs external, one panel per class (thesis Figs. 5.5–5.6)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = sorted(set(external_classes) | set(internal_scores))
    columns = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=names)
    labels = np.asarray(list(external_classes), dtype=object)
    for index, name in enumerate(names):
        row, col = index // columns + 1, index % columns + 1
        for label, values, colour in (("internal", np.asarray(internal_scores.get(name, [])), INTERNAL_COLOUR),
                                      ("external", np.asarray(external_scores)[labels == name], EXTERNAL_COLOUR)):
            figure.add_trace(go.Histogram(x=values, nbinsx=bins, name=label, marker_color=colour, opacity=0.6,
                                          histnorm="probability", legendgroup=label, showlegend=index == 0),
                             row=row, col=col)
        figure.update_xaxes(title_text="anomaly score", row=row, col=col)
        figure.update_yaxes(title_text="share of images", row=row, col=col)
    figure.update_layout(barmode="overlay", height=280 * rows + 60, margin={"t": 80, "b": 30},
                         legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
                         title="Anomaly score, internal (held back) vs external")
    return figure


def elbow_figure(ks: Sequence[int], distortion: Sequence[float], chosen: int) -> go.Figure:
    """The mean normalised distortion curve with the chosen k marked."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=list(ks), y=list(distortion), mode="lines+markers", name="distortion",
                                  line={"color": INTERNAL_COLOUR}))
    if chosen in ks:
        figure.add_trace(go.Scatter(x=[chosen], y=[list(distortion)[list(ks).index(chosen)]], mode="markers",
                                    marker={"size": 14, "color": MARK_COLOUR, "symbol": "circle-open",
                                            "line": {"width": 3}}, name=f"k = {chosen}"))
    figure.update_layout(xaxis_title="groups per class (k)", yaxis_title="mean distortion / distortion at k = 1",
                         height=320, margin={"t": 30}, title="Elbow curve")
    return figure


def otdd_figure(levels: Sequence[int], means: Sequence[float], stds: Sequence[float],
                macro_f1: Sequence[float] | None = None) -> go.Figure:
    """Mean ± std OTDD versus TOP level (TOP k on the left), with G's macro-F1 on a second axis."""
    import plotly.graph_objects as go

    labels = [f"TOP {level}" for level in levels]
    figure = go.Figure(go.Scatter(x=labels, y=list(means), error_y={"type": "data", "array": list(stds)},
                                  mode="lines+markers", name="OTDD (mean ± std)", line={"color": INTERNAL_COLOUR}))
    if macro_f1 is not None:
        figure.add_trace(go.Scatter(x=labels, y=list(macro_f1), mode="lines+markers", name="macro-F1 of G",
                                    yaxis="y2", line={"dash": "dot", "color": EXTERNAL_COLOUR},
                                    marker={"symbol": "square"}))
    figure.update_layout(xaxis_title="external subset (TOP j keeps the j lowest-score groups of every class)",
                         yaxis_title="OTDD to the internal data", height=340, margin={"t": 30},
                         yaxis2={"title": "macro-F1 of G", "overlaying": "y", "side": "right", "range": [0, 1]},
                         legend={"orientation": "h"}, title="Dataset distance versus TOP-k")
    return figure


def curated_manifest(rows: Iterable[Mapping[str, Any]], tags: Mapping[str, str], *,
                     drop_groups_from: int | None = None) -> list[dict[str, Any]]:
    """The kept images: tagged ``keep``, or untagged and not in a dropped group.

    Args:
        rows: per-image rows with at least ``file``, ``class``, ``group`` (and usually ``score``).
        tags: file → ``"keep"`` / ``"drop"`` (a curator's decisions).
        drop_groups_from: when given, untagged images in groups ≥ this are dropped too.

    Returns:
        The kept rows, each with a ``tag`` column (``keep`` or empty).
    """
    if drop_groups_from is not None and (isinstance(drop_groups_from, bool) or drop_groups_from < 0):
        raise ParameterError(f"`drop_groups_from` must be a non-negative integer, {drop_groups_from!r} is given.")
    kept = []
    for row in rows:
        tag = tags.get(str(row["file"]))
        if tag == "drop":
            continue
        if tag is None and drop_groups_from is not None and row.get("group") is not None \
                and int(row["group"]) >= drop_groups_from:
            continue
        kept.append({**row, "tag": tag or ""})
    return kept


def curated_rows(scores: Iterable[Any], tags: Mapping[str, str], *,
                 drop_groups_from: int | None = None) -> list[dict[str, Any]]:
    """The curated manifest of stored scores: the one place its rows are built (page download, CLI export).

    Args:
        scores: stored scores (:class:`medlim.core.store.curation.StoredScore`: ``file``,
            ``class_name``, ``score``, ``group``) of one method.
        tags: file → ``"keep"`` / ``"drop"``.
        drop_groups_from: untagged images in groups ≥ this are dropped too (``None``: none).

    Returns:
        The kept rows ``{"file", "class", "score", "group", "tag"}`` in the order of ``scores``.
    """
    rows = [{"file": s.file, "class": s.class_name, "score": s.score, "group": s.group} for s in scores]
    return curated_manifest(rows, tags, drop_groups_from=drop_groups_from)


#: Columns of the curated manifest.
CURATED_COLUMNS: tuple[str, ...] = ("file", "class", "score", "group", "tag")


def curated_csv(rows: Iterable[Mapping[str, Any]], *, pseudonymise: bool = True) -> str:
    """The curated manifest as CSV text; files named by their pseudonymous label unless ``pseudonymise`` is false.

    A download from the page carries labels (:func:`medlim.core.io.pseudonym.file_label`
    of the file's path in the dataset), never file names; ``medlim shift export``
    on the server writes the paths. Cells are neutralised by :func:`medlim.core.text.csv_text`.
    """
    from medlim.core.io.pseudonym import file_label
    from medlim.core.text import csv_text

    named = ({**row, "file": file_label(row["file"])} for row in rows) if pseudonymise else rows
    return csv_text(named, list(CURATED_COLUMNS))


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, *, columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: ``columns`` or the first row's keys), formula-safe cells."""
    from medlim.core.text import write_csv as write_safe_csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(columns) if columns is not None else (list(rows[0]) if rows else ["file", "class", "score", "group"])
    with path.open("w", newline="", encoding="utf-8") as handle:
        write_safe_csv(handle, rows, fields)
    return path


def write_outputs(result: ShiftResult, directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``images.csv``, ``topk.csv`` and the figures (HTML) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = ShiftReport.from_result(result)
    paths = {"report": out / "report.json"}
    paths["report"].write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    paths["images"] = write_csv(image_rows(result), out / "images.csv", columns=["file", "class", "score", "group"])
    paths["topk"] = write_csv([row.to_json() for row in topk_table_rows(report.topk)], out / "topk.csv")
    figures = {
        "histograms": histogram_figure(report.internal_scores, result.scores, result.classes),
        "elbow": elbow_figure(report.elbow_ks, report.elbow_distortion, report.k),
        "otdd": otdd_figure(report.levels, report.otdd_mean, report.otdd_std, report.macro_f1),
    }
    for name, figure in figures.items():
        paths[name] = out / f"{name}.html"
        figure.write_html(paths[name], include_plotlyjs="directory")  # one plotly.min.js beside the pages, works offline
    return paths


def method_name(detector: str) -> str:
    """The store's method name of MedShift scores by ``detector`` (``"medshift-cvad"``)."""
    return f"medshift-{detector}"


def report_path(home: str | Path, dataset: str) -> Path:
    """Where the report of ``dataset`` is kept between sessions: ``HOME/shift/<dataset>/report.json``.

    A name with characters other than letters, digits, ``-``, ``_`` and ``.``
    (a space) gets those replaced by ``_`` and a short hash of the whole name
    appended, so two names never share a report (``"a b"`` and ``"a_b"``).
    """
    import hashlib

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset) or "dataset"
    if safe != dataset:
        safe = f"{safe}-{hashlib.sha1(dataset.encode('utf-8')).hexdigest()[:8]}"
    return Path(home) / "shift" / safe / "report.json"


def _legacy_report_path(home: str | Path, dataset: str) -> Path:
    # before the hash suffix (reports saved by earlier versions under a name with a space)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset) or "dataset"
    return Path(home) / "shift" / safe / "report.json"


def save_result(store: Any, result: ShiftResult, *, home: str | Path, dataset: str | None = None,
                replace: bool = False) -> str:
    """Persist a run: scores and groups in the results store, the report JSON under ``home``.

    Args:
        store: an open :class:`medlim.core.store.Store`.
        result: the run.
        home: ``Settings.home``.
        dataset: store name (default: the external dataset's name); checked by
            :func:`medlim.core.paths.validate_name`.
        replace: replace a run saved under that name; its scores and tags are
            deleted in the same transaction as the new scores are written.

    Returns:
        The dataset name used.

    Raises:
        RunExistsError: a run is saved under the name and ``replace`` is false (nothing is written).
        InvalidNameError: the name is not a safe name.
    """
    from medlim.core.paths import validate_name
    from medlim.core.store.curation import save_run_scores

    name = validate_name(dataset or result.external_name, what="run name")
    report = ShiftReport.from_result(result)
    save_run_scores(store, name, image_rows(result), method=report.method, replace=replace)
    path = report_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".report.{os.getpid()}.partial")
    partial.write_text(json.dumps(report.to_json()), encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a report
    return name


def load_report(home: str | Path, dataset: str) -> ShiftReport | None:
    """The saved report of ``dataset`` (``None`` when there is none).

    Raises:
        ParameterError: the file is not a MedShift report.
    """
    path = report_path(home, dataset)
    if not path.is_file():
        path = _legacy_report_path(home, dataset)
        if not path.is_file():
            return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError(f"the report of {dataset!r} cannot be read ({type(exc).__name__}); "
                             "run MedShift again.") from None
    return ShiftReport.from_json(data)
