"""Liver steatosis page, thesis §3.2 (Fig. 3.5).

A pathologist uploads an H&E image (or opens a bundled synthetic sample); the
Mask R-CNN finds droplets once (cached for the session); the cutoff and score
sliders then only re-apply cutoffs to the cached droplet table, so the
overlay, counts, steatosis percentage with its grade bands and the morphology
histograms follow immediately. Cutoffs can be saved and loaded as named
presets (built in: ``default``, validated for the steatosis % of tissue, and
``thesis``); the report names a preset only while the cutoffs are its values.
The per-droplet CSV, the GeoJSON polygons (QuPath) and the report download
from here. All numbers come from
:class:`medlim.microscopy.steatosis.report.SteatosisReport`, the report
``medlim steatosis segment`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from medlim.core.io.pseudonym import file_label
from medlim.core.paths import validate_name
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.analysis import SteatosisAnalysis
from medlim.microscopy.steatosis.droplets import BUILTIN_PRESETS, REFERENCES, Cutoffs
from medlim.microscopy.steatosis.export import droplet_csv, geojson_text
from medlim.microscopy.steatosis.report import SteatosisReport
from medlim.settings import get_settings
from medlim.ui import steatosis as ui
from medlim.ui.errors import show_medlim_errors
from medlim.ui.loaders import model_picker, read_image_cached
from medlim.ui.shell import ensure_app_shell

ensure_app_shell()

_SLIDERS = {"area": "steatosis_area", "perimeter": "steatosis_perimeter",
            "eccentricity": "steatosis_eccentricity", "min_score": "steatosis_min_score"}
_REFERENCE_KEY = "steatosis_reference"
_REFERENCE_LABELS = {"scored": "Mean of the droplets passing the score (medlim)",
                     "all-detections": "Mean of all detections (thesis)"}


def _set_sliders(cutoffs: Cutoffs) -> None:
    for name, value in ui.slider_values(cutoffs).items():
        st.session_state[_SLIDERS[name]] = value
    st.session_state[_SLIDERS["min_score"]] = cutoffs.min_score
    st.session_state[_REFERENCE_KEY] = cutoffs.reference


def _stored_presets(store: object) -> dict[str, Cutoffs]:
    """The user's saved presets (name → cutoffs); built-in names win over stored ones."""
    from medlim.core.store.presets import list_presets

    stored = {}
    for preset in list_presets(store, ui.PRESET_KIND):
        if preset.name not in BUILTIN_PRESETS:
            stored[preset.name] = Cutoffs.from_dict(dict(preset.params))
    return stored


def _presets_panel() -> tuple[str, dict[str, Cutoffs]]:
    """Preset picker and saver in the sidebar; ``(picked name, every preset by name)``."""
    from medlim.core.store.presets import save_preset

    presets: dict[str, Cutoffs] = dict(BUILTIN_PRESETS)
    store = None
    with show_medlim_errors(subject="Presets"):
        store = ui.open_store_cached(get_settings().database_url)
        presets.update(_stored_presets(store))
    pending = st.session_state.pop("steatosis_preset_saved", None)
    if pending in presets:
        # A preset was just saved from the current sliders: select it, keep the sliders.
        st.session_state["steatosis_preset"] = pending
        st.session_state["steatosis_preset_applied"] = pending
    with st.sidebar:
        st.subheader("Cutoff presets")
        chosen = st.selectbox("Preset", list(presets), key="steatosis_preset",
                              help="default: validated for the steatosis % of tissue (no feature limit, every "
                              "detection on tissue); thesis: the thesis's cutoffs × the mean of all detections.")
        if pending in presets:
            st.success(f"Saved preset “{pending}”.", icon=":material/check:")
        if st.session_state.get("steatosis_preset_applied") != chosen:
            _set_sliders(presets[chosen])
            st.session_state["steatosis_preset_applied"] = chosen
        name = st.text_input("Save current cutoffs as", key="steatosis_preset_name", placeholder="e.g. donor-liver")
        if st.button("Save preset", key="steatosis_preset_save", disabled=store is None or not name.strip()):
            with show_medlim_errors(subject="Save preset") as outcome:
                name = validate_name(name, what="preset name")
                if name in BUILTIN_PRESETS:
                    raise ParameterError(f"“{name}” is a built-in preset; choose another preset name.")
                save_preset(store, kind=ui.PRESET_KIND, name=name, params=_current_cutoffs().as_dict())
            if not outcome.failed:
                st.session_state["steatosis_preset_saved"] = name
                st.rerun()
    return chosen, presets


