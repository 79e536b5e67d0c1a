"""UI helpers of the mammography (BAC) page (thesis §3.3; issue 3, "Page").

The page is a skin over :mod:`medlim.mammography`: analysis, quantification,
exam grouping and the change rule all come from there, so the page gives the
same numbers as ``medlim bac quantify|longitudinal``. What lives here:

* pure functions (no streamlit) that shape typed results for display — the
  readout table, the calcification overlay figure, the history figure, the
  non-identifying report (CSV/JSON), the mask PNG, zip expansion for the batch
  tab, the bundled sample exams;
* thin streamlit helpers — the cached model loader (``st.cache_resource``), the
  weights picker, and the per-session analysis cache keyed by file content and
  weights (inference runs once per image; sliders call
  :func:`medlim.mammography.analysis.requantify`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from medlim.core.io.files import is_derived_file
from medlim.core.io.pseudonym import file_label
from medlim.core.io.record import ImageRecord
from medlim.core.text import csv_text
from medlim.errors import InputError, ParameterError
from medlim.mammography.analysis import DEFAULT_BAC_WEIGHTS, BacAnalysis, BacModel
from medlim.mammography.exam import ExamChange, ExamReadout
from medlim.mammography.quantify import BacMetrics
from medlim.ui.caching import bounded_cache_resource, lru_put

__all__ = [
    "BAC_TASK",
    "CHANGE_RULE_HELP",
    "METRIC_HELP",
    "HISTORY_X",
    "AnalysedView",
    "SampleExam",
    "bac_weights_options",
    "sample_exams",
    "view_label",
    "readout_rows",
    "exam_readout_rows",
    "block_max",
    "overlay_figure",
    "mask_png",
    "report_records",
    "report_csv",
    "pseudonymous_rows",
    "report_json",
    "history_values",
    "history_figure",
    "change_rows",
    "expand_uploads",
    "load_bac_model_cached",
    "analyse_cached",
    "open_store_cached",
]

#: Registry task of SCU-Net BAC weights.
BAC_TASK = "bac-segmentation"

#: X of the longitudinal readout (thesis §3.3.2: Σ TAM_100 / breast area).
HISTORY_X = 100.0

#: How each readout is computed (thesis eq. 3.8–3.9), for tooltips. ``p``: model
#: output per pixel; ``t``: probability cut-off; ``I``: preprocessed 8-bit intensity.
METRIC_HELP: dict[str, str] = {
    "PM": "Probability mass: Σ p over the whole image (sum of the model's per-pixel output; "
    "no cut-off). Unit: pixels weighted by probability.",
    "AM": "Area mask: number of pixels with p > t (the calcification mask). "
    "In mm² = pixels × row spacing × column spacing, when the file has a pixel spacing.",
    "SIM": "Sum of intensities in the mask: Σ I over pixels with p > t (I = preprocessed 8-bit grey, 0–255).",
    "TAM_X": "Thresholded area mask: pixels with p > t whose intensity I passes X "
    "(I > X in the thesis preset, I ≥ X in the published preset) — the bright, calcified part. "
    "In mm² when the file has a pixel spacing.",
    "TSIM_X": "Thresholded sum of intensities: Σ I over the TAM_X pixels (8-bit grey units).",
    "TAM_X / breast area": "TAM_X divided by the breast area in pixels (dimensionless); "
    "summed over an exam's views it is the longitudinal readout.",
}

#: The change rule of :mod:`medlim.mammography.exam`, in plain words.
CHANGE_RULE_HELP = (
    "Burden per exam = Σ over its views of TAM_100 / breast area. The CC and MLO views of one breast "
    "at one exam show the same arteries, so their difference |CC − MLO| is that breast's view-to-view "
    "noise. A change between two exams is flagged **real** only when it is larger than that noise: "
    "per view, |Δ| > the larger of the two exams' |CC − MLO| for that breast; for the exam total, "
    "|Δ total| > the sum over breasts of those noises. When a breast lacks its CC or MLO view at "
    "either exam the noise is unknown and the flag reads **cannot tell**."
)

_IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg", "")
_OVERLAY_RGB = (255, 48, 32)  # a saturated red-orange: stands out on grey tissue


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class AnalysedView:
    """One analysed image with the readouts at the page's current settings.

    Attributes:
        analysis: the cached analysis (probability map; metrics at the weights' defaults).
        metrics: readouts at the current cut-off and X (from ``requantify``).
        record: the decoded image (for display and storing its metadata).
        content_sha256: sha256 of the file bytes (the store's image key).
        file_label: the file's pseudonymous label (:func:`medlim.core.io.pseudonym.file_label`),
            which downloads carry instead of its name.
    """

    analysis: BacAnalysis
    metrics: BacMetrics
    record: ImageRecord
    content_sha256: str
    file_label: str = ""

    @property
    def current(self) -> BacAnalysis:
        """The analysis carrying the current ``metrics`` (what is shown, saved and reported)."""
        return dataclasses.replace(self.analysis, metrics=self.metrics)

    @property
    def label(self) -> str:
        """The view (``"LCC"``) or, when the file does not record it, the file name (shown in this session only)."""
        return view_label(self.analysis)

    @property
    def download_label(self) -> str:
        """The view, or the file's pseudonymous label when the view is unknown: what downloads carry."""
        if self.analysis.view and self.analysis.laterality:
            return self.label
        return self.file_label or file_label(self.record.name)


@dataclass(frozen=True)
class SampleExam:
    """A group of bundled sample files that belong together (one exam)."""

    label: str
    files: tuple[Path, ...]


def bac_weights_options(entries: Iterable[Any]) -> list[str]:
    """``name:version`` of registry entries with task ``bac-segmentation``, default weights first.

    Args:
        entries: :class:`medlim.core.weights.WeightsEntry` objects.
    """
    chosen = [entry for entry in entries if getattr(entry, "task", "") == BAC_TASK]
    chosen.sort(key=lambda e: (e.name != DEFAULT_BAC_WEIGHTS, e.name, str(e.version)))
    return [f"{entry.name}:{entry.version}" for entry in chosen]


def sample_exams(samples_dir: Path) -> list[SampleExam]:
    """Bundled mammograms grouped into exams by file name (``<patient>_<date>_<view>``).

    Only folders whose path mentions ``mammo`` are read; ground-truth masks
    (``*_bac.png``, ``*_breast.png``, ``*_lookalike.png``, ...) are left out.

    Returns:
        Exams sorted by label; ``[]`` when the folder is absent or holds no mammograms.
    """
    if not samples_dir.is_dir():
        return []
    groups: dict[str, list[Path]] = {}
    for path in sorted(samples_dir.rglob("*")):
        relative = path.relative_to(samples_dir)
        if not path.is_file() or "mammo" not in relative.as_posix().lower():
            continue
        if path.suffix.lower() not in _IMAGE_SUFFIXES[:-1] or is_derived_file(path):
            continue
        prefix, _, _view = path.stem.rpartition("_")
        key = f"{relative.parent.as_posix()}/{prefix or path.stem}"
        groups.setdefault(key, []).append(path)
    exams = []
    for key, files in sorted(groups.items()):
        folder, _, prefix = key.rpartition("/")
        views = ", ".join(p.stem.rpartition("_")[2] for p in files)
        label = f"{prefix.replace('_', ' ')} — {len(files)} view{'s' if len(files) > 1 else ''} ({views}; {folder})"
        exams.append(SampleExam(label=label, files=tuple(files)))
    return exams


def view_label(analysis: BacAnalysis) -> str:
    """``"LCC"``, ``"RMLO"``, ... or the file name when view or laterality is unknown."""
    if analysis.view and analysis.laterality:
        return f"{analysis.laterality}{analysis.view}"
    return analysis.name or "image"


def _mm2(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def readout_rows(views: Sequence[AnalysedView]) -> list[dict[str, Any]]:
    """One row per view with the five readouts, areas in px and mm², and the exam total row.

    The exam row sums each readout over the views (and Σ TAM_X / breast area, the
    longitudinal readout at the current X); mm² totals are given only when every
    view has a pixel spacing.

    Returns:
        Rows with keys ``View, Date, PM, AM (px), AM (mm²), SIM, TAM_X (px),
        TAM_X (mm²), TSIM_X, Breast area (px), TAM_X / breast area``.
    """
    rows = []
    for view in views:
        m = view.metrics
        rows.append(
            {
                "View": view.label,
                "Date": view.analysis.study_date or "—",
                "PM": round(m.pm, 1),
                "AM (px)": m.am,
                "AM (mm²)": _mm2(m.am_mm2),
                "SIM": m.sim,
                "TAM_X (px)": m.tam_x,
                "TAM_X (mm²)": _mm2(m.tam_x_mm2),
                "TSIM_X": m.tsim_x,
                "Breast area (px)": m.breast_area,
                "TAM_X / breast area": None if np.isnan(m.tam_x_per_breast_area) else m.tam_x_per_breast_area,
            }
        )
    if len(rows) > 1:
        with_mm = all(v.metrics.am_mm2 is not None for v in views)
        finite = [r["TAM_X / breast area"] for r in rows if r["TAM_X / breast area"] is not None]
        rows.append(
            {
                "View": f"Σ {len(views)} views",
                "Date": ", ".join(sorted({r["Date"] for r in rows})),
                "PM": round(sum(v.metrics.pm for v in views), 1),
                "AM (px)": sum(v.metrics.am for v in views),
                "AM (mm²)": _mm2(sum(v.metrics.am_mm2 for v in views)) if with_mm else None,
                "SIM": sum(v.metrics.sim for v in views),
                "TAM_X (px)": sum(v.metrics.tam_x for v in views),
                "TAM_X (mm²)": _mm2(sum(v.metrics.tam_x_mm2 for v in views)) if with_mm else None,
                "TSIM_X": sum(v.metrics.tsim_x for v in views),
                "Breast area (px)": sum(v.metrics.breast_area for v in views),
                "TAM_X / breast area": float(sum(finite)) if finite else None,
            }
        )
    return rows


def exam_readout_rows(exams: Sequence[ExamReadout], x: float) -> list[dict[str, Any]]:
    """One row per exam (patient key, date, views, Σ TAM_X / breast area, CC/MLO disagreement)."""
    rows = []
    for exam in exams:
        rows.append(
            {
                "Patient key": exam.patient_key,
                "Exam date": exam.study_date,
                "Views": " ".join(f"{v.laterality}{v.view}" for v in exam.views),
                f"Σ TAM_{x:g} / breast area": exam.total,
                "|CC − MLO| left": exam.disagreement.get("L"),
                "|CC − MLO| right": exam.disagreement.get("R"),
            }
        )
    return rows


def block_max(mask: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a boolean mask by an integer ``factor`` keeping any set pixel (block maximum).

    Thin arteries stay visible on a downsampled display, where averaging would
    wash them out. Crops to whole blocks like :func:`medlim.ui.figures.downsample_for_display`.

    Args:
        mask: ``np.ndarray[H, W]`` of bool (or 0/nonzero).
        factor: integer >= 1.

    Returns:
        ``np.bool_[H // factor, W // factor]``.
    """
    if factor < 1:
        raise ParameterError(f"factor must be >= 1; {factor} is given.")
    mask = np.asarray(mask) != 0
    if factor == 1:
        return mask
    rows, cols = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    blocks = mask[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.any(axis=(1, 3))


def _png_data_uri(array: np.ndarray) -> str:
    import cv2

    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., [2, 1, 0, 3]]  # RGBA -> BGRA for OpenCV
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 array
        raise InputError(f"could not encode a {array.shape} image as PNG.")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def overlay_figure(
    display: np.ndarray,
    mask: np.ndarray | None,
    *,
    factor: int = 1,
    origin: tuple[int, int] = (0, 0),
    opacity: float = 0.6,
    height: int = 720,
    title: str | None = None,
) -> go.Figure:
    """A zoomable mammogram with the calcification mask drawn over it.

    Axes are in full-resolution pixel coordinates of the original image
    whatever ``factor`` and ``origin`` are, so the hover position is the
    position in the file.

    Args:
        display: ``np.ndarray[h, w]`` float in [0, 1], the (windowed, possibly
            downsampled or cropped) grey image.
        mask: ``np.bool_[h, w]`` calcification mask at the same scale, or None for no overlay.
        factor: full-resolution pixels per displayed pixel (>= 1).
        origin: ``(row, column)`` of the top-left displayed pixel in the full image.
        opacity: overlay opacity in [0, 1].
        height: figure height in pixels.
        title: figure title.

    Returns:
        A plotly figure: one grey ``Image`` trace and, with a mask, one RGBA
        ``Image`` trace (transparent outside the mask).
    """
    if not 0.0 <= opacity <= 1.0:
        raise ParameterError(f"overlay opacity must be in [0, 1]; {opacity} is given.")
    if mask is not None and mask.shape != display.shape[:2]:
        raise InputError(f"mask shape {mask.shape} differs from the displayed image {display.shape[:2]}.")
    grey = np.clip(np.rint(np.asarray(display, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    row0, col0 = origin
    placement = {"x0": col0 + (factor - 1) / 2.0, "y0": row0 + (factor - 1) / 2.0, "dx": factor, "dy": factor}
    figure = go.Figure(go.Image(source=_png_data_uri(grey), name="mammogram", hoverinfo="x+y", **placement))
    if mask is not None:
        rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
        rgba[mask] = (*_OVERLAY_RGB, 255)
        figure.add_trace(
            go.Image(
                source=_png_data_uri(rgba), name="calcification mask", opacity=opacity, hoverinfo="skip", **placement
            )
        )
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        dragmode="zoom",
        xaxis={"title": "column (px)", "constrain": "domain"},
        yaxis={
            "title": "row (px)",
            "autorange": "reversed",
            "scaleanchor": "x",
            "scaleratio": 1,
            "constrain": "domain",
        },
    )
    return figure


def mask_png(analysis: BacAnalysis, *, threshold: float) -> bytes:
    """The full-size calcification mask as an 8-bit PNG, 255 where ``p > threshold`` else 0."""
    import cv2

    ok, encoded = cv2.imencode(".png", analysis.mask(threshold))
    if not ok:  # pragma: no cover
        raise InputError("could not encode the mask as PNG.")
    return encoded.tobytes()


def report_records(views: Sequence[AnalysedView], bac_model: BacModel) -> list[dict[str, Any]]:
    """The report rows: one per view, no identifying fields.

    Keys are those of :func:`medlim.mammography.batch.outcome_record` (the CLI's
    output, so page and CLI agree) without ``file`` (file names may carry names or
    IDs; ``image`` is the view or the file's pseudonymous label), plus the image's content sha256, the weights' preset and merge settings,
    and the medlim version. The patient appears only as the pseudonymous key.
    """
    from medlim import __version__
    from medlim.mammography.batch import outcome_record

    records = []
    for view in views:
        values = outcome_record(view.current, file="")
        values.pop("file")
        records.append(
            {
                "image": view.download_label,
                **values,
                "breast_area_rule": view.metrics.breast_area_rule,
                "pixel_spacing_mm": list(view.metrics.pixel_spacing_mm) if view.metrics.pixel_spacing_mm else None,
                "content_sha256": view.content_sha256,
                "weights_sha256": bac_model.entry.sha256,
                "preset": bac_model.preset,
                "overlap_px": 512 - bac_model.stride,
                "merge": bac_model.merge,
                "output_activation": bac_model.output_activation,
                "medlim_version": __version__,
            }
        )
    return records


def report_csv(records: Sequence[dict[str, Any]]) -> bytes:
    """``records`` as UTF-8 CSV (lists joined with ``"; "``, ``None`` as empty, cells neutralised
    by :func:`medlim.core.text.csv_text`)."""
    keys = list(dict.fromkeys(key for record in records for key in record))
    rows = [
        {key: "; ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
         for key, value in record.items()}
        for record in records
    ]
    return csv_text(rows, keys).encode("utf-8")


def pseudonymous_rows(rows: Iterable[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Rows for a download: ``file`` replaced by its pseudonymous label, in every text value too.

    Args:
        rows: result rows with a ``file`` key (the name as uploaded).
        labels: label of each file name (:func:`file_label` of the name when missing).
    """
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


def report_json(
    records: Sequence[dict[str, Any]],
    *,
    bac_model: BacModel,
    exams: Sequence[ExamReadout] = (),
    x: float,
) -> bytes:
    """A JSON report: the weights and preset, one object per view, and the exam readouts."""
    from medlim import RESEARCH_USE_NOTICE

    entry = bac_model.entry
    document = {
        "notice": RESEARCH_USE_NOTICE,
        "weights": {
            "name": entry.name,
            "version": entry.version,
            "sha256": entry.sha256,
            "preset": bac_model.preset,
            "overlap_px": 512 - bac_model.stride,
            "merge": bac_model.merge,
            "skip_background": bac_model.skip,
            "output_activation": bac_model.output_activation,
            "intended_use": entry.intended_use,
        },
        "views": list(records),
        "exams": [
            {
                "patient_key": exam.patient_key,
                "study_date": exam.study_date,
                "x": x,
                "tam_x_per_breast_area_sum": exam.total,
                "views": [f"{v.laterality}{v.view}" for v in exam.views],
                "cc_mlo_disagreement": exam.disagreement,
            }
            for exam in exams
        ],
    }
    return json.dumps(document, indent=2).encode("utf-8")


def history_values(
    stored: Iterable[Any],
    *,
    weights_name: str,
    weights_version: str,
    threshold: float,
    x: float = HISTORY_X,
) -> list[dict[str, Any]]:
    """Stored results of one set of weights at cut-off ``threshold`` and ``x``, as
    :func:`medlim.mammography.batch.exam_rows` values.

    Args:
        stored: :class:`medlim.core.store.StoredBacResult` rows (e.g. one patient's).
        weights_name, weights_version: the weights whose results count.
        threshold: probability cut-off the results were computed at.
        x: intensity threshold (default 100: the longitudinal TAM_100).
    """
    values = []
    for result in stored:
        if (
            result.weights_name != weights_name
            or result.weights_version != weights_version
            or abs(result.threshold - threshold) > 1e-9
            or abs(result.x - x) > 1e-9
        ):
            continue
        image = result.image
        values.append(
            {
                "file": image.file_name,
                "patient_key": image.patient_key,
                "study_date": image.study_date,
                "view": image.view,
                "laterality": image.laterality,
                "tam_x": result.tam_x,
                "breast_area": result.breast_area,
            }
        )
    return values


_FLAG_STYLE = {
    True: ("real change", "#C0392B", "star", 18),
    False: ("within view-to-view noise", "#7F8C8D", "circle", 13),
    None: ("cannot tell (a CC or MLO view is missing)", "#7F8C8D", "circle-open", 15),
}


def history_figure(exams: Sequence[ExamReadout], changes: Sequence[ExamChange], *, x: float = HISTORY_X) -> go.Figure:
    """The patient's burden across exam dates, per-view trends and change flags.

    Args:
        exams: one patient's exams (from ``group_exams``), any order.
        changes: their consecutive changes (from ``longitudinal_changes``).
        x: the X of the readout (for the axis title).

    Returns:
        A plotly figure: each view (LCC, RCC, LMLO, RMLO) dotted, the exam total
        (Σ TAM_X / breast area) as a solid line drawn over them, and one marker
        per change at the later exam, styled by its flag (real / within noise /
        cannot tell).
    """
    ordered = sorted(exams, key=lambda e: e.study_date)
    dates = [e.study_date for e in ordered]
    figure = go.Figure()
    view_names = sorted({(v.laterality, v.view) for e in ordered for v in e.views})
    for laterality, view in view_names:
        points = [(e.study_date, e.view(laterality, view)) for e in ordered]
        points = [(d, v.normalised) for d, v in points if v is not None]
        figure.add_trace(
            go.Scatter(
                x=[d for d, _ in points],
                y=[value for _, value in points],
                mode="lines+markers",
                name=f"{laterality}{view}",
                line={"dash": "dot", "width": 1.5},
                marker={"size": 6},
                hovertemplate=f"{laterality}{view} %{{x}}: %{{y:.3g}}<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=dates,
            y=[e.total for e in ordered],
            mode="lines+markers",
            name=f"Exam: Σ TAM_{x:g} / breast area",
            line={"color": "#1F3A93", "width": 3},
            marker={"size": 11},
            customdata=[e.views_counted for e in ordered],
            hovertemplate="%{x}<br>Σ = %{y:.3g} over %{customdata} views<extra></extra>",
        )
    )
    total_by_date = {e.study_date: e.total for e in ordered}
    for flag, (label, colour, symbol, size) in _FLAG_STYLE.items():
        selected = [c for c in changes if c.is_real is flag and c.later_date in total_by_date]
        if not selected:
            continue
        figure.add_trace(
            go.Scatter(
                x=[c.later_date for c in selected],
                y=[total_by_date[c.later_date] for c in selected],
                mode="markers",
                name=f"Change: {label}",
                marker={"color": colour, "symbol": symbol, "size": size, "line": {"width": 1.5, "color": colour}},
                customdata=[[c.delta, c.noise if c.noise is not None else float("nan")] for c in selected],
                hovertemplate="%{x}: Δ = %{customdata[0]:+.3g} (noise %{customdata[1]:.3g})"
                + f"<br>{label}<extra></extra>",
            )
        )
    # Pad the date axis by half a year each side (a single exam otherwise gets a
    # sub-second axis) and start the burden axis at zero.
    first, last = (np.datetime64(dates[0]), np.datetime64(dates[-1])) if dates else (None, None)
    pad = np.timedelta64(182, "D")
    values = [e.total for e in ordered] + [v.normalised for e in ordered for v in e.views]
    top = max(values) * 1.15 if values and max(values) > 0 else 1e-3
    figure.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={
            "title": "exam date",
            "type": "date",
            "tickformat": "%Y-%m-%d",
            "range": None if first is None else [str(first - pad), str(last + pad)],
        },
        yaxis={"title": f"TAM_{x:g} / breast area", "range": [0, top], "exponentformat": "e"},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def change_rows(changes: Sequence[ExamChange]) -> list[dict[str, Any]]:
    """One row per consecutive-exam change (exam total), with its flag in words."""
    words = {True: "real change", False: "within view-to-view noise", None: "cannot tell"}
    return [
        {
            "From": change.earlier_date,
            "To": change.later_date,
            "Δ Σ TAM_100 / breast area": change.delta,
            "View-to-view noise": change.noise,
            "Flag": words[change.is_real],
            "Per view": "; ".join(
                f"{v.laterality}{v.view} {v.delta:+.2e} ({words[v.is_real]})" for v in change.views
            ),
        }
        for change in changes
    ]


def expand_uploads(files: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Uploaded files with every ``.zip`` replaced by its image members (in memory).

    Each archive is checked against the zip limits (``MEDLIM_ZIP_MAX_*``) before
    a member is read (:func:`medlim.core.archives.iter_zip_members`). Folders,
    hidden files, macOS resource forks, ground-truth masks and text files inside
    archives are skipped.

    Raises:
        ArchiveError: a ``.zip`` that cannot be opened or holds something refused.
        ArchiveBudgetError: a ``.zip`` beyond the zip limits.
    """
    from medlim.core.archives import iter_zip_members

    expanded: list[tuple[str, bytes]] = []
    for name, data in files:
        if not name.lower().endswith(".zip"):
            expanded.append((name, data))
            continue
        for member in iter_zip_members(data, label=name):
            path = Path(member.name)
            if path.suffix.lower() not in _IMAGE_SUFFIXES or is_derived_file(path):
                continue
            expanded.append((f"{name}/{member.name}", member.data))
    return expanded


# --------------------------------------------------------------------------- streamlit helpers


@bounded_cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_bac_model_cached(weights: str, weights_dir: str, fingerprint: str = "") -> BacModel:
    """:func:`medlim.mammography.analysis.load_bac_model`, once per process.

    Args:
        weights: registry ``name:version`` or the path of an authors' checkpoint.
        weights_dir: the registry folder (part of the cache key, so a changed
            ``MEDLIM_WEIGHTS_DIR`` loads afresh).
        fingerprint: what identifies the weights' content (the entry's sha256,
            or a checkpoint's size and modification time), so weights replaced
            under the same name load afresh.
    """
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import load_bac_model

    return load_bac_model(weights, registry=Registry.load(Path(weights_dir)))


_SESSION_CACHE = "bac_analysis_cache"
_SESSION_CACHE_SIZE = 12  # an exam and two priors


def analyse_cached(record: ImageRecord, data: bytes, bac_model: BacModel) -> tuple[BacAnalysis, str]:
    """Analyse ``record`` once per (file content, weights) in this session.

    The probability map is kept in ``st.session_state`` (no copy per rerun,
    unlike ``st.cache_data``); moving a slider reruns the page and finds it
    here. A progress bar follows the patches during inference.

    Args:
        record: the decoded image.
        data: its file bytes (hashed for the cache key and the store).
        bac_model: the loaded weights.

    Returns:
        ``(analysis, content_sha256)``.

    Raises:
        MedlimError: not a mammogram (``WrongModalityError``) or inference errors.
    """
    from medlim.mammography.analysis import analyse_mammogram

    digest = hashlib.sha256(data).hexdigest()
    cache: OrderedDict[tuple[str, str, str], BacAnalysis] = st.session_state.setdefault(_SESSION_CACHE, OrderedDict())
    key = (digest, bac_model.label, bac_model.entry.sha256)
    if key in cache:
        cache.move_to_end(key)
        return cache[key], digest
    bar = st.progress(0.0, text=f"Finding calcifications in {record.name}…")

    def report(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Finding calcifications in {record.name}: patch {done} of {total}")

    try:
        analysis = analyse_mammogram(record, bac_model, progress=report)
    finally:
        bar.empty()
    lru_put(cache, key, analysis, max_entries=_SESSION_CACHE_SIZE)
    return analysis, digest


@st.cache_resource(max_entries=2, show_spinner=False)
def open_store_cached(database_url: str) -> "Store":  # noqa: F821
    """:func:`medlim.core.store.open_store` once per database URL (migrations run on first open)."""
    from medlim.core.store import open_store

    return open_store(database_url)
