"""Widgets' ranges, figures and cached helpers of the liver steatosis page (thesis §3.2.3, Fig. 3.5).

Pure helpers first (slider ↔ cutoff mapping, overlay image, morphology
histograms), then the Streamlit caches (model once per process, detections
once per image and weights in the session). The numbers the page shows come
from :class:`medlim.microscopy.steatosis.report.SteatosisReport` — the room's,
which ``medlim steatosis segment`` prints too; the page only arranges them.

Colours (colour-blind safe, Okabe & Ito 2008; no red/green pair): kept
droplets blue, discarded ones vermillion (outline and box), cutoff bounds
black dashed lines.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from medlim.core.io.files import is_derived_file
from medlim.microscopy.objects import MicronSpacing
from medlim.microscopy.qupath import ObjectExports
from medlim.microscopy.steatosis.analysis import SteatosisAnalysis, SteatosisModel
from medlim.microscopy.steatosis.droplets import FEATURES, Cutoffs
from medlim.microscopy.steatosis.report import SteatosisReport
from medlim.ui.caching import bounded_cache_resource, lru_put
from medlim.ui.stores import open_store_cached

__all__ = [
    "PRESET_KIND",
    "SLIDER_RANGES",
    "KEPT_RGB",
    "DISCARDED_RGB",
    "slider_values",
    "cutoffs_from_sliders",
    "crowded_slider_value",
    "absolute_area_values",
    "exports_cached",
    "overlay_image",
    "histogram_figure",
    "steatosis_samples",
    "load_model_cached",
    "analyse_cached",
    "open_store_cached",
]

#: Preset kind of saved cutoffs in the store.
PRESET_KIND = "steatosis"
#: ``(widest low, widest high, step)`` of each relative-cutoff slider (× the reference). A high slider at its
#: widest position means "no upper limit" (issue 17: the largest droplets must be keepable whatever the mean).
SLIDER_RANGES: dict[str, tuple[float, float, float]] = {
    "area": (0.0, 10.0, 0.001), "perimeter": (0.0, 8.0, 0.05), "eccentricity": (0.0, 3.0, 0.05),
}
#: Okabe–Ito blue: fill and outline of kept droplets.
KEPT_RGB: tuple[int, int, int] = (0, 114, 178)
#: Okabe–Ito vermillion: outline and box of discarded droplets (thesis Fig. 3.5 marks them with boxes).
DISCARDED_RGB: tuple[int, int, int] = (213, 94, 0)


def slider_values(cutoffs: Cutoffs) -> dict[str, tuple[float, float]]:
    """``{feature: (low, high)}`` to set the sliders to; an open upper limit sits at the slider's end."""
    values = {}
    for name in FEATURES:
        low, high = getattr(cutoffs, name)
        top = SLIDER_RANGES[name][1]
        values[name] = (min(low, top), top if high >= top else high)
    return values


def cutoffs_from_sliders(values: dict[str, tuple[float, float]], *, min_score: float, reference: str,
                         area_um2: tuple[float, float] = (0.0, 0.0), crowded_min_score: float | None = None) -> Cutoffs:
    """The cutoffs the sliders show; a high slider at its widest position is ``inf`` (no upper limit).

    Args:
        values: ``{feature: (low, high)}`` for every feature of :data:`SLIDER_RANGES`.
        min_score: the score slider.
        reference: ``"scored"`` or ``"all-detections"``.
        area_um2: the absolute area fields ``(at least, at most)`` in µm²; an "at most" of 0 is no limit.
        crowded_min_score: the crowded-fat score slider (None, or at or above ``min_score``: one floor everywhere).
    """
    chosen = {}
    for name in FEATURES:
        low, high = (float(v) for v in values[name])
        chosen[name] = (low, math.inf if high >= SLIDER_RANGES[name][1] else high)
    low_um2, high_um2 = (float(v) for v in area_um2)
    return Cutoffs(**chosen, min_score=float(min_score), reference=reference,
                   area_um2=(low_um2, math.inf if high_um2 <= 0 else max(high_um2, low_um2)),
                   crowded_min_score=None if crowded_min_score is None else float(crowded_min_score))


def crowded_slider_value(cutoffs: Cutoffs) -> float:
    """The crowded-fat score slider for ``cutoffs``: its floor, or the minimum score when there is none."""
    return cutoffs.min_score if cutoffs.crowded_min_score is None else cutoffs.crowded_min_score


def absolute_area_values(cutoffs: Cutoffs) -> dict[str, float]:
    """The absolute area fields for ``cutoffs``: ``{"area_um2_low": …, "area_um2_high": …}`` (0 = no upper limit)."""
    low, high = cutoffs.area_um2
    return {"area_um2_low": float(low), "area_um2_high": 0.0 if math.isinf(high) else float(high)}


