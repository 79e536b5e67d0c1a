"""Helpers for the clumped-nuclei page (thesis §3.1): widgets' specs, overlay, figures, downloads, caches.

The page runs :func:`medlim.microscopy.nuclei.pipeline.segment_nuclei` (the
thesis method) and :func:`medlim.microscopy.nuclei.watershed.watershed_nuclei`
(the baseline of thesis §3.1.3) on one fluorescence image and renders their
typed results with these functions. The per-nucleus table and the readout
(counts, clumps split) are the room's
(:mod:`medlim.microscopy.nuclei.measure`), so ``medlim nuclei segment`` prints
the same numbers. Everything here is pure (arrays in, arrays, figures or
bytes out) except :func:`segment_cached` and :func:`nucleus_table_cached`,
which keep results in the Streamlit session.

Colours: instances are filled from the Okabe–Ito palette (distinguishable with
the common colour-vision deficiencies; black left out), chosen so that touching
nuclei never share a colour when seven colours suffice. Dividing curves are
drawn white on a black casing, a colour the palette does not use.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from medlim.core.io.files import RASTER_SUFFIXES, is_derived_file
from medlim.errors import ImageTooLargeError, InputError
from medlim.microscopy.nuclei.foreground import dapi_warning  # the page's warning, as the command line's
from medlim.microscopy.nuclei.measure import NucleusRow, NucleusTable, nucleus_table
from medlim.microscopy.nuclei.pipeline import Cut, NucleiParams, NucleiResult
from medlim.microscopy.objects import NO_SPACING, MicronSpacing
from medlim.microscopy.qupath import ObjectExports
from medlim.ui.images import png_data_uri

__all__ = [
    "OKABE_ITO",
    "ParamSpec",
    "PARAM_SPECS",
    "NucleusRow",
    "nuclei_samples",
    "truth_count",
    "dapi_warning",
    "instance_colours",
    "overlay_rgb",
    "nuclei_csv",
    "labels_png",
    "overlay_figure",
    "params_from_values",
    "params_digest",
    "segment_cached",
    "nucleus_table_cached",
    "exports_cached",
    "PRESET_KIND",
    "THRESHOLD_MODES",
    "parameter_defaults",
    "preset_values",
    "histogram_columns",
]

#: Preset kind of saved method parameters in the store.
PRESET_KIND = "nuclei"
#: The foreground threshold choices of the page (thesis Otsu, authors' fixed fraction).
THRESHOLD_MODES: tuple[str, ...] = ("Otsu (thesis: global adaptive threshold)",
                                    "Fixed fraction of the intensity range (authors' code)")

#: Okabe & Ito (2008) colour-blind-safe palette without black, as RGB in [0, 1].
OKABE_ITO: np.ndarray = (
    np.array(
        [
            (230, 159, 0),  # orange
            (86, 180, 233),  # sky blue
            (0, 158, 115),  # bluish green
            (240, 228, 66),  # yellow
            (0, 114, 178),  # blue
            (213, 94, 0),  # vermillion
            (204, 121, 167),  # reddish purple
        ],
        dtype=np.float32,
    )
    / 255.0
)



# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """How one :class:`NucleiParams` field is offered on the page.

    Attributes:
        name: the field name.
        label: widget label (with unit).
        help: tooltip naming the thesis equation or parameter.
        group: heading it is shown under.
        minimum, maximum, step: number-input range (ignored for booleans).
    """

    name: str
    label: str
    help: str
    group: str
    minimum: float = 0.0
    maximum: float = 1.0
    step: float = 0.01


_FG = "Foreground and clump candidates (thesis §3.1.2, step 1)"
_CURV = "Concave points (curvature, eq. 3.1)"
_PAIRS = "Point pairs (r1, r2, eq. 3.2)"
_ELLIPSE = "Ellipse fit and connections (eq. 3.3)"
_CURVES = "Dividing curves (eq. 3.4)"

#: Every method parameter the page offers, in display order (``threshold``,
#: ``scale`` and ``mean_area`` are offered through special widgets, see
#: :func:`params_from_values`).
PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("area_factor", "Clump area factor (× mean area)",
              "A region is a clump candidate when its area is at least this many mean nucleus areas "
              "(thesis: 1.5).", _FG, 1.0, 5.0, 0.1),
    ParamSpec("max_solidity", "Clump solidity limit",
              "…or when its solidity (area / convex hull area) is below this (thesis §3.2 solidity cut: 0.95).",
              _FG, 0.5, 1.0, 0.01),
    ParamSpec("min_area_fraction", "Smallest region (× mean area)",
              "Regions smaller than this fraction of the mean nucleus area are removed as debris (thesis: 1/10).",
              _FG, 0.0, 1.0, 0.01),
    ParamSpec("sigma", "Contour smoothing σ (px)",
              "Gaussian smoothing of the contour before the curvature κ of eq. 3.1 is computed (authors' code: 6 px; "
              "scaled with nucleus size when the length scale is automatic).", _CURV, 0.5, 30.0, 0.5),
    ParamSpec("min_concavity", "Least concavity (1/px)",
              "A concave run votes for a point (eq. 3.1) only if κ reaches below −this. "
              "0 is the thesis (sign only); project default 0.02 ignores noise ripples.", _CURV, 0.0, 0.2, 0.005),
    ParamSpec("merge_radius", "Merge radius for adjacent points (px)",
              "Adjacent concave points closer than this, with low walking energy, merge into one "
              "(thesis uses r1; project default 15 px).", _CURV, 1.0, 100.0, 1.0),
    ParamSpec("energy_threshold", "Walking-energy threshold (rad)",
              "Adjacent points merge when the walking energy E = ∫κ ds between them is below this "
              "(thesis gives no value; project 0.4).", _CURV, 0.0, 3.2, 0.05),
    ParamSpec("r1", "Search radius r1 (px)",
              "Point pairs closer than r1 are connection candidates (thesis r1 = 45 px, §3.1.2).",
              _PAIRS, 1.0, 200.0, 1.0),
    ParamSpec("r2", "Ring outer radius r2 (px)",
              "Non-adjacent pairs between r1 and r2 are tested with V of eq. 3.2 (thesis: 70 px; code 76).",
              _PAIRS, 1.0, 300.0, 1.0),
    ParamSpec("alpha", "α of eq. 3.2",
              "Weight of the normal angle θ in V = αθ / (D + β(κp + κq)) (thesis: 100).",
              _PAIRS, 1.0, 1000.0, 1.0),
    ParamSpec("beta", "β of eq. 3.2",
              "Weight of the curvatures in V = αθ / (D + β(κp + κq)) (thesis: 0.34).", _PAIRS, 0.0, 10.0, 0.01),
    ParamSpec("v_threshold", "V threshold (eq. 3.2)",
              "A ring pair is connected when V of eq. 3.2 exceeds this (thesis: 200).", _PAIRS, 1.0, 2000.0, 10.0),
    ParamSpec("mu", "μ of eq. 3.3",
              "Weight of S⁺ (IoU with the fitted ellipse) in the ellipse-fit quality Q of eq. 3.3 (thesis: 10.70).",
              _ELLIPSE, 0.0, 100.0, 0.1),
    ParamSpec("nu", "ν of eq. 3.3",
              "Weight of ψ (angle at the ellipse centre between the two points) in Q of eq. 3.3 (thesis: 10.70).",
              _ELLIPSE, 0.0, 100.0, 0.1),
    ParamSpec("gamma1", "γ1 of eq. 3.3",
              "Weight of the perimeter difference ΔL in the denominator of Q, eq. 3.3 (thesis: 0.67).",
              _ELLIPSE, 0.0, 20.0, 0.01),
    ParamSpec("gamma2", "γ2 of eq. 3.3",
              "Weight of the axis ratio η in the denominator of Q, eq. 3.3 (thesis: 3.40).",
              _ELLIPSE, 0.0, 20.0, 0.01),
    ParamSpec("q_threshold", "Q threshold (eq. 3.3)",
              "Pairs are connected, best first, while their ellipse-fit quality Q (eq. 3.3) exceeds this "
              "(thesis: 0.7). "
              "Lower splits more.", _ELLIPSE, 0.0, 5.0, 0.05),
    ParamSpec("min_part_fraction", "Smallest part of a cut (× mean area)",
              "A cut may not leave a part smaller than this many mean areas (project choice 0.5).",
              _ELLIPSE, 0.0, 2.0, 0.05),
    ParamSpec("sharp_angle_deg", "Sharp-angle pruning (°)",
              "A connection meeting an earlier one at less than this angle is pruned "
              "(thesis prunes sharp connections without a value; project 30°).", _ELLIPSE, 0.0, 90.0, 1.0),
    ParamSpec("split_unpaired", "Cut from lone concave points",
              "Project addition, not in the thesis: a concave point left without a partner may cut along its "
              "inward normal if the part passes the Q test. Off = the thesis method alone.", _ELLIPSE),
    ParamSpec("use_curves", "Follow intensity valleys",
              "Draw dividing curves through the intensity valley (eq. 3.4); off = straight lines.", _CURVES),
    ParamSpec("sector_deg", "Search sector half-angle (°)",
              "The valley walk looks for the next pixel within ± this angle of the direction to the end point "
              "(thesis eq. 3.4: 45°).", _CURVES, 1.0, 89.0, 1.0),
    ParamSpec("hessian_sigma", "Hessian scale (px)",
              "Gaussian scale of the Hessian whose eigenvalues 0 ≈ λ1 ≪ λ2 mark the valley "
              "(eq. 3.4; project 2 px).",
              _CURVES, 0.5, 10.0, 0.5),
)


def parameter_defaults() -> dict[str, Any]:
    """Every method widget's value at the thesis defaults, by name (the ``nuclei_p_<name>`` widgets):
    the threshold mode and fraction, the known mean area (0 = estimate), the length-scale switch and
    value, and each :data:`PARAM_SPECS` field."""
    defaults = NucleiParams()
    values: dict[str, Any] = {"threshold_mode": THRESHOLD_MODES[0], "threshold_fraction": 0.25, "mean_area": 0.0,
                              "auto_scale": True, "scale": 1.0}
    for spec in PARAM_SPECS:
        value = getattr(defaults, spec.name)
        values[spec.name] = value if isinstance(value, bool) else float(value)
    return values


def preset_values(params: dict[str, Any]) -> dict[str, Any]:
    """A stored nuclei preset checked against :func:`parameter_defaults` (unknown names refused, missing
    ones at their defaults, so presets saved before a parameter existed still load).

    Raises:
        ParameterError: an unknown name, or a value of the wrong kind.
    """
    from medlim.errors import ParameterError

    defaults = parameter_defaults()
    unknown = set(params) - set(defaults)
    if unknown:
        raise ParameterError(f"unknown nuclei preset values {sorted(unknown)}; known: {sorted(defaults)}.")
    values = dict(defaults)
    for name, value in params.items():
        default = defaults[name]
        if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, str) and value not in THRESHOLD_MODES):
            raise ParameterError(f"nuclei preset value {name}={value!r} is not a {type(default).__name__}.")
        values[name] = value if isinstance(default, (bool, str)) else float(value)
    return values


def histogram_columns(spacing: MicronSpacing) -> list[str]:
    """The per-nucleus columns the page's histograms show: sizes in µm when known, else px."""
    unit, area = ("um", "um2") if spacing.known else ("px", "px2")
    return [f"area_{area}", f"perimeter_{unit}", f"equivalent_diameter_{unit}", "eccentricity"]


