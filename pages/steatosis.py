"""Liver steatosis page, thesis §3.2 (Fig. 3.5).

A pathologist uploads an H&E image (or opens a bundled synthetic sample); the
Mask R-CNN finds droplets once (cached for the session); the cutoff and score
sliders then only re-apply cutoffs to the cached droplet table, so the
overlay, counts, steatosis percentage with its grade bands and the morphology
histograms follow immediately. Cutoffs can be saved and loaded as named
presets; the per-droplet CSV and the GeoJSON polygons (QuPath) download from
here. All analysis comes from :mod:`medlim.microscopy.steatosis`.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from medlim.core.io.pseudonym import file_label
from medlim.core.paths import validate_name

from medlim.microscopy.steatosis.droplets import Cutoffs
from medlim.microscopy.steatosis.export import droplet_csv, geojson_text
from medlim.settings import get_settings
from medlim.ui import steatosis as ui
from medlim.ui.errors import show_medlim_errors
from medlim.ui.loaders import read_image_cached
from medlim.ui.shell import ensure_app_shell

ensure_app_shell()

THESIS = "Thesis defaults"
_SLIDERS = {"area": "steatosis_area", "perimeter": "steatosis_perimeter",
            "eccentricity": "steatosis_eccentricity", "min_score": "steatosis_min_score"}


def _set_sliders(cutoffs: Cutoffs) -> None:
    for name, key in _SLIDERS.items():
        st.session_state[key] = getattr(cutoffs, name)


def _presets_panel() -> str:
    """Preset picker and saver in the sidebar; returns the name of the preset in use."""
    from medlim.core.store.presets import get_preset, list_presets, save_preset

    settings = get_settings()
    names = [THESIS]
    store = None
    with show_medlim_errors(subject="Presets"):
        store = ui.open_store_cached(settings.database_url)
        names += [p.name for p in list_presets(store, ui.PRESET_KIND)]
    pending = st.session_state.pop("steatosis_preset_saved", None)
    if pending in names:
        # A preset was just saved from the current sliders: select it, keep the sliders.
        st.session_state["steatosis_preset"] = pending
        st.session_state["steatosis_preset_applied"] = pending
    with st.sidebar:
        st.subheader("Cutoff presets")
        chosen = st.selectbox("Preset", names, key="steatosis_preset")
        if pending in names:
            st.success(f"Saved preset “{pending}”.", icon=":material/check:")
        if st.session_state.get("steatosis_preset_applied") != chosen:
            if chosen == THESIS:
                _set_sliders(Cutoffs())
            elif store is not None:
                with show_medlim_errors(subject=f"Preset {chosen}"):
                    stored = get_preset(store, ui.PRESET_KIND, chosen)
                    if stored is not None:
                        _set_sliders(Cutoffs.from_dict(dict(stored.params)))
            st.session_state["steatosis_preset_applied"] = chosen
        name = st.text_input("Save current cutoffs as", key="steatosis_preset_name", placeholder="e.g. donor-liver")
        if st.button("Save preset", key="steatosis_preset_save", disabled=store is None or not name.strip()):
            with show_medlim_errors(subject="Save preset") as outcome:
                name = validate_name(name, what="preset name")
                save_preset(store, kind=ui.PRESET_KIND, name=name, params=_current_cutoffs().as_dict())
            if not outcome.failed:
                st.session_state["steatosis_preset_saved"] = name
                st.rerun()
    return chosen


def _current_cutoffs() -> Cutoffs:
    state = st.session_state
    return Cutoffs(area=tuple(state[_SLIDERS["area"]]), perimeter=tuple(state[_SLIDERS["perimeter"]]),
                   eccentricity=tuple(state[_SLIDERS["eccentricity"]]), min_score=float(state[_SLIDERS["min_score"]]))


def _sliders() -> Cutoffs:
    defaults = Cutoffs()
    for name, key in _SLIDERS.items():
        st.session_state.setdefault(key, getattr(defaults, name))
    st.markdown("**Cutoffs** (× the mean over detected droplets)")
    left, right = st.columns(2)
    left.slider("Area", 0.0, 10.0, step=0.001, key=_SLIDERS["area"], format="%.3f")
    left.slider("Perimeter", 0.0, 8.0, step=0.05, key=_SLIDERS["perimeter"])
    right.slider("Eccentricity", 0.0, 3.0, step=0.05, key=_SLIDERS["eccentricity"])
    right.slider("Minimum score", 0.0, 1.0, step=0.01, key=_SLIDERS["min_score"])
    return _current_cutoffs()


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
    st.caption("Mask R-CNN finds fat droplets in H&E tissue; cutoffs relative to the mean droplet keep the ones "
               "you accept (thesis §3.2). Research use only — not for diagnosis.")
    settings = get_settings()
    model = None
    with show_medlim_errors(subject="Steatosis model"):
        model = ui.load_model_cached("maskrcnn-steatosis", str(settings.weights_dir))
    if model is None:
        st.warning("No steatosis weights are registered. Train them with `medlim train steatosis`.",
                   icon=":material/warning:")
        return
    preset = _presets_panel()
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
    result = analysis.cut(cutoffs)
    values = ui.readout(result)
    a, b, c, d = st.columns(4)
    a.metric("Droplets kept", f"{values['kept']} / {values['detected']}")
    b.metric("Steatosis (% of tissue)", f"{values['steatosis_percent']:.1f} %")
    c.metric("NASH-CRN grade", values["nash_crn"])
    d.metric("Donor assessment", values["donor"])
    st.image(ui.overlay_image(pixels, analysis.labels, result.kept),
             caption="Kept droplets in colour; discarded droplets outlined and boxed in black (thesis Fig. 3.5).",
             width="stretch")
    st.plotly_chart(ui.histogram_figure(analysis, result, cutoffs), width="stretch",
                    key="steatosis_histograms")
    label = file_label(name, data=data)  # downloads carry this, not the file's name
    report = {"file": label, "model": analysis.model, "preset": preset, "cutoffs": cutoffs.as_dict(), **values,
              "detection_seconds": round(analysis.seconds, 2)}
    st.markdown(f"**Report** — preset **{preset}**; cutoffs area {cutoffs.area[0]:g}–{cutoffs.area[1]:g}, "
                f"perimeter {cutoffs.perimeter[0]:g}–{cutoffs.perimeter[1]:g}, eccentricity "
                f"{cutoffs.eccentricity[0]:g}–{cutoffs.eccentricity[1]:g} × mean; score ≥ {cutoffs.min_score:g}.")
    stem = Path(label).stem
    left, middle, right = st.columns(3)
    left.download_button("Droplets (CSV)", droplet_csv(analysis.table, result.kept), file_name=f"{stem}_droplets.csv",
                         mime="text/csv", key="steatosis_csv")
    middle.download_button("Polygons (GeoJSON, QuPath)", geojson_text(analysis.labels, analysis.table, result.kept),
                           file_name=f"{stem}_droplets.geojson", mime="application/geo+json", key="steatosis_geojson")
    right.download_button("Report (JSON)", json.dumps(report, indent=1), file_name=f"{stem}_steatosis.json",
                          mime="application/json", key="steatosis_report")


main()
