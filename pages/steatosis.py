"""Liver steatosis page, thesis §3.2 (Fig. 3.5).

A pathologist uploads an H&E image (or opens a bundled synthetic sample); the
Mask R-CNN finds droplets once (cached for the session); the cutoff and score
sliders then only re-apply cutoffs to the cached droplet table, so the
overlay, counts, steatosis percentage with its grade bands and the morphology
histograms follow immediately. Cutoffs can be saved and loaded as named
presets (built in: ``default``, validated for the steatosis % of tissue, and
``thesis``); the report names a preset only while the cutoffs are its values.
With a pixel size (from the TIFF / OME-TIFF file, or the "Pixel size (µm)"
field) areas are given in µm² too and droplets can be kept by absolute area
(µm²) beside the relative cutoffs. The per-droplet CSV and the QuPath GeoJSON
(outlines with holes) download under the names ``medlim steatosis segment
--csv --geojson`` writes, with the same content; the report downloads too. All numbers come from
:class:`medlim.microscopy.steatosis.report.SteatosisReport`, the report
``medlim steatosis segment`` prints.

A whole slide (an SVS / NDPI / OME / tiled TIFF upload, kept inside the data
roots, or a slide already on the server) is not analysed in the page: "Analyse
the slide" queues ``medlim steatosis segment SLIDE --csv --geojson`` with the
current cutoffs as a ``steatosis.segment`` job (:mod:`medlim.ui.slide_jobs`);
the page follows its tile progress and, once done, shows the numbers the
command printed, the per-droplet table and histograms of the CSV it wrote, and
that CSV and GeoJSON as downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from medlim.core.io.pseudonym import file_label
from medlim.core.model_catalogue import picker_caption
from medlim.microscopy.objects import MicronSpacing
from medlim.microscopy.slide_runs import SlideRun, steatosis_options
from medlim.microscopy.steatosis.analysis import SteatosisAnalysis
from medlim.microscopy.steatosis.droplets import BUILTIN_PRESETS, REFERENCES, Cutoffs
from medlim.microscopy.steatosis.report import SteatosisReport
from medlim.settings import get_settings
from medlim.ui import microscopy as shared
from medlim.ui import slide_jobs
from medlim.ui import steatosis as ui
from medlim.ui.errors import show_medlim_errors
from medlim.ui.loaders import model_picker, read_image_cached
from medlim.ui.shell import ensure_app_shell

ensure_app_shell()

_SLIDERS = {"area": "steatosis_area", "perimeter": "steatosis_perimeter",
            "eccentricity": "steatosis_eccentricity", "min_score": "steatosis_min_score",
            "crowded_min_score": "steatosis_crowded_min_score",
            "area_um2_low": "steatosis_area_um2_low", "area_um2_high": "steatosis_area_um2_high"}
_REFERENCE_KEY = "steatosis_reference"
#: The session key of the whole-slide job this page follows (:data:`medlim.ui.jobs.JOB_PAGES`).
JOB_KEY = "steatosis_job"
#: Help of the "Steatosis (% of tissue)" metric (single image and whole slide).
PERCENT_HELP = "Kept droplet area ÷ tissue area (the section without glass, vessel and sinusoid lumina, and tears)."
_REFERENCE_LABELS = {"scored": "Mean of the droplets passing the score (medlim)",
                     "all-detections": "Mean of all detections (thesis)"}


def _set_sliders(cutoffs: Cutoffs) -> None:
    for name, value in ui.slider_values(cutoffs).items():
        st.session_state[_SLIDERS[name]] = value
    st.session_state[_SLIDERS["min_score"]] = cutoffs.min_score
    st.session_state[_SLIDERS["crowded_min_score"]] = ui.crowded_slider_value(cutoffs)
    st.session_state[_REFERENCE_KEY] = cutoffs.reference
    for key, value in ui.absolute_area_values(cutoffs).items():
        st.session_state[_SLIDERS[key]] = value


def _presets_panel() -> tuple[str, dict[str, Cutoffs]]:
    """Preset picker and saver in the sidebar (:func:`medlim.ui.microscopy.presets_panel`);
    ``(picked name, every preset by name)``. Presets saved before absolute areas existed load unchanged."""
    chosen, presets = shared.presets_panel(
        kind=ui.PRESET_KIND, builtin={name: c.as_dict() for name, c in BUILTIN_PRESETS.items()}, key="steatosis",
        current=lambda: _current_cutoffs().as_dict(), apply=lambda params: _set_sliders(Cutoffs.from_dict(dict(params))),
        read=lambda params: Cutoffs.from_dict(dict(params)).as_dict(), title="Cutoff presets",
        save_label="Save current cutoffs as",
        help_text="default: validated for the steatosis % of tissue (no feature limit, score ≥ 0.2, ≥ 0.02 in "
        "crowded fat); "
        "thesis: the thesis's cutoffs × the mean of all detections.")
    return chosen, {name: Cutoffs.from_dict(dict(params)) for name, params in presets.items()}


def _current_cutoffs() -> Cutoffs:
    state = st.session_state
    values = {name: tuple(state[_SLIDERS[name]]) for name in ui.SLIDER_RANGES}
    return ui.cutoffs_from_sliders(values, min_score=float(state[_SLIDERS["min_score"]]),
                                   crowded_min_score=float(state[_SLIDERS["crowded_min_score"]]),
                                   reference=state[_REFERENCE_KEY],
                                   area_um2=(float(state[_SLIDERS["area_um2_low"]]),
                                             float(state[_SLIDERS["area_um2_high"]])))


def _sliders(spacing: MicronSpacing) -> Cutoffs:
    _set_defaults(BUILTIN_PRESETS["default"])
    st.markdown("**Cutoffs** (× the reference droplet; a slider at its right end sets no upper limit)")
    st.radio("Reference droplet", REFERENCES, key=_REFERENCE_KEY, horizontal=True,
             format_func=_REFERENCE_LABELS.__getitem__,
             help="What the cutoffs multiply. The thesis uses the mean of all detections, which many faint small "
             "detections pull down; medlim uses the mean of the droplets that pass the minimum score.")
    left, right = st.columns(2)
    for column, name in ((left, "area"), (left, "perimeter"), (right, "eccentricity")):
        low, high, step = ui.SLIDER_RANGES[name]
        column.slider(name.capitalize(), low, high, step=step, key=_SLIDERS[name],
                      format="%.3f" if name == "area" else "%.2f",
                      help=f"Keep droplets whose {name} lies between the two values × the reference droplet's; "
                      f"right end ({high:g}) = no upper limit.")
    right.slider("Minimum score (isolated droplets)", 0.0, 1.0, step=0.01, key=_SLIDERS["min_score"],
                 help="Keep a droplet with little fat around it when the network scored it at least this. Droplets "
                 "packed among others need only the score of the next slider; to discard everything, move both to "
                 "the right. The network reports nothing below 0.02.")
    right.slider("Minimum score in crowded fat", 0.0, 1.0, step=0.01, key=_SLIDERS["crowded_min_score"],
                 help="Where droplets pack together the network's scores fall although the droplets are real: a "
                 "droplet surrounded by fat (other droplets cover ≥ 30 % of the 191 px square around it) needs only "
                 "this score, between 10 and 30 % a score in between (medlim's addition). At or above the minimum "
                 "score: one minimum score everywhere, as in the thesis.")
    low, high = st.columns(2)
    unknown = "Needs the pixel size (the file's, or the “Pixel size (µm)” field)." if not spacing.known else ""
    low.number_input("Absolute area at least (µm²)", min_value=0.0, step=1.0, key=_SLIDERS["area_um2_low"],
                     disabled=not spacing.known, help=unknown or "Keep droplets at least this large (0 = no limit).")
    high.number_input("Absolute area at most (µm², 0 = no limit)", min_value=0.0, step=10.0,
                      key=_SLIDERS["area_um2_high"], disabled=not spacing.known,
                      help=unknown or "Keep droplets at most this large, beside the relative cutoffs.")
    return _current_cutoffs()


def _set_defaults(cutoffs: Cutoffs) -> None:
    """Give the widgets their first values (once per session)."""
    for name, value in ui.slider_values(cutoffs).items():
        st.session_state.setdefault(_SLIDERS[name], value)
    st.session_state.setdefault(_SLIDERS["min_score"], cutoffs.min_score)
    st.session_state.setdefault(_SLIDERS["crowded_min_score"], ui.crowded_slider_value(cutoffs))
    st.session_state.setdefault(_REFERENCE_KEY, cutoffs.reference)
    for key, value in ui.absolute_area_values(cutoffs).items():
        st.session_state.setdefault(_SLIDERS[key], value)


def _source() -> tuple[str, bytes] | None:
    upload_column, sample_column = st.columns([3, 2])
    uploaded = upload_column.file_uploader("Upload an H&E image (PNG, TIFF or JPEG)", key="steatosis_upload")
    if uploaded is not None:
        return uploaded.name, uploaded.getvalue()
    samples = ui.steatosis_samples(get_settings().samples_dir)
    if not samples:
        sample_column.caption("No bundled H&E samples found.")
        return None
    labels = {p.name: p for p in samples}
    chosen = sample_column.selectbox("…or open a bundled sample (synthetic)", list(labels), index=None,
                                     key="steatosis_sample")
    return None if chosen is None else (chosen, labels[chosen].read_bytes())


def main() -> None:
    st.title("Liver steatosis")
    st.caption("Mask R-CNN finds fat droplets in H&E tissue (thesis §3.2); cutoffs relative to a reference droplet "
               "and a minimum score keep the ones you accept — the default preset keeps every detection on tissue "
               "scoring at least 0.2, or 0.02 among packed droplets (crowded fat, where the network's scores fall); "
               "the thesis preset applies the thesis's cutoffs. Research use only — not for diagnosis.")
    model = picked = None
    with show_medlim_errors(subject="Steatosis model"):
        picked = model_picker("steatosis-instance-segmentation", key="steatosis_model", label="Model")
        if picked is not None:  # loaded from the registry (shipped or yours) that holds it
            st.caption(picker_caption(picked.entry, source=picked.source))
            model = ui.load_model_cached(f"{picked.entry.name}:{picked.entry.version}", str(picked.directory))
    if model is None:
        st.warning("No steatosis weights are registered. Train them with `medlim train steatosis`.",
                   icon=":material/warning:")
        return
    preset, presets = _presets_panel()
    source = _source()
    slide_path = slide_jobs.server_slide_input(key="steatosis_slide_path")
    if slide_path is None and source is not None:
        slide_path = slide_jobs.uploaded_slide(*source)
    if slide_path is not None:
        _slide_job(slide_path, weights=f"{picked.entry.name}@{picked.entry.version}" if picked else None)
        return
    if source is None:
        if not slide_jobs.follow_slide_job("steatosis", key=JOB_KEY, render_done=_show_slide_run):
            st.info("Upload an image or pick a sample to start.", icon=":material/upload:")
        return
    name, data = source
    analysis = None
    with show_medlim_errors(subject=name):
        record = read_image_cached(data, name)
        pixels = record.pixels
        if pixels.ndim != 3:
            st.error(f"{name} is a grey image; H&E analysis needs RGB.", icon=":material/error:")
            return
        spacing = shared.spacing_field(key="steatosis_pixel_size", found=shared.file_spacing_cached(data))
        analysis = ui.analyse_cached(pixels, data, model, spacing)
    if analysis is None:
        return
    analysis = analysis.with_spacing(spacing)
    cutoffs = _sliders(spacing)
    report = None
    with show_medlim_errors(subject="Cutoffs"):
        report = analysis.report(cutoffs, presets=presets, chosen=preset)
    if report is not None:
        _show_report(name, data, pixels, analysis, report)


def _slide_job(path: Path, *, weights: str | None) -> None:
    """A whole slide: the cutoffs and pixel size to run it with, then ``medlim steatosis segment`` as a job."""
    spacing = shared.spacing_field(key="steatosis_pixel_size", found=slide_jobs.slide_spacing(path))
    cutoffs = _sliders(spacing)
    stated = spacing.um if spacing.source == "user" else None
    slide_jobs.slide_job_panel(
        "steatosis", path, key=JOB_KEY, render_done=_show_slide_run,
        options=lambda: steatosis_options(cutoffs, weights=weights, pixel_spacing_um=stated))


def _show_slide_run(run: SlideRun) -> None:
    """A finished whole-slide job: the command's numbers, the per-droplet table and histograms from the CSV it
    wrote, and its CSV and GeoJSON as downloads."""
    row = run.row
    a, b, c, d = st.columns(4)
    a.metric("Droplets kept", f"{row['kept']} / {row['detected']}",
             help="Droplets inside the cutoffs / droplets the network found on tissue.")
    b.metric("Steatosis (% of tissue)", f"{100 * row['steatosis_fraction']:.1f} %",
             help=PERCENT_HELP)
    c.metric("NASH-CRN grade", row["nash_crn_band"], help="S0 < 5 %, S1 5–33 %, S2 34–66 %, S3 > 66 %.")
    d.metric("Donor assessment", row["donor_band"], help="Donor-liver bands < 5 / 5–29 / ≥ 30 % of tissue.")
    for warning in row.get("warnings") or ():
        st.caption(str(warning))
    st.caption(f"Preset {row['preset']}; {row['seconds']:.0f} s. Open the GeoJSON in QuPath over the slide to see "
               "the droplets.")
    table = run.table
    if len(table):
        kept = np.asarray([bool(r["kept"]) for r in table.rows])
        unit = ("um2", "um") if table.spacing.known else ("px2", "px")
        columns = [f"area_{unit[0]}", f"perimeter_{unit[1]}", "eccentricity"]
        st.plotly_chart(shared.object_histograms(
            table, columns, objects="Droplets",
            groups=(("kept", f"rgb{ui.KEPT_RGB}", kept), ("discarded", f"rgb{ui.DISCARDED_RGB}", ~kept))),
            width="stretch", key="steatosis_slide_histograms")
    st.markdown("**Per-droplet table**")
    shared.object_table_view(table, key="steatosis_slide_table")
    slide_jobs.slide_run_downloads(run, key="steatosis_slide", objects="Droplets")


def _show_report(name: str, data: bytes, pixels: np.ndarray | None, analysis: SteatosisAnalysis,
                 report: SteatosisReport) -> None:
    """Metrics, overlay, histograms and downloads of one :class:`SteatosisReport`."""
    for warning in analysis.warnings:  # the image looks unlike the training images (issue 13); the pixel-size
        st.warning(warning, icon=":material/warning:")  # note among report.warnings is shown by its field
    a, b, c, d = st.columns(4)
    a.metric("Droplets kept", f"{report.kept} / {report.detected}",
             help="Droplets inside the cutoffs / droplets the network found on tissue.")
    b.metric("Steatosis (% of tissue)", f"{100 * report.steatosis_fraction:.1f} %",
             help=PERCENT_HELP)
    c.metric("NASH-CRN grade", report.nash_crn_band, help="S0 < 5 %, S1 5–33 %, S2 34–66 %, S3 > 66 %.")
    d.metric("Donor assessment", report.donor_band, help="Donor-liver bands < 5 / 5–29 / ≥ 30 % of tissue.")
    if report.unlike_training is not None:
        check = report.unlike_training.to_dict()
        st.caption(f"Training-data check: score {check['score']:.2f}, limit {check['threshold']:.2f} — "
                   + ("**unlike the training images**" if check["flagged"] else "like the training images"))
    if report.pixel_spacing_um is not None:
        st.caption(f"Kept droplets: {report.kept_area_px2 * report.pixel_spacing_um ** 2:,.0f} µm² of "
                   f"{report.tissue_area_px2 * report.pixel_spacing_um ** 2:,.0f} µm² tissue.")
    if analysis.model_spacing_um is not None:  # the command line's model_spacing_um
        st.caption(f"Droplets were found with the image resized to the weights' {analysis.model_spacing_um:g} µm per "
                   "pixel, and measured on the image's own pixels.")
    if pixels is not None and analysis.labels is not None:
        st.image(ui.overlay_image(pixels, analysis.labels, report.kept_flags),
                 caption="Kept droplets in blue; discarded droplets outlined and boxed in vermillion (thesis Fig. 3.5).",
                 width="stretch")
    else:
        st.caption("Whole slide: open the GeoJSON in QuPath over the slide to see the droplets.")
    st.plotly_chart(ui.histogram_figure(analysis, report), width="stretch", key="steatosis_histograms")
    label = file_label(name, data=data)  # downloads carry this, not the file's name
    st.markdown(f"**Report** — preset **{report.preset}**; {_cutoff_text(report.cutoffs)}")
    stem = Path(label).stem
    exports = ui.exports_cached(analysis, report)
    st.markdown("**Per-droplet table**")
    shared.object_table_view(exports.table, key="steatosis_table")
    shared.exports_downloads(exports, stem=stem, key="steatosis", objects="Droplets")
    st.download_button("Report (JSON)", json.dumps({"file": label, **report.to_json()}, indent=1),
                       file_name=f"{stem}_steatosis.json", mime="application/json", key="steatosis_report")


def _cutoff_text(cutoffs: Cutoffs) -> str:
    """The cutoffs in words, e.g. ``cutoffs area 0.001–6, … × mean of all detections (thesis); score ≥ 0.5.``"""
    parts = []
    for name in ui.SLIDER_RANGES:
        low, high = getattr(cutoffs, name)
        parts.append(f"{name} {low:g}–{high:g}" if high != float("inf") else f"{name} ≥ {low:g} (no upper limit)")
    absolute = ""
    if cutoffs.absolute:
        low, high = cutoffs.area_um2
        absolute = f"; area {low:g}–{high:g} µm²" if high != float("inf") else f"; area ≥ {low:g} µm²"
    crowded = "" if cutoffs.crowded_min_score is None else f" (≥ {cutoffs.crowded_min_score:g} in crowded fat)"
    return (f"cutoffs {', '.join(parts)} × {_REFERENCE_LABELS[cutoffs.reference].lower()}; "
            f"score ≥ {cutoffs.min_score:g}{crowded}{absolute}.")


main()
