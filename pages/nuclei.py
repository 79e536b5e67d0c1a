"""Clumped nuclei page, thesis §3.1.

A pathologist uploads a fluorescence image (DAPI in the blue channel) or opens
a bundled phantom, and sees the thesis method's nuclei with the dividing curves
it drew through clumps, beside the marker-controlled watershed baseline; the
counts, a per-nucleus table with sizes in px and — when the file states its
pixel size or the "Pixel size (µm)" field gives it — in µm / µm², histograms of
those sizes, and the downloads ``medlim nuclei segment --csv --geojson`` writes
(the label image, ``<stem>_objects.csv``, ``<stem>.geojson`` for QuPath). A
whole slide (an SVS / NDPI / tiled TIFF upload kept inside the data roots, or a
slide on the server) is analysed by ``medlim nuclei segment`` as a
``nuclei.segment`` job (:mod:`medlim.ui.slide_jobs`): the page follows it and
shows the count, the per-nucleus table and histograms of the CSV it wrote and
its CSV and GeoJSON as downloads. The
method's parameters can be saved and loaded as named presets (built in:
``thesis``). The method runs once per image and parameter set (cached);
display sliders only redraw. All analysis comes from
:mod:`medlim.microscopy.nuclei`; this script arranges widgets and results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from medlim import RESEARCH_USE_NOTICE
from medlim.core.io.pseudonym import file_label
from medlim.microscopy.nuclei.foreground import dapi_channel
from medlim.microscopy.nuclei.measure import NucleiReadout, NucleusRow, NucleusTable, nuclei_readout
from medlim.microscopy.nuclei.pipeline import NucleiParams, NucleiResult
from medlim.microscopy.objects import MicronSpacing
from medlim.microscopy.slide_runs import SlideRun
from medlim.settings import get_settings
from medlim.ui import microscopy as shared
from medlim.ui import nuclei as ui
from medlim.ui import slide_jobs
from medlim.ui.errors import show_medlim_errors
from medlim.ui.figures import downsample_for_display
from medlim.ui.loaders import read_image_cached
from medlim.ui.shell import ensure_app_shell

KEY = "nuclei"
#: The session key of the whole-slide job this page follows (:data:`medlim.ui.jobs.JOB_PAGES`).
JOB_KEY = "nuclei_job"
DEFAULTS = NucleiParams()
BACKGROUNDS = ("DAPI channel (grey)", "Original colours")


def _choose_source() -> tuple[str, bytes, Path | None] | None:
    """Upload or bundled sample; ``(name, bytes, sample path or None)``."""
    samples_dir = get_settings().samples_dir
    upload_column, sample_column = st.columns(2)
    with upload_column:
        uploaded = st.file_uploader(
            "Upload a fluorescence image (PNG or TIFF, DAPI in the blue channel)",
            type=["png", "tif", "tiff", "jpg", "jpeg", "svs", "ndpi"],
            key=f"{KEY}_upload",
            help="Read in memory for this session only. Colour images: nuclei are read from the blue channel; "
            "grey images are used as they are. A whole slide (SVS, NDPI, tiled TIFF) is kept in the data folders "
            "and analysed as a job.",
        )
    samples = ui.nuclei_samples(samples_dir)
    labels = {path.relative_to(samples_dir).as_posix(): path for path in samples}
    with sample_column:
        if labels:
            chosen = st.selectbox(
                "…or open a bundled sample (synthetic phantom)",
                list(labels),
                index=None,
                key=f"{KEY}_sample",
                placeholder="Choose a sample",
            )
        else:
            chosen = None
            st.caption(f"No bundled fluorescence samples in `{samples_dir}`.")
    if uploaded is not None:
        return uploaded.name, uploaded.getvalue(), None
    if chosen is not None:
        return chosen, labels[chosen].read_bytes(), labels[chosen]
    return None


def _reset_parameters() -> None:
    for key in list(st.session_state):
        if str(key).startswith(f"{KEY}_p_"):
            del st.session_state[key]


def _parameter_values() -> dict[str, object]:
    """The method widgets' current values by name (what a preset saves)."""
    return {name: st.session_state.get(f"{KEY}_p_{name}", default) for name, default in ui.parameter_defaults().items()}


def _apply_preset(values: object) -> None:
    for name, value in dict(values).items():  # type: ignore[call-overload]
        st.session_state[f"{KEY}_p_{name}"] = value


def _presets_panel() -> None:
    """Named presets of the method's parameters in the sidebar (built in: the thesis defaults)."""
    shared.presets_panel(
        kind=ui.PRESET_KIND, builtin={"thesis": ui.parameter_defaults()}, key=KEY, current=_parameter_values,
        apply=_apply_preset, read=ui.preset_values, title="Parameter presets", save_label="Save current parameters as",
        help_text="thesis: the thesis's values (§3.1.2) with medlim's documented additions; your own presets are "
        "saved in medlim's store.")


