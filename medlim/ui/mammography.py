"""Widgets, figures and caches of the mammography (BAC) page (thesis §3.3; issue 17).

The page is a skin over :mod:`medlim.mammography`: analysis, readouts
(:class:`~medlim.mammography.readout.BacReadout`), reports
(:mod:`~medlim.mammography.report`), the patient history
(:mod:`~medlim.mammography.history`) and sample grouping
(:mod:`~medlim.mammography.samples`) all come from there, so the page shows what
``medlim bac quantify|report|history`` print. What lives here:

* pure functions (no streamlit) that draw typed results — the readout table
  rows, the calcification overlay at display size and its full-resolution zoom,
  the history figure, the weights options;
* streamlit caches — the model (``st.cache_resource``), the per-session
  analyses (inference runs once per image and weights; sliders call
  :func:`medlim.mammography.analysis.requantify` on the analysis' cut-off
  table, :mod:`medlim.mammography.cutoffs`) and the per-session display
  images (downsampled once per image and window, so a slider move only
  thresholds a small block-maximum map: ``benchmarks/bench_bac_sliders.py``).

Colours are colour-blind safe (no red/green pair): the mask is magenta, the
views are drawn in the Okabe–Ito palette.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from medlim.core.io.record import ImageRecord
from medlim.errors import InputError, ParameterError
from medlim.mammography.analysis import BacAnalysis, BacModel
from medlim.mammography.batch_results import BatchExam
from medlim.mammography.cutoffs import CutoffTable
from medlim.mammography.exam import CHANGE_WORDS, ExamChange
from medlim.mammography.history import PatientHistory
from medlim.mammography.overlay import OVERLAY_RGB, block_max, grey_uint8
from medlim.mammography.readout import BacReadout, ReadoutTotals, total_readouts
from medlim.ui.caching import bounded_cache_resource, lru_put
from medlim.ui.figures import downsample_for_display
from medlim.ui.stores import open_store_cached

__all__ = [
    "CHANGE_RULE_HELP",
    "METRIC_HELP",
    "OVERLAY_RGB",
    "REGION_FILTER_HELP",
    "UNLIKE_TRAINING_HELP",
    "OVERVIEW_MAX_SIDE",
    "OverlayBase",
    "VIEW_COLOURS",
    "analyse_cached",
    "batch_distribution_figure",
    "batch_exam_rows",
    "change_rows",
    "content_digest",
    "crop_box",
    "flat_batch_row",
    "region_filter_text",
    "history_figure",
    "load_bac_model_cached",
    "mask_png",
    "open_store_cached",
    "overlay_base",
    "overlay_base_cached",
    "overlay_figure",
    "readout_rows",
    "unlike_training_text",
    "weights_option_label",
    "weights_options",
    "zoom_centre",
    "zoom_figure",
]

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
    "summed over an exam's views it is the exam readout at this X.",
}

#: The change rule of :mod:`medlim.mammography.exam`, in plain words.
CHANGE_RULE_HELP = (
    "Burden per exam = Σ over its views of TAM_100 / breast area. The CC and MLO views of one breast "
    "at one exam show the same arteries, so their difference |CC − MLO| is that breast's view-to-view "
    "noise. A change between two exams is flagged **real** only when it is larger than that noise: "
    "per view, |Δ| > the larger of the two exams' |CC − MLO| for that breast; for the exam total, "
    "|Δ total| > the sum over breasts of those noises. When a breast lacks its CC or MLO view at "
    "either exam the noise is unknown and the flag reads **cannot tell**. Each image counts with its "
    "latest saved analysis with these weights, whatever cut-off and X it was saved at."
)

#: Longest side of the overview image sent to the browser (the zoom shows full resolution).
OVERVIEW_MAX_SIDE = 1024

#: Okabe–Ito colours (colour-blind safe): left views in blues, right views in orange/purple.
VIEW_COLOURS = {"LCC": "#0072B2", "LMLO": "#56B4E9", "RCC": "#E69F00", "RMLO": "#CC79A7"}
_EXAM_COLOUR = "#000000"
_FLAG_STYLE = {
    True: ("real change", "#D55E00", "star", 18),
    False: ("within view-to-view noise", "#7F7F7F", "circle", 13),
    None: ("cannot tell (a CC or MLO view is missing)", "#7F7F7F", "circle-open", 15),
}


# --------------------------------------------------------------------------- weights


def weights_options(models: Sequence[Any]) -> tuple[list[str], str | None]:
    """``name@version`` of the BAC models, by name then version, and the task default among them.

    Args:
        models: :class:`medlim.core.weights.ListedModel` of task ``bac-segmentation``
            (from :meth:`medlim.core.weights.Registries.models`).

    Returns:
        ``(options, default)``: ``default`` is the model marked as the task's
        default (the user's choice, else the shipped mark), or ``None``.
    """
    options = [f"{m.entry.name}@{m.entry.version}" for m in models]
    default = next((f"{m.entry.name}@{m.entry.version}" for m in models if m.task_default), None)
    return options, default


def weights_option_label(option: str, models: Sequence[Any]) -> str:
    """What the picker shows for ``option``: ``name@version``, marked default and/or yours."""
    from medlim.core.model_catalogue import picker_label

    for model in models:
        if f"{model.entry.name}@{model.entry.version}" == option:
            return picker_label(model)  # a user's model: with its dataset, figure and date
    return option


# --------------------------------------------------------------------------- readout table


#: Tooltip of the line saying what a site model's region filter dropped from a view (issue 12).
REGION_FILTER_HELP = (
    "These weights carry a region filter fitted on the site's own annotated views: after inference, each marked "
    "region (8-connected pixels above the filter's floor) is judged by its shape and its contrast against its "
    "surroundings, and a region that looks like tissue (a ligament, a bright line) is set to probability 0. The "
    "readouts above count what it kept; this line says what it took out, so a view where it dropped much can be "
    "checked by eye. Without a gate, PM still sums the probabilities at or below the floor, which belong to no region."
)

#: Tooltip of the training-data check (issue 13).
UNLIKE_TRAINING_HELP = (
    "How far this image, as the model sees it after preprocessing, lies from the images the model was trained "
    "on: a robust Mahalanobis distance over a few image statistics (intensity quantiles, breast shape, texture), "
    "calibrated on the model's own training images. Above the limit the image is flagged: its numbers are "
    "still given, but may be wrong."
)


def unlike_training_text(readout: BacReadout) -> str:
    """The training-data check of a readout in words, with the numbers of its JSON object
    (``unlike_training`` of :meth:`~medlim.mammography.readout.BacReadout.to_dict`)."""
    if readout.unlike_training is None:
        return "no training-data check stored with these weights"
    values = readout.unlike_training.to_dict()
    verdict = "flagged: unlike the training images" if values["flagged"] else "like the training images"
    return f"{verdict} (score {values['score']:.2f}, limit {values['threshold']:.2f})"


def flat_batch_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``medlim bac quantify`` row with its ``unlike_training`` object as three flat columns
    (``unlike_training_score``, ``unlike_training_threshold``, ``unlike_training_flagged``) and, for weights with a
    region filter, its ``region_filter`` object as ``region_filter_dropped`` (regions), ``region_filter_dropped_px``
    and ``region_filter_dropped_mm2``, for tables and CSV."""
    flat = {key: value for key, value in row.items() if key not in ("unlike_training", "region_filter")}
    if "unlike_training" in row:
        check = row["unlike_training"] or {}
        flat["unlike_training_score"] = check.get("score")
        flat["unlike_training_threshold"] = check.get("threshold")
        flat["unlike_training_flagged"] = check.get("flagged")
    if row.get("region_filter"):
        dropped = row["region_filter"]
        flat["region_filter_dropped"] = dropped.get("dropped")
        flat["region_filter_dropped_px"] = dropped.get("dropped_px")
        flat["region_filter_dropped_mm2"] = dropped.get("dropped_mm2")
    return flat


def region_filter_text(readout: BacReadout) -> str | None:
    """What the weights' region filter dropped from the view, in words, or ``None`` without a filter."""
    return None if readout.region_filter is None else f"Region filter: {readout.region_filter.text}."


def _check_cell(readout: BacReadout) -> str:
    if readout.unlike_training is None:
        return "—"
    check = readout.unlike_training.to_dict()
    return f"{'flagged' if check['flagged'] else 'ok'} ({check['score']:.2f} / {check['threshold']:.2f})"


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def readout_rows(readouts: Sequence[BacReadout], labels: Sequence[str], dates: Sequence[str | None]) -> list[dict[str, Any]]:
    """One row per view with the five readouts and, for several views, the exam total row.

    Args:
        readouts: the views' readouts (one exam).
        labels: what each row is called (view code or file name), same order.
        dates: each view's study date (``None`` when unknown), same order.

    Returns:
        Rows with keys ``View, Date, PM, AM (px), AM (mm²), SIM, TAM_X (px),
        TAM_X (mm²), TSIM_X, Breast area (px), TAM_X / breast area, Unlike training`` and, when the weights
        carry a region filter, ``Dropped by region filter``; the totals come from
        :func:`medlim.mammography.readout.total_readouts` (their ``Unlike training`` counts the flagged views).
    """
    rows = [
        {
            "View": label,
            "Date": date or "—",
            "PM": round(r.pm, 1),
            "AM (px)": r.am,
            "AM (mm²)": None if r.am_mm2 is None else round(r.am_mm2, 2),
            "SIM": r.sim,
            "TAM_X (px)": r.tam_x,
            "TAM_X (mm²)": None if r.tam_x_mm2 is None else round(r.tam_x_mm2, 2),
            "TSIM_X": r.tsim_x,
            "Breast area (px)": r.breast_area,
            "TAM_X / breast area": _none_if_nan(r.tam_x_per_breast_area),
            "Unlike training": _check_cell(r),
        }
        for r, label, date in zip(readouts, labels, dates)
    ]
    if len(rows) > 1:
        total = total_readouts(readouts)
        rows.append(
            {
                "View": f"Σ {total.views} views",
                "Date": ", ".join(sorted({row["Date"] for row in rows})),
                "PM": round(total.pm, 1),
                "AM (px)": total.am,
                "AM (mm²)": None if total.am_mm2 is None else round(total.am_mm2, 2),
                "SIM": total.sim,
                "TAM_X (px)": total.tam_x,
                "TAM_X (mm²)": None if total.tam_x_mm2 is None else round(total.tam_x_mm2, 2),
                "TSIM_X": total.tsim_x,
                "Breast area (px)": total.breast_area,
                "TAM_X / breast area": total.tam_x_per_breast_area_sum,
                "Unlike training": _flag_count(readouts),
            }
        )
    if any(r.region_filter is not None for r in readouts):
        cells = [_dropped_cell(total_readouts([r])) for r in readouts]
        for row, cell in zip(rows, [*cells, _dropped_cell(total_readouts(readouts))] if len(rows) > len(cells) else cells):
            row["Dropped by region filter"] = cell
    return rows


def _dropped_cell(totals: ReadoutTotals) -> str:
    """Regions and area the region filter dropped from the summed views, or "—" where none has a filter."""
    return totals.region_filter_text or "—"


def batch_exam_rows(exams: Sequence[BatchExam], x: float) -> list[dict[str, Any]]:
    """One row per exam of a finished batch (:class:`~medlim.mammography.batch_results.BatchExam`).

    Keys: ``Patient key, Date, Views, PM, AM (px), AM (mm²), SIM, TAM_<X> (px), TAM_<X> (mm²), TSIM_<X>,
    Breast area (px), Σ TAM_<X> / breast area, Σ TAM_100 / breast area`` (mm² ``None`` unless every view has them).
    """
    label = f"{x:g}"
    return [
        {
            "Patient key": exam.patient_key,
            "Date": exam.study_date,
            "Views": ", ".join(exam.views),
            "PM": round(exam.totals.pm, 1),
            "AM (px)": exam.totals.am,
            "AM (mm²)": None if exam.totals.am_mm2 is None else round(exam.totals.am_mm2, 2),
            "SIM": exam.totals.sim,
            f"TAM_{label} (px)": exam.totals.tam_x,
            f"TAM_{label} (mm²)": None if exam.totals.tam_x_mm2 is None else round(exam.totals.tam_x_mm2, 2),
            f"TSIM_{label}": exam.totals.tsim_x,
            "Breast area (px)": exam.totals.breast_area,
            f"Σ TAM_{label} / breast area": exam.totals.tam_x_per_breast_area_sum,
            "Σ TAM_100 / breast area": exam.tam_100_per_breast_area_sum,
        }
        for exam in exams
    ]


def batch_distribution_figure(values: Sequence[float], views: Sequence[str], *, title: str) -> go.Figure:
    """A histogram of one readout over a batch's views, stacked by view in its Okabe–Ito colour.

    Args:
        values: the readout of each view (:meth:`~medlim.mammography.batch_results.BatchResults.distribution`).
        views: each view's name (``"LCC"``, ...; ``"?"`` when the file records none), same order.
        title: the readout with its unit (the x axis title).

    Returns:
        A plotly figure with one bar trace per view name (shared bins), axes titled.
    """
    if len(values) != len(views):
        raise ParameterError(f"{len(values)} values but {len(views)} view names are given.")
    finite = [float(v) for v in values if np.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    size = (high - low) / 20.0 if high > low else max(abs(low) * 0.1, 1e-9)
    figure = go.Figure()
    for name in [*[n for n in VIEW_COLOURS if n in views], *sorted(set(views) - set(VIEW_COLOURS))]:
        chosen = [v for v, view in zip(values, views) if view == name]
        figure.add_trace(go.Histogram(
            x=chosen, name="view unknown" if name == "?" else name, marker_color=VIEW_COLOURS.get(name, "#7F7F7F"),
            xbins={"start": low - size / 2.0, "end": high + size / 2.0, "size": size},
            hovertemplate=f"{name}: %{{y}} views at %{{x}}<extra></extra>",
        ))  # fmt: skip
    figure.update_layout(barmode="stack", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title=title, yaxis_title="views", legend_title_text="View")  # fmt: skip
    return figure


def _flag_count(readouts: Sequence[BacReadout]) -> str:
    checked = [r.unlike_training for r in readouts if r.unlike_training is not None]
    if not checked:
        return "—"
    return f"{sum(c.flagged for c in checked)} of {len(checked)} flagged"


# --------------------------------------------------------------------------- overlay


def _png_data_uri(array: np.ndarray) -> str:
    import cv2

    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., [2, 1, 0, 3]]  # RGBA -> BGRA for OpenCV
    # Level 1: a tenth of the default's encode time for a few percent more bytes (slider answers first).
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 array
        raise InputError(f"could not encode a {array.shape} image as PNG.")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


@dataclass(frozen=True)
class OverlayBase:
    """What the overview needs, computed once per image and display window.

    Attributes:
        grey_uri: the display-size grey image as a PNG data URI.
        probability_max: ``np.float32[h, w]``, block maximum of the probability map over
            ``factor × factor`` blocks: the display mask at cut-off ``t`` is
            ``probability_max > t``, which equals the block maximum of ``p > t``
            (a one-pixel artery stays visible), at a fraction of the cost.
        factor: full-resolution pixels per displayed pixel (>= 1).
        shape: ``(rows, cols)`` of the full-resolution image.
    """

    grey_uri: str
    probability_max: np.ndarray
    factor: int
    shape: tuple[int, int]

    def mask(self, threshold: float) -> np.ndarray:
        """``np.bool_[h, w]``: displayed pixels holding any full-resolution pixel with ``p > threshold``."""
        return self.probability_max > threshold


def overlay_base(display: np.ndarray, probability: np.ndarray, *, max_side: int = OVERVIEW_MAX_SIDE) -> OverlayBase:
    """Downsample a grey display image and the probability map once, for the overview.

    Args:
        display: ``np.ndarray[H, W]`` float in [0, 1], the windowed full-resolution image.
        probability: ``np.ndarray[H, W]`` float, the model output ``p``.
        max_side: longest displayed side (>= 1).

    Raises:
        InputError: the two arrays differ in shape.
    """
    if display.shape[:2] != probability.shape:
        raise InputError(f"probability map {probability.shape} differs from the image {display.shape[:2]}.")
    shrunk, factor = downsample_for_display(display, max_side=max_side)
    return OverlayBase(
        grey_uri=_png_data_uri(grey_uint8(shrunk)),
        probability_max=block_max(probability, factor),
        factor=factor,
        shape=(int(probability.shape[0]), int(probability.shape[1])),
    )


def _mask_uri(mask: np.ndarray) -> str:
    rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
    rgba[mask] = (*OVERLAY_RGB, 255)
    return _png_data_uri(rgba)


def _image_layout(figure: go.Figure, *, height: int, title: str | None) -> None:
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        dragmode="zoom",
        showlegend=False,
        xaxis={"title": "column (px)", "constrain": "domain"},
        yaxis={"title": "row (px)", "autorange": "reversed", "scaleanchor": "x", "scaleratio": 1,
               "constrain": "domain"},
    )  # fmt: skip