def _current_cutoffs() -> Cutoffs:
    state = st.session_state
    values = {name: tuple(state[_SLIDERS[name]]) for name in ui.SLIDER_RANGES}
    return ui.cutoffs_from_sliders(values, min_score=float(state[_SLIDERS["min_score"]]),
                                   reference=state[_REFERENCE_KEY])


def _sliders() -> Cutoffs:
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
    right.slider("Minimum score", 0.0, 1.0, step=0.01, key=_SLIDERS["min_score"],
                 help="Keep droplets the network scored at least this (it reports nothing below 0.05).")
    return _current_cutoffs()


def _set_defaults(cutoffs: Cutoffs) -> None:
    """Give the widgets their first values (once per session)."""
    for name, value in ui.slider_values(cutoffs).items():
        st.session_state.setdefault(_SLIDERS[name], value)
    st.session_state.setdefault(_SLIDERS["min_score"], cutoffs.min_score)
    st.session_state.setdefault(_REFERENCE_KEY, cutoffs.reference)


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
               "and a minimum score keep the ones you accept — the default preset keeps every detection on tissue, "
               "the thesis preset applies the thesis's cutoffs. Research use only — not for diagnosis.")
    model = None
    with show_medlim_errors(subject="Steatosis model"):
        picked = model_picker("steatosis-instance-segmentation", key="steatosis_model", label="Model")
        if picked is not None:  # loaded from the registry (shipped or yours) that holds it
            model = ui.load_model_cached(f"{picked.entry.name}:{picked.entry.version}", str(picked.directory))
    if model is None:
        st.warning("No steatosis weights are registered. Train them with `medlim train steatosis`.",
                   icon=":material/warning:")
        return
    preset, presets = _presets_panel()
    source = _source()
    if source is None:
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
        analysis = ui.analyse_cached(pixels, data, model)
    if analysis is None:
        return
    cutoffs = _sliders()
    _show_report(name, data, pixels, analysis, analysis.report(cutoffs, presets=presets, chosen=preset))


def _show_report(name: str, data: bytes, pixels: np.ndarray, analysis: SteatosisAnalysis,
                 report: SteatosisReport) -> None:
    """Metrics, overlay, histograms and downloads of one :class:`SteatosisReport`."""
    a, b, c, d = st.columns(4)
    a.metric("Droplets kept", f"{report.kept} / {report.detected}",
             help="Droplets inside the cutoffs / droplets the network found on tissue.")
    b.metric("Steatosis (% of tissue)", f"{100 * report.steatosis_fraction:.1f} %",
             help="Kept droplet area ÷ tissue area (the section without glass, lumina and tears).")
    c.metric("NASH-CRN grade", report.nash_crn_band, help="S0 < 5 %, S1 5–33 %, S2 34–66 %, S3 > 66 %.")
    d.metric("Donor assessment", report.donor_band, help="Donor-liver bands < 5 / 5–29 / ≥ 30 % of tissue.")
    st.image(ui.overlay_image(pixels, analysis.labels, report.kept_flags),
             caption="Kept droplets in blue; discarded droplets outlined and boxed in vermillion (thesis Fig. 3.5).",
             width="stretch")
    st.plotly_chart(ui.histogram_figure(analysis, report), width="stretch", key="steatosis_histograms")
    label = file_label(name, data=data)  # downloads carry this, not the file's name
    st.markdown(f"**Report** — preset **{report.preset}**; {_cutoff_text(report.cutoffs)}")
    stem = Path(label).stem
    left, middle, right = st.columns(3)
    left.download_button("Droplets (CSV)", droplet_csv(analysis.table, report.kept_flags),
                         file_name=f"{stem}_droplets.csv", mime="text/csv", key="steatosis_csv")
    middle.download_button("Polygons (GeoJSON, QuPath)",
                           geojson_text(analysis.labels, analysis.table, report.kept_flags),
                           file_name=f"{stem}_droplets.geojson", mime="application/geo+json", key="steatosis_geojson")
    right.download_button("Report (JSON)", json.dumps({"file": label, **report.to_json()}, indent=1),
                          file_name=f"{stem}_steatosis.json", mime="application/json", key="steatosis_report")


def _cutoff_text(cutoffs: Cutoffs) -> str:
    """The cutoffs in words, e.g. ``cutoffs area 0.001–6, … × mean of all detections (thesis); score ≥ 0.5.``"""
    parts = []
    for name in ui.SLIDER_RANGES:
        low, high = getattr(cutoffs, name)
        parts.append(f"{name} {low:g}–{high:g}" if high != float("inf") else f"{name} ≥ {low:g} (no upper limit)")
    return f"cutoffs {', '.join(parts)} × {_REFERENCE_LABELS[cutoffs.reference].lower()}; score ≥ {cutoffs.min_score:g}."


main()
