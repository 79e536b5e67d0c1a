"""Figures and cached helpers of the liver steatosis page (thesis §3.2.3, Fig. 3.5).

Pure helpers first (overlay image, morphology histograms, readout rows), then
the Streamlit caches (model once per process, detections once per image and
weights in the session). The page only arranges them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from medlim.core.io.files import is_derived_file
from medlim.microscopy.steatosis.analysis import SteatosisAnalysis, SteatosisModel
from medlim.microscopy.steatosis.droplets import DONOR_BANDS, NASH_CRN_BANDS, CutoffResult, Cutoffs, grade
from medlim.ui.caching import bounded_cache_resource, lru_put

__all__ = [
    "PRESET_KIND",
    "DISCARDED_RGB",
    "overlay_image",
    "histogram_figure",
    "readout",
    "steatosis_samples",
    "load_model_cached",
    "analyse_cached",
    "open_store_cached",
]

#: Preset kind of saved cutoffs in the store.
PRESET_KIND = "steatosis"
#: Colour of discarded droplets' outlines and boxes (thesis Fig. 3.5 marks them with boxes).
DISCARDED_RGB: tuple[int, int, int] = (20, 20, 20)
_KEPT_OUTLINE_RGB = (0, 200, 255)


def _palette(n: int) -> np.ndarray:
    """Distinct, stable fill colours per droplet (golden-angle hues), ``uint8[n + 1, 3]``."""
    hues = (np.arange(n + 1) * 0.618034) % 1.0
    rgb = np.stack([np.abs(hues * 6 - 3) - 1, 2 - np.abs(hues * 6 - 2), 2 - np.abs(hues * 6 - 4)], axis=1)
    colours = (np.clip(rgb, 0, 1) * 200 + 40).astype(np.uint8)
    colours[0] = 0
    return colours


def overlay_image(image: np.ndarray, labels: np.ndarray, kept: np.ndarray, *, alpha: float = 0.45,
                  boxes: bool = True) -> np.ndarray:
    """Kept droplets filled in colour; discarded ones outlined and boxed in near-black.

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
    colours = _palette(len(kept)).astype(np.float32)
    fill = kept_of[labels]
    rgb[fill] = (1 - alpha) * rgb[fill] + alpha * colours[labels[fill]]
    edge = (ndimage.grey_dilation(labels, size=3) != labels) | (ndimage.grey_erosion(labels, size=3) != labels)
    rgb[edge & fill] = _KEPT_OUTLINE_RGB
    rgb[edge & discarded_of[labels]] = DISCARDED_RGB
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    if boxes and (~kept).any():
        for k, window in enumerate(ndimage.find_objects(labels), start=1):
            if window is None or kept[k - 1]:
                continue
            cv2.rectangle(out, (window[1].start - 2, window[0].start - 2), (window[1].stop + 1, window[0].stop + 1),
                          DISCARDED_RGB, 1)
    return out


def histogram_figure(analysis: SteatosisAnalysis, result: CutoffResult, cutoffs: Cutoffs) -> go.Figure:
    """Area, perimeter and eccentricity histograms, kept vs discarded, with the cutoff bounds."""
    figure = make_subplots(rows=1, cols=3, subplot_titles=("Area (px²)", "Perimeter (px)", "Eccentricity"))
    table = analysis.table
    for column, name in enumerate(("area", "perimeter", "eccentricity"), start=1):
        values = getattr(table, name)
        for subset, label, colour in ((result.kept, "kept", "rgb(0,150,220)"), (~result.kept, "discarded", "rgb(40,40,40)")):
            figure.add_trace(go.Histogram(x=values[subset], name=label, marker_color=colour, opacity=0.75,
                                          nbinsx=30, legendgroup=label, showlegend=column == 1),
                             row=1, col=column)
        low, high = getattr(cutoffs, name)
        mean = result.means.get(name, 0.0)
        for bound in (low * mean, high * mean):
            figure.add_vline(x=bound, line_dash="dash", line_color="rgb(220,80,0)", row=1, col=column)
    figure.update_layout(barmode="overlay", height=300, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.2))
    return figure


def readout(result: CutoffResult) -> dict[str, Any]:
    """Count, steatosis percentage of tissue and the grade bands."""
    percent = 100.0 * result.steatosis_fraction
    return {
        "detected": result.detected,
        "kept": result.kept_count,
        "discarded": result.detected - result.kept_count,
        "steatosis_percent": round(percent, 2),
        "nash_crn": grade(percent, NASH_CRN_BANDS),
        "donor": grade(percent, DONOR_BANDS),
    }


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


def analyse_cached(pixels: np.ndarray, data: bytes, model: SteatosisModel) -> SteatosisAnalysis:
    """Detect droplets once per (file content, weights) in this session; sliders reuse the result."""
    from medlim.microscopy.steatosis.analysis import analyse_image

    key = (hashlib.sha256(data).hexdigest(), model.label)
    cache: OrderedDict[tuple[str, str], SteatosisAnalysis] = st.session_state.setdefault(_SESSION_CACHE, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    bar = st.progress(0.0, text="Finding droplets…")
    try:
        analysis = analyse_image(model, pixels,
                                 progress=lambda done, total: bar.progress(done / max(total, 1),
                                                                           text=f"Finding droplets: tile {done} of {total}"))
    finally:
        bar.empty()
    lru_put(cache, key, analysis, max_entries=_SESSION_CACHE_SIZE)
    return analysis


@st.cache_resource(max_entries=2, show_spinner=False)
def open_store_cached(database_url: str) -> "Store":  # noqa: F821
    """:func:`medlim.core.store.open_store` once per database URL (for cutoff presets)."""
    from medlim.core.store import open_store

    return open_store(database_url)