def params_from_values(
    values: dict[str, Any],
    *,
    threshold_fraction: float | None = None,
    scale: float | None = None,
    mean_area: float | None = None,
) -> NucleiParams:
    """:class:`NucleiParams` from the page's widget values.

    Args:
        values: ``{field name: value}`` for fields of :data:`PARAM_SPECS` (others keep the default).
        threshold_fraction: fixed threshold as a fraction of the intensity range, or None for Otsu.
        scale: fixed length scale, or None for ``"auto"``.
        mean_area: known mean nucleus area in px², or None to estimate it.

    Raises:
        ParameterError: a value :class:`NucleiParams` rejects (e.g. r2 < r1).
    """
    known = {spec.name for spec in PARAM_SPECS}
    chosen = {name: value for name, value in values.items() if name in known}
    return NucleiParams(
        **chosen,
        threshold="otsu" if threshold_fraction is None else float(threshold_fraction),
        scale="auto" if scale is None else float(scale),
        mean_area=None if mean_area is None else float(mean_area),
    )


def params_digest(params: NucleiParams) -> str:
    """A stable short text of every parameter value (part of the result cache key)."""
    return ";".join(f"{f.name}={getattr(params, f.name)!r}" for f in fields(params))


# ----------------------------------------------------------------------------- samples and input checks