def _advanced_parameters(error_area: DeltaGenerator) -> NucleiParams | None:
    """The 'Advanced' expander: every method parameter, thesis defaults; None on a bad combination
    (then the error is shown in ``error_area``, above, where the results would be)."""
    with st.expander("Advanced: method parameters (thesis defaults)"):
        st.caption(
            "Changing a value re-runs the method on this image. Lengths are in pixels at the thesis "
            "magnification and are rescaled to the nucleus size found in the image unless the length scale "
            "is fixed below."
        )
        st.button("Reset to thesis defaults", on_click=_reset_parameters, key=f"{KEY}_reset")
        # Values live in the session (presets set them), so widgets take no value of their own.
        for name, default in ui.parameter_defaults().items():
            st.session_state.setdefault(f"{KEY}_p_{name}", default)
        threshold_mode = st.radio(
            "Foreground threshold", ui.THRESHOLD_MODES, key=f"{KEY}_p_threshold_mode",
            help="Step 1 of thesis §3.1.2: the DAPI channel is thresholded, holes filled.",
        )
        threshold_fraction = None
        if threshold_mode.startswith("Fixed"):
            threshold_fraction = st.number_input(
                "Threshold (fraction of the range)", 0.01, 0.99, step=0.01, key=f"{KEY}_p_threshold_fraction",
                help="Authors' code: 0.25 of the intensity range.",
            )
        mean_area = st.number_input(
            "Known mean nucleus area (px², 0 = estimate from the isolated nuclei)",
            min_value=0.0, step=50.0, key=f"{KEY}_p_mean_area",
            help="The thesis estimates the mean single-nucleus area from isolated nuclei; give it for crops "
            "that hold clumps only.",
        )
        auto_scale = st.checkbox(
            "Rescale lengths to the nucleus size (automatic length scale)", key=f"{KEY}_p_auto_scale",
            help="Multiplies r1, r2, σ and the Hessian scale by √(mean area / 1500 px²). Off: the numbers are used "
            "as pixels (scale below).",
        )
        scale = None
        if not auto_scale:
            scale = st.number_input(
                "Length scale", 0.1, 10.0, step=0.05, key=f"{KEY}_p_scale",
                help="1 = the thesis values as pixels.",
            )
        values: dict[str, object] = {}
        group = None
        columns = None
        slot = 0
        for spec in ui.PARAM_SPECS:
            if spec.group != group:
                group = spec.group
                st.markdown(f"**{group}**")
                columns = st.columns(3)
                slot = 0
            assert columns is not None
            with columns[slot % 3]:
                default = getattr(DEFAULTS, spec.name)
                if isinstance(default, bool):
                    values[spec.name] = st.checkbox(spec.label, key=f"{KEY}_p_{spec.name}", help=spec.help)
                else:
                    values[spec.name] = st.number_input(
                        spec.label, min_value=float(spec.minimum), max_value=float(spec.maximum),
                        step=float(spec.step), key=f"{KEY}_p_{spec.name}", help=spec.help,
                    )
            slot += 1
    params = None
    with error_area, show_medlim_errors(subject="Method parameters"):
        params = ui.params_from_values(
            values, threshold_fraction=threshold_fraction, scale=scale, mean_area=mean_area or None
        )
    return params


def _display_controls() -> tuple[float, bool, bool, bool]:
    """Opacity, background and toggles; ``(opacity, grey_background, show_curves, show_numbers)``."""
    opacity_column, background_column, curves_column = st.columns([2, 2, 1])
    with opacity_column:
        opacity = st.slider(
            "Overlay opacity", 0.0, 1.0, 0.45, 0.05, key=f"{KEY}_opacity",
            help="0 shows only the outlines over the image; 1 hides the image under the colours.",
        )
    with background_column:
        background = st.radio("Background", BACKGROUNDS, horizontal=True, key=f"{KEY}_background")
    with curves_column:
        show_curves = st.checkbox("Show dividing curves", value=True, key=f"{KEY}_curves")
        show_numbers = st.checkbox(
            "Number the nuclei", value=False, key=f"{KEY}_numbers",
            help="Write each nucleus' number (as in the table below) on the thesis-method panel.",
        )
    return float(opacity), background == BACKGROUNDS[0], bool(show_curves), bool(show_numbers)


