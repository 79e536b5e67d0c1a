"""MedShift outputs: report JSON, per-image table, plots and the curated manifest (thesis ch. 5, Figs. 5.5–5.10, Table 5.2).

* :func:`report_dict` — everything a curator needs as JSON: settings, k and the
  elbow curve, the TOP-k table, the OTDD curve, the macro-F1 and OTDD series,
  ground-truth evidence when known;
* :func:`image_rows` — one row per external image: ``file, class, score, group``;
* figures (plotly): score histograms internal vs external per class
  (Figs. 5.5–5.6), the elbow curve with the chosen k, the OTDD-versus-TOP-k
  curve with error bars;
* :func:`curated_manifest` — the kept images after tagging;
* :func:`write_outputs` — writes ``report.json``, ``images.csv`` and the
  figures as HTML into one folder.

Every CSV goes through :func:`medlim.core.text.write_csv` (issue 14): a file
name starting with ``=`` or holding a newline cannot run as a spreadsheet
formula or forge a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from medlim.curation.shift.pipeline import ShiftResult

__all__ = [
    "report_dict",
    "image_rows",
    "topk_rows",
    "histogram_figure",
    "elbow_figure",
    "otdd_figure",
    "curated_manifest",
    "write_csv",
    "write_outputs",
    "method_name",
    "report_path",
    "save_result",
    "load_report",
]


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


def report_dict(result: "ShiftResult") -> dict[str, Any]:
    """The run as a JSON-able dict (NaN → ``None``)."""
    counts = {name: np.bincount(result.groups[np.asarray(result.classes) == name], minlength=result.grouping.k).tolist()
              for name in result.grouping.per_class}
    return _clean({
        "internal": result.internal_name,
        "external": result.external_name,
        "k": result.grouping.k,
        "k_rule": "elbow: max distance below the chord of the mean per-class normalised distortion curve"
        if result.grouping.auto else "given",
        "group_scale": result.settings.get("group_scale", "raw"),
        "elbow": {"ks": list(result.grouping.ks), "distortion": result.grouping.distortion.tolist(),
                  "class_elbows": dict(result.grouping.class_elbows)},
        "group_centres": {n: g.centres.tolist() for n, g in result.grouping.per_class.items()},
        "group_counts": counts,
        "topk": [row.to_dict() for row in result.topk],
        "otdd": [{"level": level, **r.to_dict()} for level, r in result.otdd],
        "series": {"levels": [row.level for row in result.topk], "macro_f1": result.macro_f1_series,
                   "otdd_mean": result.otdd_series, "otdd_std": [r.std for _, r in result.otdd]},
        "evidence": dict(result.evidence) if result.evidence is not None else None,
        "settings": dict(result.settings),
    })


def image_rows(result: "ShiftResult") -> list[dict[str, Any]]:
    """``[{"file", "class", "score", "group"}]`` for every scored external image, in dataset order."""
    return [{"file": f, "class": c, "score": float(s), "group": int(g)}
            for f, c, s, g in zip(result.files, result.classes, result.scores, result.groups)]


def topk_rows(result: "ShiftResult") -> list[dict[str, Any]]:
    """Flat TOP-k table (thesis Table 5.2): one row per level and class plus macro / weighted."""
    rows = []
    for row in result.topk:
        for item in (*row.per_class, row.macro, row.weighted):
            rows.append({"subset": f"TOP {row.level}", "class": item.name, "precision": item.precision,
                         "recall": item.recall, "f1": item.f1, "auc": item.auc, "images": item.count})
    return rows


def histogram_figure(internal_scores: Mapping[str, np.ndarray], external_scores: np.ndarray,
                     external_classes: Sequence[str], *, bins: int = 30) -> "go.Figure":
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
        for label, values, colour in (("internal", np.asarray(internal_scores.get(name, [])), "#1f77b4"),
                                      ("external", np.asarray(external_scores)[labels == name], "#d62728")):
            figure.add_trace(go.Histogram(x=values, nbinsx=bins, name=label, marker_color=colour, opacity=0.6,
                                          histnorm="probability", legendgroup=label, showlegend=index == 0),
                             row=row, col=col)
    figure.update_layout(barmode="overlay", height=260 * rows + 60, margin={"t": 80, "b": 30},
                         legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
                         title="Anomaly score, internal (held back) vs external")
    return figure


def elbow_figure(ks: Sequence[int], distortion: Sequence[float], chosen: int) -> "go.Figure":
    """The mean normalised distortion curve with the chosen k marked."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=list(ks), y=list(distortion), mode="lines+markers", name="distortion"))
    if chosen in ks:
        figure.add_trace(go.Scatter(x=[chosen], y=[list(distortion)[list(ks).index(chosen)]], mode="markers",
                                    marker={"size": 14, "color": "#d62728", "symbol": "circle-open"}, name=f"k = {chosen}"))
    figure.update_layout(xaxis_title="k", yaxis_title="mean distortion / distortion at k = 1", height=320,
                         margin={"t": 30}, title="Elbow curve")
    return figure