def overlay_image(image: np.ndarray, labels: np.ndarray, kept: np.ndarray, *, alpha: float = 0.45,
                  boxes: bool = True) -> np.ndarray:
    """Kept droplets filled and outlined in blue; discarded ones outlined and boxed in vermillion.

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1].
        labels: ``np.ndarray[H, W]`` int droplet labels 1..n.
        kept: ``np.ndarray[n]`` bool.
        alpha: fill opacity of kept droplets.
        boxes: draw a box around each discarded droplet (thesis Fig. 3.5).

    Returns:
        ``np.ndarray[H, W, 3]`` uint8 RGB.
    """
    import cv2
    from scipy import ndimage

    image = np.asarray(image)
    rgb = image[..., :3].astype(np.float32)
    if not np.issubdtype(image.dtype, np.integer):
        rgb = rgb * 255.0
    elif image.dtype != np.uint8:
        rgb = rgb * (255.0 / np.iinfo(image.dtype).max)
    labels = np.asarray(labels)
    kept = np.asarray(kept, bool)
    kept_of = np.r_[False, kept]
    discarded_of = np.r_[False, ~kept]
    fill = kept_of[labels]
    rgb[fill] = (1 - alpha) * rgb[fill] + alpha * np.asarray(KEPT_RGB, np.float32)
    edge = (ndimage.grey_dilation(labels, size=3) != labels) | (ndimage.grey_erosion(labels, size=3) != labels)
    rgb[edge & fill] = KEPT_RGB
    rgb[edge & discarded_of[labels]] = DISCARDED_RGB
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    if boxes and (~kept).any():
        for k, window in enumerate(ndimage.find_objects(labels), start=1):
            if window is None or kept[k - 1]:
                continue
            cv2.rectangle(out, (window[1].start - 2, window[0].start - 2), (window[1].stop + 1, window[0].stop + 1),
                          DISCARDED_RGB, 1)
    return out


def histogram_figure(analysis: SteatosisAnalysis, report: SteatosisReport) -> go.Figure:
    """Area, perimeter and eccentricity histograms, kept vs discarded, with the cutoff bounds.

    Drawn by :func:`medlim.ui.microscopy.object_histograms` from the per-droplet
    table: areas in µm² and perimeters in µm when the pixel size is known, else
    px² and px, the unit on every axis. Bounds are black dashed lines at
    ``low × reference`` and ``high × reference`` (none for an open limit or a
    low of 0), in the axis' unit; absolute µm² bounds are drawn too.
    """
    from medlim.microscopy.steatosis.export import droplet_object_table
    from medlim.ui.microscopy import object_histograms

    table = droplet_object_table(analysis.table, report.kept_flags)
    um = analysis.table.spacing.um
    columns = {"area": "area_px2", "perimeter": "perimeter_px", "eccentricity": "eccentricity"}
    scale = {"area": 1.0, "perimeter": 1.0, "eccentricity": 1.0}
    if um is not None:
        columns.update(area="area_um2", perimeter="perimeter_um")
        scale.update(area=um**2, perimeter=um)
    bounds: dict[str, list[float]] = {}
    for name, column in columns.items():
        reference = report.reference.get(name, 0.0)
        bounds[column] = [bound * reference * scale[name] for bound in getattr(report.cutoffs, name)]
    if um is not None and report.cutoffs.absolute:
        bounds["area_um2"].extend(report.cutoffs.area_um2)
    kept = report.kept_flags
    return object_histograms(table, list(columns.values()), objects="Droplets", bounds=bounds,
                             groups=(("kept", f"rgb{KEPT_RGB}", kept), ("discarded", f"rgb{DISCARDED_RGB}", ~kept)))


def steatosis_samples(samples_dir: Path) -> list[Path]:
    """Bundled H&E samples (``<samples>/steatosis/*.png``, label/truth files excluded)."""
    folder = Path(samples_dir) / "steatosis"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.png") if not is_derived_file(p))


# --------------------------------------------------------------------------- streamlit helpers


@bounded_cache_resource(max_entries=2, show_spinner="Loading the steatosis model…")
def load_model_cached(weights: str, weights_dir: str) -> SteatosisModel:
    """:func:`medlim.microscopy.steatosis.analysis.load_steatosis_model`, once per process."""
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.analysis import load_steatosis_model

    return load_steatosis_model(weights, registry=Registry.load(Path(weights_dir)))


_SESSION_CACHE = "steatosis_analysis_cache"
_SESSION_CACHE_SIZE = 4


def analyse_cached(pixels: np.ndarray, data: bytes, model: SteatosisModel,
                   spacing: MicronSpacing | None = None) -> SteatosisAnalysis:
    """Detect droplets once per (file content, weights, and — for weights that know their pixel size — the image's
    pixel size, which decides the scale they see) in this session; sliders reuse the result."""
    from medlim.microscopy.objects import NO_SPACING
    from medlim.microscopy.steatosis.analysis import analyse_image

    spacing = spacing or NO_SPACING
    scale = spacing.um if model.pixel_spacing_um is not None else None
    key = (hashlib.sha256(data).hexdigest(), model.label, scale)
    cache: OrderedDict[tuple, SteatosisAnalysis] = st.session_state.setdefault(_SESSION_CACHE, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    bar = st.progress(0.0, text="Finding droplets…")
    try:
        analysis = analyse_image(model, pixels, spacing=spacing,
                                 progress=lambda done, total: bar.progress(done / max(total, 1),
                                                                           text=f"Finding droplets: tile {done} of {total}"))
    finally:
        bar.empty()
    lru_put(cache, key, analysis, max_entries=_SESSION_CACHE_SIZE)
    return analysis


_OUTLINE_CACHE = "steatosis_outline_cache"


def exports_cached(analysis: SteatosisAnalysis, report: SteatosisReport) -> ObjectExports:
    """The per-droplet CSV and GeoJSON under ``report`` (:meth:`SteatosisAnalysis.exports`); outlines are
    traced once per detection result in this session, so moving a slider only re-labels them."""
    from medlim.microscopy.steatosis.export import droplet_exports

    cache: OrderedDict[int, tuple[Any, list[Any]]] = st.session_state.setdefault(_OUTLINE_CACHE, OrderedDict())
    owner = analysis.labels if analysis.labels is not None else analysis.outlines
    stored = cache.get(id(owner))
    if stored is None or stored[0] is not owner:
        stored = (owner, analysis.droplet_outlines())
        lru_put(cache, id(owner), stored, max_entries=_SESSION_CACHE_SIZE)
    return droplet_exports(stored[1], analysis.table, report.kept_flags)
