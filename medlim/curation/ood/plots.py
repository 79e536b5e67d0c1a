"""Data and plotly figures for OOD results: the 2D distance plot (thesis Fig. 4.3), ROC, galleries.

Thesis Fig. 4.3 places the voted centre O at the origin and each sample at
radius ``d`` (its distance to O) and a random angle, with the margin R as a
circle; a second panel shows the same points by the thresholded prediction.
The thesis draws ID green and OOD red; issue 17 ("colour-blind-safe overlays
and plots, no red/green pairs") replaces them with the Okabe–Ito blue (ID,
circles) and orange (OOD, diamonds) — told apart by shape as well as colour —
and a black dashed margin circle. Every chart has axis titles. The angles come
from a seeded generator, so a plot is reproducible. Pure functions (plotly, no
streamlit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from medlim.core.colours import OKABE_ITO
from medlim.curation.ood.calibration import roc_curve
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.curation.ood.shift_types import ShiftTypeTable

__all__ = ["distance_points", "distance_figure", "roc_figure", "outcome_groups", "OUTCOMES",
           "ID_STYLE", "OOD_STYLE", "shift_type_figure"]

#: Okabe & Ito (2008) colours (:mod:`medlim.core.colours`), apart for every common colour-vision deficiency.
ID_COLOUR = OKABE_ITO["blue"]
OOD_COLOUR = OKABE_ITO["orange"]
UNLABELLED_COLOUR = "#999999"  # grey
MARGIN_COLOUR = OKABE_ITO["black"]  # dashed
GMEAN_COLOUR = OKABE_ITO["vermillion"]
#: Marker of ID and OOD points: colour and shape both differ, so neither alone carries the meaning.
ID_STYLE: dict[str, object] = {"color": ID_COLOUR, "symbol": "circle"}
OOD_STYLE: dict[str, object] = {"color": OOD_COLOUR, "symbol": "diamond"}
_UNLABELLED_STYLE: dict[str, object] = {"color": UNLABELLED_COLOUR, "symbol": "circle-open"}
#: Confusion outcome names (OOD = positive).
OUTCOMES: tuple[str, ...] = ("TP", "FP", "TN", "FN")


def distance_points(distance: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates at radius ``distance`` and seeded random angles.

    Args:
        distance: ``np.ndarray[N]`` ≥ 0.
        seed: angle seed.

    Returns:
        ``(x, y)``, each ``np.ndarray[N]`` float64 with ``x² + y² = distance²``.
    """
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 1 or (d < 0).any() or not np.isfinite(d).all():
        raise ParameterError("distances must be a 1-D array of finite values ≥ 0.")
    angle = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, d.size)
    return d * np.cos(angle), d * np.sin(angle)


def _circle(radius: float, name: str) -> go.Scatter:
    t = np.linspace(0.0, 2.0 * np.pi, 181)
    return go.Scatter(x=radius * np.cos(t), y=radius * np.sin(t), mode="lines", name=name,
                      line={"color": MARGIN_COLOUR, "width": 2, "dash": "dash"})


def distance_figure(
    distance: np.ndarray,
    *,
    margin: float,
    predicted_ood: np.ndarray,
    is_ood: np.ndarray | None = None,
    names: Sequence[str] = (),
    seed: int = 0,
    axis_limit: float | None = None,
) -> go.Figure:
    """Thesis Fig. 4.3: samples at radius d around the centre O, the margin circle.

    Args:
        distance: TEND distances ``d`` (``np.ndarray[N]``).
        margin: R, drawn as a circle.
        predicted_ood: ``np.ndarray[N]`` bool, the thresholded predictions (right panel).
        is_ood: true labels (left panel colours); ``None`` when unknown (left panel grey).
        names: hover labels.
        seed: angle seed.
        axis_limit: half-width of both axes (thesis ±1000); default fits the data and R.
    """
    from plotly.subplots import make_subplots

    x, y = distance_points(distance, seed=seed)
    predicted = np.asarray(predicted_ood, dtype=bool)
    labels = names if len(names) == len(x) else [str(i) for i in range(len(x))]
    limit = axis_limit or 1.1 * max(float(margin), float(np.max(distance)) if len(x) else 0.0, 1e-9)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("By label" if is_ood is not None else "Samples",
                                                           "By prediction"))
    if is_ood is None:
        groups_left = [("unlabelled", np.ones(len(x), bool), _UNLABELLED_STYLE)]
    else:
        truth = np.asarray(is_ood, dtype=bool)
        groups_left = [("ID", ~truth, ID_STYLE), ("OOD", truth, OOD_STYLE)]
    groups_right = [("predicted ID", ~predicted, ID_STYLE), ("predicted OOD", predicted, OOD_STYLE)]
    for col, groups in ((1, groups_left), (2, groups_right)):
        for name, mask, style in groups:
            figure.add_trace(go.Scatter(
                x=x[mask], y=y[mask], mode="markers", name=name, marker={**style, "size": 8, "opacity": 0.85},
                text=[labels[i] for i in np.nonzero(mask)[0]], hovertemplate="%{text}<extra>" + name + "</extra>",
                legendgroup=f"{col}-{name}"), row=1, col=col)
        circle = _circle(float(margin), f"margin R = {margin:g}")
        circle.showlegend = col == 1
        figure.add_trace(circle, row=1, col=col)
        figure.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers", name="centre O",
                                    marker={"symbol": "star", "size": 12, "color": "black"},
                                    showlegend=col == 1), row=1, col=col)
        figure.update_xaxes(range=[-limit, limit], row=1, col=col, zeroline=False,
                            title_text="d · cos θ (distance to O; angle θ random)")
        figure.update_yaxes(range=[-limit, limit], row=1, col=col, zeroline=False, scaleanchor=f"x{'' if col == 1 else 2}",
                            title_text="d · sin θ")
    figure.update_layout(height=480, margin={"l": 60, "r": 10, "t": 40, "b": 60})
    return figure