def otdd_figure(levels: Sequence[int], means: Sequence[float], stds: Sequence[float],
                macro_f1: Sequence[float] | None = None) -> "go.Figure":
    """Mean ± std OTDD versus TOP level (TOP k on the left), with G's macro-F1 on a second axis."""
    import plotly.graph_objects as go

    labels = [f"TOP {level}" for level in levels]
    figure = go.Figure(go.Scatter(x=labels, y=list(means), error_y={"type": "data", "array": list(stds)},
                                  mode="lines+markers", name="OTDD (mean ± std)"))
    if macro_f1 is not None:
        figure.add_trace(go.Scatter(x=labels, y=list(macro_f1), mode="lines+markers", name="macro-F1 of G",
                                    yaxis="y2", line={"dash": "dot"}))
    figure.update_layout(yaxis_title="OTDD to the internal data", height=340, margin={"t": 30},
                         yaxis2={"title": "macro-F1", "overlaying": "y", "side": "right", "range": [0, 1]},
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


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, *, columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: ``columns`` or the first row's keys), formula-safe cells."""
    from medlim.core.text import write_csv as write_safe_csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(columns) if columns is not None else (list(rows[0]) if rows else ["file", "class", "score", "group"])
    with path.open("w", newline="", encoding="utf-8") as handle:
        write_safe_csv(handle, rows, fields)
    return path


def write_outputs(result: "ShiftResult", directory: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``images.csv``, ``topk.csv`` and the figures (HTML) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = report_dict(result)
    paths = {"report": out / "report.json"}
    paths["report"].write_text(json.dumps(report, indent=2), encoding="utf-8")
    paths["images"] = write_csv(image_rows(result), out / "images.csv", columns=["file", "class", "score", "group"])
    paths["topk"] = write_csv(topk_rows(result), out / "topk.csv")
    figures = {
        "histograms": histogram_figure(result.internal_scores, result.scores, result.classes),
        "elbow": elbow_figure(result.grouping.ks, result.grouping.distortion, result.grouping.k),
        "otdd": otdd_figure(report["series"]["levels"], result.otdd_series, [r.std for _, r in result.otdd],
                            result.macro_f1_series),
    }
    for name, figure in figures.items():
        paths[name] = out / f"{name}.html"
        figure.write_html(paths[name], include_plotlyjs="directory")  # one plotly.min.js beside the pages, works offline
    return paths


def method_name(detector: str) -> str:
    """The store's method name of MedShift scores by ``detector`` (``"medshift-cvad"``)."""
    return f"medshift-{detector}"


def report_path(home: str | Path, dataset: str) -> Path:
    """Where the report JSON of ``dataset`` is kept between sessions: ``HOME/shift/<dataset>/report.json``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset) or "dataset"
    return Path(home) / "shift" / safe / "report.json"


def save_result(store: Any, result: "ShiftResult", *, home: str | Path, dataset: str | None = None) -> str:
    """Persist a run: scores and groups in the results store, the report JSON under ``home``.

    Args:
        store: an open :class:`medlim.core.store.Store`.
        result: the run.
        home: ``Settings.home``.
        dataset: store name (default: the external dataset's name).

    Returns:
        The dataset name used.
    """
    from medlim.core.store.curation import save_scores

    name = dataset or result.external_name
    method = method_name(str(result.settings.get("detector", {}).get("kind", "cvad")))
    save_scores(store, name, image_rows(result), method=method)
    path = report_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = report_dict(result)
    report["internal_scores"] = {k: np.asarray(v).tolist() for k, v in result.internal_scores.items()}
    report["method"] = method
    path.write_text(json.dumps(_clean(report)), encoding="utf-8")
    return name


def load_report(home: str | Path, dataset: str) -> dict[str, Any] | None:
    """The saved report of ``dataset`` (``None`` when there is none)."""
    path = report_path(home, dataset)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