def nuclei_samples(samples_dir: Path) -> list[Path]:
    """Bundled fluorescence images: files under ``samples_dir`` whose path mentions
    ``nuclei`` or ``fluorescence``, ground-truth label images left out; sorted."""
    if not samples_dir.is_dir():
        return []
    found = []
    for path in sorted(samples_dir.rglob("*")):
        relative = path.relative_to(samples_dir).as_posix().lower()
        if not path.is_file() or path.suffix.lower() not in RASTER_SUFFIXES or is_derived_file(path):
            continue
        if "nuclei" in relative or "fluorescence" in relative:
            found.append(path)
    return found


def truth_count(image_path: Path) -> int | None:
    """Nuclei in the phantom's ground truth beside a sample (``<stem>_labels.png`` for
    ``<stem>_image.png``), or None when there is none."""
    stem = image_path.stem
    base = stem[: -len("_image")] if stem.endswith("_image") else stem
    truth = image_path.with_name(f"{base}_labels.png")
    if not truth.is_file():
        return None
    import cv2

    labels = cv2.imread(str(truth), cv2.IMREAD_UNCHANGED)
    if labels is None:
        return None
    return int(len(np.unique(labels[labels > 0])))


# ----------------------------------------------------------------------------- overlay


def _touching_pairs(labels: np.ndarray) -> np.ndarray:
    """Pairs ``(a, b)``, a < b, of distinct instances that touch (8-neighbourhood)."""
    pairs = []
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
        (labels[:-1, :-1], labels[1:, 1:]),
        (labels[:-1, 1:], labels[1:, :-1]),
    ):
        touching = (a != b) & (a > 0) & (b > 0)
        if touching.any():
            pairs.append(np.stack([np.minimum(a[touching], b[touching]), np.maximum(a[touching], b[touching])], 1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


def instance_colours(labels: np.ndarray, *, n_colours: int = len(OKABE_ITO)) -> np.ndarray:
    """A palette index per instance such that touching instances differ where possible.

    Greedy colouring in label order: instance ``k`` takes the first index, counting
    cyclically from ``k mod n_colours``, that no already coloured neighbour uses
    (so isolated nuclei cycle through the palette too); ``k mod n_colours`` when
    all are used.

    Args:
        labels: ``np.ndarray[H, W]`` integer instance labels, 0 = background.
        n_colours: palette size, ≥ 1.

    Returns:
        ``np.ndarray[max_label + 1]`` int64; entry 0 (background) is 0.
    """
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    colours = np.zeros(top + 1, np.int64)
    neighbours: dict[int, list[int]] = {}
    for a, b in _touching_pairs(labels):
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    present = np.unique(labels[labels > 0])
    done: set[int] = set()
    for k in present.tolist():
        used = {int(colours[n]) for n in neighbours.get(k, []) if n in done}
        free = [(k + step) % n_colours for step in range(n_colours) if (k + step) % n_colours not in used]
        colours[k] = free[0] if free else k % n_colours
        done.add(k)
    return colours


def overlay_rgb(
    background: np.ndarray,
    labels: np.ndarray,
    *,
    opacity: float,
    outlines: bool = True,
) -> np.ndarray:
    """Instances blended over a background image.

    Args:
        background: ``np.ndarray[H, W]`` grey or ``[H, W, 3]`` RGB, float in [0, 1].
        labels: ``np.ndarray[H, W]`` instance labels, 0 = background.
        opacity: fill opacity in [0, 1] (0 = outlines only).
        outlines: draw each instance's inner boundary in its colour, fully opaque.

    Returns:
        ``np.ndarray[H, W, 3]`` float32 in [0, 1].
    """
    from skimage.segmentation import find_boundaries

    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"overlay opacity must be in [0, 1], {opacity} is given.")
    base = np.asarray(background, np.float32)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    base = np.clip(base[..., :3], 0.0, 1.0)
    if base.shape[:2] != labels.shape:
        raise InputError(f"background {base.shape[:2]} and labels {labels.shape} differ in size.")
    colour_of = OKABE_ITO[instance_colours(labels)]
    inside = labels > 0
    out = base.copy()
    colour = colour_of[labels[inside]]
    out[inside] = (1.0 - opacity) * base[inside] + opacity * colour
    if outlines:
        edge = find_boundaries(labels, mode="inner") & inside
        out[edge] = colour_of[labels[edge]]
    return out


def overlay_figure(
    display: np.ndarray,
    *,
    cuts: Sequence[Cut] = (),
    rows: Sequence[NucleusRow] = (),
    numbers: bool = False,
    factor: int = 1,
    title: str | None = None,
    height: int = 560,
) -> go.Figure:
    """A zoomable figure of an overlay image with the dividing curves on top.

    Args:
        display: ``np.ndarray[h, w, 3]`` float in [0, 1] (possibly shrunk by ``factor``).
        cuts: dividing curves in full-resolution (row, col) pixels.
        rows: per-nucleus measurements; each nucleus gets a hover point at its
            centroid (trace ``"nuclei"``) telling its id, area and whether it
            was cut from a clump.
        numbers: write each nucleus' id at its centroid (to find it in the table).
        factor: integer factor the display was shrunk by.
        title: figure title.
        height: figure height in pixels.

    Returns:
        A plotly figure without a legend (so panels with and without cuts line
        up): one image trace, then for each kind of cut present a black casing
        and a white line (solid: follows the intensity valley; dashed: straight
        fallback), named on hover.
    """
    figure = go.Figure(go.Image(source=png_data_uri(np.asarray(display, np.float32)[..., :3]), hoverinfo="x+y"))
    figure.update_layout(
        title=title,
        height=height,
        dragmode="zoom",
        xaxis={"title": "column (px)", "constrain": "domain"},
        yaxis={"title": "row (px)", "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
    )
    groups = (
        ("Dividing curve (follows the intensity valley)", "solid", [c for c in cuts if c.followed_valley]),
        ("Dividing line (straight: no valley found)", "dash", [c for c in cuts if not c.followed_valley]),
    )
    for name, dash, chosen in groups:
        if not chosen:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        for cut in chosen:
            path = np.asarray(cut.path, dtype=np.float64)
            xs.extend(((path[:, 1] + 0.5) / factor - 0.5).tolist() + [None])
            ys.extend(((path[:, 0] + 0.5) / factor - 0.5).tolist() + [None])
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "black", "width": 4},
                                    hoverinfo="skip", showlegend=False))
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, hoverinfo="name",
                                    line={"color": "white", "width": 2, "dash": dash}))
    if rows:
        figure.add_trace(
            go.Scatter(
                x=[(row.centroid_col + 0.5) / factor - 0.5 for row in rows],
                y=[(row.centroid_row + 0.5) / factor - 0.5 for row in rows],
                mode="markers+text" if numbers else "markers",
                name="nuclei",
                text=[str(row.id) for row in rows] if numbers else None,
                textfont={"color": "black", "size": 12, "weight": "bold", "shadow": "0px 0px 3px white"},
                marker={"size": 10, "opacity": 0.0},
                customdata=[[row.id, row.area_px2, "yes" if row.from_split_clump else "no"] for row in rows],
                hovertemplate="Nucleus %{customdata[0]}<br>area %{customdata[1]} px²"
                "<br>cut from a clump: %{customdata[2]}<extra></extra>",
            )
        )
    figure.update_layout(showlegend=False, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return figure


# ----------------------------------------------------------------------------- per-nucleus table (downloads)


def nuclei_csv(table: NucleusTable) -> bytes:
    """The per-nucleus CSV download as UTF-8 bytes: :meth:`medlim.microscopy.nuclei.measure.NucleusTable.to_csv`,
    the file ``medlim nuclei segment --csv`` writes (``<stem>_objects.csv``)."""
    return table.to_csv().encode("utf-8")


def labels_png(labels: np.ndarray, *, name: str = "image") -> bytes:
    """The instance labels as a 16-bit grey PNG (0 = background), as ``medlim nuclei segment`` writes.

    Raises:
        ImageTooLargeError: more than 65,535 nuclei.
    """
    import cv2

    labels = np.asarray(labels)
    if labels.size and int(labels.max()) > 65535:
        raise ImageTooLargeError(f"{name}: {int(labels.max())} nuclei do not fit a uint16 label image.")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(labels.astype(np.uint16)))
    if not ok:  # pragma: no cover
        raise InputError(f"{name}: could not encode the labels as PNG.")
    return encoded.tobytes()