def roc_figure(is_ood: np.ndarray, score: np.ndarray, *, threshold: float | None = None) -> go.Figure:
    """ROC curve with its AUROC, the G-mean point and (optionally) the current threshold's point."""
    from medlim.curation.ood.calibration import auroc, gmean_threshold, rates_at

    labels = np.asarray(is_ood, dtype=int)
    curve = roc_curve(labels, score)
    area = auroc(labels, score)
    t, tpr, fpr = gmean_threshold(labels, score)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=curve.fpr, y=curve.tpr, mode="lines", name=f"ROC (AUROC {area:.3f})",
                                line={"color": ID_COLOUR, "width": 2}))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line={"dash": "dot", "color": UNLABELLED_COLOUR}))
    figure.add_trace(go.Scatter(x=[fpr], y=[tpr], mode="markers", name=f"G-mean t = {t:.4g}",
                                marker={"size": 11, "color": GMEAN_COLOUR, "symbol": "circle"}))
    if threshold is not None:
        tpr_t, fpr_t = rates_at(labels, score, threshold)
        figure.add_trace(go.Scatter(x=[fpr_t], y=[tpr_t], mode="markers", name=f"current t = {threshold:.4g}",
                                    marker={"size": 11, "symbol": "diamond", "color": MARGIN_COLOUR}))
    figure.update_layout(xaxis_title="False positive rate (ID images flagged OOD)",
                         yaxis_title="True positive rate (OOD images flagged)", height=420,
                         margin={"l": 60, "r": 10, "t": 30, "b": 50})
    return figure


def outcome_groups(is_ood: np.ndarray, predicted_ood: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of true/false positives/negatives (OOD = positive).

    Returns:
        ``{"TP": idx, "FP": idx, "TN": idx, "FN": idx}``, each ``np.ndarray`` int.
    """
    truth = np.asarray(is_ood, dtype=bool)
    predicted = np.asarray(predicted_ood, dtype=bool)
    if truth.shape != predicted.shape:
        raise ParameterError(f"labels and predictions differ in shape: {truth.shape} vs {predicted.shape}.")
    return {
        "TP": np.nonzero(truth & predicted)[0],
        "FP": np.nonzero(~truth & predicted)[0],
        "TN": np.nonzero(~truth & ~predicted)[0],
        "FN": np.nonzero(truth & ~predicted)[0],
    }


def shift_type_figure(table: ShiftTypeTable, *, metric: str = "detected") -> go.Figure:
    """Grouped bars: per shift type, one bar per detector (Okabe–Ito series colours).

    Args:
        table: a :class:`medlim.curation.ood.shift_types.ShiftTypeTable`.
        metric: ``"detected"`` (share flagged at each detector's calibrated threshold) or ``"auroc"``.
    """
    from medlim.core.colours import SERIES

    titles = {"detected": "share detected at the calibrated threshold", "auroc": "AUROC against the ID images"}
    if metric not in titles:
        raise ParameterError(f"`metric` must be one of {', '.join(titles)}, {metric!r} is given.")
    figure = go.Figure()
    for i, name in enumerate(table.detectors):
        rows = [row for row in table.rows if row.detector == name]
        figure.add_trace(go.Bar(x=[row.shift_type for row in rows], y=[getattr(row, metric) for row in rows],
                                name=name, marker_color=SERIES[i % len(SERIES)],
                                customdata=[row.images for row in rows],
                                hovertemplate="%{x}: %{y:.3f} (%{customdata} images)<extra>" + name + "</extra>"))
    if metric == "auroc":
        figure.add_hline(y=0.5, line_dash="dot", line_color=OKABE_ITO["black"], annotation_text="chance")
    figure.update_layout(barmode="group", xaxis_title="shift type", yaxis_title=titles[metric],
                         yaxis_range=[0.0, 1.0], legend_title_text="detector", margin={"t": 30})
    return figure