def _overlay(
    pixels: np.ndarray,
    result: NucleiResult,
    *,
    opacity: float,
    grey: bool,
    curves: bool,
    title: str,
    rows: Sequence[NucleusRow],
    numbers: bool = False,
) -> tuple[go.Figure, int]:
    background = dapi_channel(pixels) if grey or pixels.ndim == 2 else pixels[..., :3]
    if grey:
        # Stretch the DAPI channel for display only (1st–99.8th percentile).
        low, high = np.percentile(background, [1.0, 99.8])
        background = np.clip((background - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    blended = ui.overlay_rgb(background, result.labels, opacity=opacity)
    shrunk, factor = downsample_for_display(blended)
    # Fit the figure to the image's shape in a half-width column (~640 px wide).
    height = int(np.clip(470 * shrunk.shape[0] / shrunk.shape[1] + 100, 300, 900))
    figure = ui.overlay_figure(
        shrunk, cuts=result.cuts if curves else (), rows=rows, numbers=numbers, factor=factor, title=title,
        height=height,
    )
    return figure, factor


def _readouts(method: NucleiReadout, baseline: NucleiReadout, truth: int | None) -> None:
    """The readouts as metrics: the numbers ``medlim nuclei segment`` prints for the same image."""
    columns = st.columns(4)
    columns[0].metric("Nuclei (thesis method)", method.count, help="Instances after splitting clumps.")
    columns[1].metric(
        "Clumps split", method.clumps_split,
        help=f"Clumps cut into two or more nuclei; {method.clump_candidates} region(s) were examined as clump "
        "candidates (area ≥ clump area factor × mean area, or solidity below the limit).",
    )
    columns[2].metric(
        "Mean nucleus area (µm²)" if method.mean_area_um2 is not None else "Mean nucleus area (px²)",
        f"{method.mean_area_um2:,.1f}" if method.mean_area_um2 is not None else f"{method.mean_area_px2:,.0f}",
        help=f"Mean single-nucleus area estimated from the isolated nuclei (or the value given under Advanced): "
        f"{method.mean_area_px2:,.0f} px².",
    )
    columns[3].metric(
        "Nuclei (watershed baseline)", baseline.count, help="Marker-controlled watershed, thesis §3.1.3."
    )
    note = f" Phantom ground truth: **{truth}** nuclei." if truth is not None else ""
    st.caption(
        f"{method.from_split_clumps} of {method.count} nuclei came from split clumps; {method.cuts} dividing "
        f"curve(s). Time: thesis method {method.seconds:.2f} s, watershed {baseline.seconds:.2f} s.{note}"
    )


def _show(name: str, data: bytes, sample: Path | None) -> None:
    record = None
    with show_medlim_errors(subject=name):
        record = read_image_cached(data, name)
    if record is None:
        return
    pixels = record.pixels
    warning = ui.dapi_warning(pixels)
    if warning:
        st.warning(warning, icon=":material/warning:")
    if pixels.ndim == 2:
        st.caption("Grey image: its values are used as the DAPI channel.")
    spacing = shared.spacing_field(key=f"{KEY}_pixel_size", found=shared.file_spacing_cached(data))
    # Results first, the parameters below them (a container keeps that order on screen).
    results = st.container()
    params = _advanced_parameters(results)
    if params is None:
        return
    with results:
        _show_results(name, data, pixels, params, sample, spacing)


def _show_results(name: str, data: bytes, pixels: np.ndarray, params: NucleiParams, sample: Path | None,
                  spacing: MicronSpacing) -> None:
    thesis = baseline = None
    with show_medlim_errors(subject=name):
        thesis = ui.segment_cached(pixels, data, method="thesis", params=params, name=name)
        baseline = ui.segment_cached(pixels, data, method="watershed", name=name)
    if thesis is None or baseline is None:
        return
    if thesis.count == 0:
        st.info("No nuclei found: is the image a DAPI fluorescence image with nuclei brighter than the background?")
    table, baseline_table = ui.nucleus_table_cached(thesis, spacing), ui.nucleus_table_cached(baseline, spacing)
    _readouts(nuclei_readout(thesis, table), nuclei_readout(baseline, baseline_table),
              ui.truth_count(sample) if sample is not None else None)

    opacity, grey, curves, numbers = _display_controls()
    rows = table.rows
    left, right = st.columns(2)
    with left:
        figure, factor = _overlay(pixels, thesis, opacity=opacity, grey=grey, curves=curves, rows=rows,
                                  numbers=numbers, title=f"Thesis method: {thesis.count} nuclei")
        st.plotly_chart(figure, key=f"{KEY}_thesis_figure", config={"scrollZoom": True, "displaylogo": False})
    with right:
        figure, _ = _overlay(
            pixels, baseline, opacity=opacity, grey=grey, curves=False, rows=baseline_table.rows,
            title=f"Watershed baseline: {baseline.count} nuclei",
        )
        st.plotly_chart(figure, key=f"{KEY}_watershed_figure", config={"scrollZoom": True, "displaylogo": False})
    height, width = pixels.shape[:2]
    shrink = f" Shown at 1/{factor} resolution; measurements use every pixel." if factor > 1 else ""
    st.caption(
        f"{width} × {height} px. Each nucleus has its own colour (touching nuclei always differ). White lines: "
        f"the dividing curves the method drew through clumps — solid where it followed the dark valley between "
        f"nuclei, dashed where it found none and cut straight. Hover over a nucleus for its number and area; "
        f"drag to zoom (each panel separately), double-click to reset.{shrink}"
    )

    _measurements_and_downloads(name, data, thesis, table)


def _measurements_and_downloads(name: str, data: bytes, thesis: NucleiResult, table: NucleusTable) -> None:
    """The per-nucleus table, its histograms and the downloads (label image, CSV, QuPath GeoJSON)."""
    st.subheader("Per-nucleus measurements (thesis method)")
    shared.object_table_view(table.objects, key=f"{KEY}_table")
    if len(table):
        st.plotly_chart(shared.object_histograms(table.objects, ui.histogram_columns(table.spacing), objects="Nuclei"),
                        key=f"{KEY}_histograms", width="stretch")
    stem = Path(file_label(name, data=data)).stem  # downloads carry a pseudonymous label, not the file's name
    with show_medlim_errors(subject=name) as outcome:
        png = ui.labels_png(thesis.labels, name=name)
    if not outcome.failed:
        st.download_button(
            "Download label image (16-bit PNG)", png, file_name=f"{stem}_labels.png", mime="image/png",
            key=f"{KEY}_download_labels",
            help="uint16 instance labels at the input size, 0 = background: the file `medlim nuclei segment` writes.",
        )
    shared.exports_downloads(ui.exports_cached(thesis, table), stem=stem, key=f"{KEY}_download", objects="Nuclei")


def _slide_job(path: Path) -> None:
    """A whole slide: the pixel size to run it with, then ``medlim nuclei segment`` (thesis method) as a job."""
    spacing = shared.spacing_field(key=f"{KEY}_pixel_size", found=slide_jobs.slide_spacing(path))
    stated = [] if spacing.source != "user" else ["--pixel-spacing-um", repr(spacing.um)]
    slide_jobs.slide_job_panel("nuclei", path, key=JOB_KEY, render_done=_show_slide_run,
                               options=lambda: ["--method", "thesis", *stated])


def _show_slide_run(run: SlideRun) -> None:
    """A finished whole-slide job: the command's count, the per-nucleus table and histograms from the CSV it wrote,
    and its CSV and GeoJSON as downloads."""
    row = run.row
    a, b, c = st.columns(3)
    a.metric("Nuclei", f"{row['count']}", help="Nuclei of the thesis method in the slide region.")
    b.metric("From split clumps", f"{row['from_split_clumps']}", help="Nuclei cut out of a clump by a dividing curve.")
    c.metric("Mean area (px²)", f"{row['mean_area_px2']:.1f}")
    st.caption(f"{row['tiles']} tiles analysed, {row['skipped_tiles']} without tissue skipped; {row['seconds']:.0f} s. "
               "Open the GeoJSON in QuPath over the slide to see the nuclei.")
    for warning in row.get("warnings") or ():
        st.caption(str(warning))
    st.subheader("Per-nucleus measurements (thesis method)")
    shared.object_table_view(run.table, key=f"{KEY}_slide_table")
    if len(run.table):
        st.plotly_chart(shared.object_histograms(run.table, ui.histogram_columns(run.table.spacing), objects="Nuclei"),
                        key=f"{KEY}_slide_histograms", width="stretch")
    slide_jobs.slide_run_downloads(run, key=f"{KEY}_slide", objects="Nuclei")


ensure_app_shell()
st.title("Clumped nuclei")
st.caption(
    "Fluorescence (DAPI) nuclei segmentation that splits touching and overlapping nuclei along the curves "
    "between them (thesis §3.1), beside a marker-controlled watershed. No training data or model is used. "
    + RESEARCH_USE_NOTICE
)
_presets_panel()
source = _choose_source()
slide_path = slide_jobs.server_slide_input(key=f"{KEY}_slide_path")
if slide_path is None and source is not None and source[2] is None:
    slide_path = slide_jobs.uploaded_slide(source[0], source[1])
if slide_path is not None:
    _slide_job(slide_path)
elif source is None:
    if not slide_jobs.follow_slide_job("nuclei", key=JOB_KEY, render_done=_show_slide_run):
        st.info("Upload a fluorescence image or choose a bundled sample to segment its nuclei.")
else:
    name, data, sample = source
    with st.container(border=True):
        st.subheader(name)
        _show(name, data, sample)