def _click_targets(base: OverlayBase, *, spacing: int = 24) -> go.Scatter:
    """Invisible points every ``spacing`` displayed pixels: a click on the image selects the nearest one."""
    rows, cols = base.probability_max.shape
    r, c = np.mgrid[spacing // 2 : rows : spacing, spacing // 2 : cols : spacing]
    f = base.factor
    return go.Scatter(
        x=(c.ravel() * f + (f - 1) / 2.0).tolist(),
        y=(r.ravel() * f + (f - 1) / 2.0).tolist(),
        mode="markers",
        name="zoom here",
        marker={"size": 14, "opacity": 0.0, "color": "#FFFFFF"},
        hovertemplate="click to zoom at row %{y:.0f}, column %{x:.0f}<extra></extra>",
    )


def overlay_figure(
    base: OverlayBase,
    *,
    threshold: float,
    show_mask: bool = True,
    opacity: float = 0.6,
    height: int = 720,
    title: str | None = None,
) -> go.Figure:
    """The overview: the mammogram at display size with the calcification mask and click targets.

    Axes are in full-resolution pixel coordinates of the file, so the hover
    position, a clicked point and a selected box are positions in the file.

    Args:
        base: from :func:`overlay_base`.
        threshold: probability cut-off t of the mask.
        show_mask: draw the mask.
        opacity: mask opacity in [0, 1].
        height: figure height in pixels.
        title: figure title.

    Returns:
        A plotly figure: the grey ``Image`` trace, with ``show_mask`` the magenta mask
        ``Image`` trace, and an invisible ``Scatter`` of click targets.

    Raises:
        ParameterError: ``opacity`` outside [0, 1].
    """
    if not 0.0 <= opacity <= 1.0:
        raise ParameterError(f"overlay opacity must be in [0, 1]; {opacity} is given.")
    f = base.factor
    placement = {"x0": (f - 1) / 2.0, "y0": (f - 1) / 2.0, "dx": f, "dy": f}
    figure = go.Figure(go.Image(source=base.grey_uri, name="mammogram", hoverinfo="x+y", **placement))
    if show_mask:
        figure.add_trace(go.Image(source=_mask_uri(base.mask(threshold)), name="calcification mask",
                                  opacity=opacity, hoverinfo="skip", **placement))  # fmt: skip
    figure.add_trace(_click_targets(base))
    _image_layout(figure, height=height, title=title)
    return figure


def crop_box(shape: tuple[int, int], centre: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a ``size``-pixel square around ``centre``, kept inside ``shape``."""
    if size < 1:
        raise ParameterError(f"zoom size must be >= 1 pixel; {size} is given.")
    rows, cols = shape
    height, width = min(size, rows), min(size, cols)
    top = int(min(max(0, centre[0] - height // 2), rows - height))
    left = int(min(max(0, centre[1] - width // 2), cols - width))
    return top, left, top + height, left + width


def zoom_figure(
    display_crop: np.ndarray,
    probability_crop: np.ndarray,
    *,
    origin: tuple[int, int],
    threshold: float,
    show_mask: bool = True,
    opacity: float = 0.6,
    height: int = 560,
) -> go.Figure:
    """A full-resolution crop with the mask, axes in the file's pixel coordinates.

    Args:
        display_crop: ``np.ndarray[h, w]`` float in [0, 1], the windowed crop.
        probability_crop: ``np.ndarray[h, w]``, the model output over the crop.
        origin: ``(row, column)`` of the crop's top-left pixel in the file.
        threshold, show_mask, opacity, height: as :func:`overlay_figure`.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ParameterError(f"overlay opacity must be in [0, 1]; {opacity} is given.")
    if display_crop.shape[:2] != probability_crop.shape:
        raise InputError(f"mask shape {probability_crop.shape} differs from the crop {display_crop.shape[:2]}.")
    placement = {"x0": origin[1], "y0": origin[0], "dx": 1, "dy": 1}
    figure = go.Figure(go.Image(source=_png_data_uri(grey_uint8(display_crop)), name="mammogram",
                                hoverinfo="x+y", **placement))  # fmt: skip
    if show_mask:
        figure.add_trace(go.Image(source=_mask_uri(probability_crop > threshold), name="calcification mask",
                                  opacity=opacity, hoverinfo="skip", **placement))  # fmt: skip
    _image_layout(figure, height=height, title=None)
    return figure


def zoom_centre(selection: Mapping[str, Any] | None, shape: tuple[int, int]) -> tuple[int, int] | None:
    """Where to zoom from a plotly selection on the overview: a clicked point, else a box's centre.

    Args:
        selection: ``st.plotly_chart(...).selection`` (keys ``points`` and ``box``),
            coordinates in full-resolution pixels.
        shape: ``(rows, cols)`` of the image.

    Returns:
        ``(row, column)`` inside the image, or ``None`` when nothing is selected.
    """
    if not selection:
        return None
    rows, cols = shape
    point = next((p for p in selection.get("points") or () if "x" in p and "y" in p), None)
    if point is not None:
        x, y = float(point["x"]), float(point["y"])
    else:
        box = next(iter(selection.get("box") or ()), None)
        if not box or len(box.get("x") or ()) < 2 or len(box.get("y") or ()) < 2:
            return None
        x, y = sum(map(float, box["x"][:2])) / 2.0, sum(map(float, box["y"][:2])) / 2.0
    return int(min(max(round(y), 0), rows - 1)), int(min(max(round(x), 0), cols - 1))


def mask_png(probability: np.ndarray, *, threshold: float) -> bytes:
    """The full-size calcification mask as an 8-bit PNG, 255 where ``p > threshold`` else 0."""
    import cv2

    mask = np.where(np.asarray(probability) > threshold, np.uint8(255), np.uint8(0))
    ok, encoded = cv2.imencode(".png", mask)
    if not ok:  # pragma: no cover
        raise InputError("could not encode the mask as PNG.")
    return encoded.tobytes()


# --------------------------------------------------------------------------- history


def history_figure(history: PatientHistory) -> go.Figure:
    """The patient's burden across exam dates, per-view trends and change flags.

    Args:
        history: the patient's saved exams (:func:`medlim.mammography.history.patient_history`).

    Returns:
        A plotly figure: each view dotted in its Okabe–Ito colour, the exam total
        (Σ TAM_100 / breast area) as a black line drawn over them, and one marker
        per change at the later exam, styled by its flag (real / within noise /
        cannot tell); axes titled.
    """
    ordered = sorted(history.exams, key=lambda e: e.study_date)
    dates = [e.study_date for e in ordered]
    figure = go.Figure()
    for laterality, view in sorted({(v.laterality, v.view) for e in ordered for v in e.views}):
        name = f"{laterality}{view}"
        points = [(e.study_date, e.view(laterality, view)) for e in ordered]
        points = [(d, v.normalised) for d, v in points if v is not None]
        figure.add_trace(go.Scatter(
            x=[d for d, _ in points], y=[value for _, value in points], mode="lines+markers", name=name,
            line={"dash": "dot", "width": 1.5, "color": VIEW_COLOURS.get(name, "#7F7F7F")}, marker={"size": 6},
            hovertemplate=f"{name} %{{x}}: %{{y:.3g}}<extra></extra>",
        ))  # fmt: skip
    figure.add_trace(go.Scatter(
        x=dates, y=[e.total for e in ordered], mode="lines+markers", name="Exam: Σ TAM_100 / breast area",
        line={"color": _EXAM_COLOUR, "width": 3}, marker={"size": 11}, customdata=[e.views_counted for e in ordered],
        hovertemplate="%{x}<br>Σ = %{y:.3g} over %{customdata} views<extra></extra>",
    ))  # fmt: skip
    _add_change_markers(figure, history.changes, {e.study_date: e.total for e in ordered})
    _history_layout(figure, ordered)
    return figure


def _add_change_markers(figure: go.Figure, changes: Sequence[ExamChange], total_by_date: dict[str, float]) -> None:
    for flag, (label, colour, symbol, size) in _FLAG_STYLE.items():
        selected = [c for c in changes if c.is_real is flag and c.later_date in total_by_date]
        if not selected:
            continue
        figure.add_trace(go.Scatter(
            x=[c.later_date for c in selected], y=[total_by_date[c.later_date] for c in selected], mode="markers",
            name=f"Change: {label}",
            marker={"color": colour, "symbol": symbol, "size": size, "line": {"width": 1.5, "color": colour}},
            customdata=[[c.delta, c.noise if c.noise is not None else float("nan")] for c in selected],
            hovertemplate="%{x}: Δ = %{customdata[0]:+.3g} (noise %{customdata[1]:.3g})" + f"<br>{label}<extra></extra>",
        ))  # fmt: skip


def _history_layout(figure: go.Figure, ordered: Sequence[Any]) -> None:
    # Pad the date axis by half a year each side (a single exam otherwise gets a
    # sub-second axis) and start the burden axis at zero.
    dates = [e.study_date for e in ordered]
    first, last = (np.datetime64(dates[0]), np.datetime64(dates[-1])) if dates else (None, None)
    pad = np.timedelta64(182, "D")
    values = [e.total for e in ordered] + [v.normalised for e in ordered for v in e.views]
    top = max(values) * 1.15 if values and max(values) > 0 else 1e-3
    figure.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "exam date", "type": "date", "tickformat": "%Y-%m-%d",
               "range": None if first is None else [str(first - pad), str(last + pad)]},
        yaxis={"title": "TAM_100 / breast area (dimensionless)", "range": [0, top], "exponentformat": "e"},
        legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip


def change_rows(changes: Sequence[ExamChange]) -> list[dict[str, Any]]:
    """One row per consecutive-exam change (exam total), with its flag in words."""
    return [
        {
            "From": change.earlier_date,
            "To": change.later_date,
            "Δ Σ TAM_100 / breast area": change.delta,
            "View-to-view noise": change.noise,
            "Flag": change.flag,
            "Per view": "; ".join(
                f"{v.laterality}{v.view} {v.delta:+.2e} ({CHANGE_WORDS[v.is_real]})" for v in change.views
            ),
        }
        for change in changes
    ]


# --------------------------------------------------------------------------- streamlit caches


@bounded_cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_bac_model_cached(weights: str, weights_dir: str, models_dir: str, fingerprint: str = "") -> BacModel:
    """:func:`medlim.mammography.analysis.load_bac_model`, once per process.

    Args:
        weights: ``name@version`` in the shipped or user registry, or the path of an authors' checkpoint.
        weights_dir, models_dir: the shipped and user registry folders (part of
            the cache key, so changed settings load afresh).
        fingerprint: what identifies the weights' content (the entry's sha256,
            or a checkpoint's size and modification time), so weights replaced
            under the same name load afresh.
    """
    from medlim.core.weights import Registries
    from medlim.mammography.analysis import load_bac_model

    return load_bac_model(weights, registry=Registries.load(weights_dir=weights_dir, models_dir=models_dir))


_ANALYSES = "bac_analysis_cache"
_ANALYSES_SIZE = 12  # an exam and two priors
_DIGESTS = "bac_content_digests"
_OVERLAYS = "bac_overlay_cache"


def content_digest(data: bytes, identity: str = "") -> str:
    """sha256 of ``data``, remembered per upload ``identity`` in this session (no re-hashing on a slider move)."""
    digests: OrderedDict[str, str] = st.session_state.setdefault(_DIGESTS, OrderedDict())
    if identity and identity in digests:
        return digests[identity]
    digest = hashlib.sha256(data).hexdigest()
    if identity:
        lru_put(digests, identity, digest, max_entries=64)
    return digest


def analyse_cached(
    data: bytes, name: str, digest: str, bac_model: BacModel, *, pixel_spacing_mm: float | None = None
) -> tuple[BacAnalysis, ImageRecord, CutoffTable]:
    """Read and analyse a file once per (content, weights, stated pixel spacing) in this session.

    The record, its probability map and its cut-off table
    (:func:`medlim.mammography.cutoffs.cutoff_table`) stay in
    ``st.session_state`` (no copy per rerun, unlike ``st.cache_data``); a slider
    move finds them here and reads its readouts from the table. A progress bar
    follows the patches during inference.

    Args:
        data, name, digest: the file's bytes, name and content digest.
        bac_model: the weights.
        pixel_spacing_mm: the spacing the person states (mm), or ``None`` for the file's.

    Returns:
        ``(analysis, record, cut-off table)``.

    Raises:
        MedlimError: unreadable file, not a mammogram (``WrongModalityError``) or inference errors.
    """
    from medlim.core.io import read_image
    from medlim.mammography.analysis import analyse_mammogram
    from medlim.mammography.cutoffs import cutoff_table
    from medlim.mammography.stored_analysis import load_analysis, store_analysis

    cache: OrderedDict[tuple[str, str, str, str, str], tuple] = st.session_state.setdefault(
        _ANALYSES, OrderedDict()
    )
    key = (digest, bac_model.label, bac_model.entry.sha256, str(bac_model.entry.familiarity.get("sha256", "")),
           repr(pixel_spacing_mm))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    record = read_image(data, name=name)
    # issue 15: a finished analysis is a stored result; an exam opened again (same content, weights and stated
    # spacing), in this session or another, or a view of a finished batch job, is read back from the disk cache
    # (MEDLIM_CACHE_MB) without inference
    stored = load_analysis(digest, bac_model, pixel_spacing_mm, name=name)
    if stored is not None:
        lru_put(cache, key, (stored[0], record, stored[1]), max_entries=_ANALYSES_SIZE)
        return cache[key]
    bar = st.progress(0.0, text=f"Finding calcifications in {name}…")

    def report(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Finding calcifications in {name}: patch {done} of {total}")

    try:
        analysis = analyse_mammogram(record, bac_model, progress=report, pixel_spacing_mm=pixel_spacing_mm)
    finally:
        bar.empty()
    table = cutoff_table(analysis)
    store_analysis(digest, bac_model, analysis, pixel_spacing_mm, table=table)
    lru_put(cache, key, (analysis, record, table), max_entries=_ANALYSES_SIZE)
    return cache[key]


def overlay_base_cached(
    key: tuple[Any, ...], display: Callable[[], np.ndarray], probability: np.ndarray
) -> OverlayBase:
    """:func:`overlay_base` once per ``key`` (image digest, weights, window) in this session.

    Args:
        key: what the base depends on.
        display: makes the windowed full-resolution image (called only on a miss).
        probability: the model output.
    """
    cache: OrderedDict[tuple[Any, ...], OverlayBase] = st.session_state.setdefault(_OVERLAYS, OrderedDict())
    if key not in cache:
        lru_put(cache, key, overlay_base(display(), probability), max_entries=8)
    cache.move_to_end(key)
    return cache[key]