# ----------------------------------------------------------------------------- streamlit: cached runs

_SESSION_CACHE = "nuclei_result_cache"
_SESSION_CACHE_SIZE = 8


def segment_cached(
    pixels: np.ndarray,
    data: bytes,
    *,
    method: str,
    params: NucleiParams | None = None,
    name: str = "image",
) -> NucleiResult:
    """Run the thesis method or the watershed baseline once per (file content, method, parameters).

    Results are kept in ``st.session_state`` (least recently used dropped after
    eight), so moving a display slider reruns the page without re-segmenting; a
    progress bar follows the clumps while the thesis method runs.

    Args:
        pixels: the decoded image (``ImageRecord.pixels``).
        data: the file's bytes (hashed for the key).
        method: ``"thesis"`` or ``"watershed"``.
        params: the thesis method's parameters (ignored for the watershed).
        name: file name for the progress text.

    Raises:
        ParameterError: unknown ``method`` or an image the method cannot read.
    """
    import streamlit as st

    from medlim.errors import ParameterError
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_nuclei

    if method not in ("thesis", "watershed"):
        raise ParameterError(f"method must be 'thesis' or 'watershed', {method!r} is given.")
    params = params or NucleiParams()
    digest = hashlib.sha256(data).hexdigest()
    key = (digest, method, params_digest(params) if method == "thesis" else "")
    cache: OrderedDict[tuple[str, str, str], NucleiResult] = st.session_state.setdefault(_SESSION_CACHE, OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    if method == "watershed":
        with st.spinner(f"Watershed baseline on {name}…"):
            result = watershed_nuclei(pixels)
    else:
        bar = st.progress(0.0, text=f"Splitting clumps in {name}…")

        def report(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Splitting clumps in {name}: clump {done} of {total}")

        try:
            result = segment_nuclei(pixels, params=params, progress=report)
        finally:
            bar.empty()
    cache[key] = result
    while len(cache) > _SESSION_CACHE_SIZE:
        cache.popitem(last=False)
    return result


_TABLE_CACHE = "nuclei_table_cache"


def nucleus_table_cached(result: NucleiResult, spacing: MicronSpacing = NO_SPACING) -> NucleusTable:
    """:func:`medlim.microscopy.nuclei.measure.nucleus_table` of ``result.labels``, once per result and pixel
    size in this session.

    Keyed by object identity and checked against the stored object, so a
    recycled id never returns another result's table; only the last eight are kept.
    """
    import streamlit as st

    cache: OrderedDict[tuple[int, MicronSpacing], tuple[NucleiResult, NucleusTable]] = st.session_state.setdefault(
        _TABLE_CACHE, OrderedDict()
    )
    key = (id(result), spacing)
    stored = cache.get(key)
    if stored is not None and stored[0] is result:
        cache.move_to_end(key)
        return stored[1]
    table = nucleus_table(result.labels, spacing=spacing)
    cache[key] = (result, table)
    while len(cache) > _SESSION_CACHE_SIZE:
        cache.popitem(last=False)
    return table


_EXPORT_CACHE = "nuclei_export_cache"


def exports_cached(result: NucleiResult, table: NucleusTable) -> ObjectExports:
    """The per-nucleus CSV and QuPath GeoJSON (:func:`medlim.microscopy.nuclei.measure.nuclei_exports`, the files
    ``medlim nuclei segment --csv --geojson`` writes); outlines are traced once per result in this session."""
    import streamlit as st

    from medlim.microscopy.nuclei.measure import nuclei_exports, nucleus_outlines

    cache: OrderedDict[int, tuple[NucleiResult, list[Any]]] = st.session_state.setdefault(_EXPORT_CACHE, OrderedDict())
    stored = cache.get(id(result))
    if stored is None or stored[0] is not result:
        stored = (result, nucleus_outlines(result.labels, table))
        cache[id(result)] = stored
        while len(cache) > _SESSION_CACHE_SIZE:
            cache.popitem(last=False)
    return nuclei_exports(stored[1], table.objects)
