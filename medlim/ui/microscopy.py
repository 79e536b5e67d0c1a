"""Widgets and figures both pathology pages share (nuclei and steatosis; issue 16, "Pathology").

* :func:`spacing_field` — the "Pixel size (µm)" field beside what the file
  states, returning the :class:`~medlim.microscopy.objects.MicronSpacing` the
  room's measurements use;
* :func:`object_table_view` — the per-object table with units in every title;
* :func:`object_histograms` — histograms of per-object columns (plotly), units
  on every axis, optional groups (kept / discarded) and bound lines;
* :func:`exports_downloads` — the CSV and QuPath GeoJSON downloads, under the
  names ``medlim nuclei|steatosis segment --csv --geojson`` writes;
* :func:`presets_panel` — named parameter presets in the sidebar: the built-in
  ones plus those saved in the store (:mod:`medlim.core.store.presets`).

Only widgets and figures: the numbers come from the rooms' typed results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from medlim.microscopy.objects import MicronSpacing, ObjectTable, column_title, resolve_spacing
from medlim.microscopy.qupath import ObjectExports

__all__ = ["spacing_field", "object_table_view", "object_histograms", "exports_downloads", "presets_panel",
           "file_spacing_cached"]


def file_spacing_cached(data: bytes) -> tuple[float, str] | None:
    """The pixel size a TIFF upload states (µm, where), kept per upload in this session."""
    import hashlib

    from medlim.core.io.slide import file_spacing_um

    key = ("microscopy_file_spacing", hashlib.sha256(data).hexdigest())
    if key not in st.session_state:
        st.session_state[key] = file_spacing_um(data)
    return st.session_state[key]


def spacing_field(*, key: str, found: tuple[float, str] | None) -> MicronSpacing:
    """A "Pixel size (µm)" field: 0 keeps the file's size (or none); a value overrides it.

    Args:
        key: the widget's session key.
        found: ``(µm, where)`` the file states, or ``None``.

    Returns:
        The spacing to measure with; a caption says where it came from, a warning when unknown.
    """
    stated = st.number_input(
        "Pixel size (µm)", min_value=0.0, max_value=1000.0, value=0.0, step=0.01, format="%.4f", key=key,
        help="The side of one pixel at the specimen. 0 uses the size the file states (TIFF / OME-TIFF "
        "metadata); with none, sizes stay in pixels.")
    spacing, notes = resolve_spacing(None if found is None else found[0], stated or None,
                                     file_detail=None if found is None else found[1])
    for note in notes:
        st.caption(note)
    if spacing.warning:  # a plain note, not an alarm: pixel units are still right
        st.info(spacing.warning, icon=":material/straighten:")
    elif spacing.source == "file":
        st.caption(f"Pixel size {spacing.um:.4g} µm, from the file ({spacing.detail}).")
    else:
        st.caption(f"Pixel size {spacing.um:.4g} µm, as you stated.")
    return spacing


def object_table_view(table: ObjectTable, *, key: str, height: int = 260) -> None:
    """The per-object table, one row per object, every column titled with its unit."""
    import pandas as pd

    frame = pd.DataFrame([dict(row) for row in table.rows], columns=list(table.columns))
    config: dict[str, Any] = {}
    for name, title in table.titles().items():
        if name == "class":
            config[name] = st.column_config.TextColumn(title)
        elif frame[name].dtype == bool:
            config[name] = st.column_config.CheckboxColumn(title)
        else:
            config[name] = st.column_config.NumberColumn(title, format="%.0f" if name == "id" else None)
    st.dataframe(frame, hide_index=True, height=height, key=key, column_config=config)


def object_histograms(
    table: ObjectTable,
    columns: Sequence[str],
    *,
    objects: str,
    groups: Sequence[tuple[str, str, np.ndarray]] = (),
    bounds: Mapping[str, Sequence[float]] | None = None,
    height: int = 320,
) -> go.Figure:
    """Histograms of per-object columns side by side, each x axis titled with its unit.

    Args:
        table: the per-object table.
        columns: the columns to plot (e.g. ``"area_um2"``, ``"perimeter_um"``, ``"eccentricity"``).
        objects: what is counted on the y axes (``"Nuclei"``, ``"Droplets"``).
        groups: ``(name, colour, bool[n])`` subsets drawn overlaid (none: one histogram of all).
        bounds: column → x positions of dashed black lines (cutoff bounds; non-finite and 0 skipped).
        height: figure height in px.
    """
    titles = [column_title(name) for name in columns]
    figure = make_subplots(rows=1, cols=len(columns), subplot_titles=titles)
    chosen = groups or (("all", "rgb(86, 180, 233)", np.ones(len(table), bool)),)
    for index, name in enumerate(columns, start=1):
        values = table.values(name) if len(table) else np.zeros(0)
        for label, colour, subset in chosen:
            figure.add_trace(go.Histogram(x=values[np.asarray(subset, bool)], name=label, marker_color=colour,
                                          opacity=0.75, nbinsx=30, legendgroup=label,
                                          showlegend=index == 1 and len(chosen) > 1), row=1, col=index)
        for bound in (bounds or {}).get(name, ()):
            if 0 < bound < math.inf:
                figure.add_vline(x=bound, line_dash="dash", line_color="black", row=1, col=index)
        figure.update_xaxes(title_text=titles[index - 1], row=1, col=index)
        figure.update_yaxes(title_text=objects, row=1, col=index)
    figure.update_layout(barmode="overlay", height=height, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.3))
    return figure


def exports_downloads(exports: ObjectExports, *, stem: str, key: str, objects: str) -> None:
    """The per-object CSV and the QuPath GeoJSON as downloads (the files ``--csv --geojson`` writes)."""
    names = ObjectExports.file_names(stem)
    left, right = st.columns(2)
    left.download_button(f"{objects} (CSV)", exports.csv, file_name=names["csv"], mime="text/csv", key=f"{key}_csv",
                         help="One row per object: sizes in px and, with a pixel size, µm / µm².")
    right.download_button("Outlines (GeoJSON, QuPath)", exports.geojson, file_name=names["geojson"],
                          mime="application/geo+json", key=f"{key}_geojson",
                          help="QuPath › File › Import objects: detections with holes, class and measurements.")


def presets_panel(
    *,
    kind: str,
    builtin: Mapping[str, Mapping[str, Any]],
    key: str,
    current: Callable[[], Mapping[str, Any]],
    apply: Callable[[Mapping[str, Any]], None],
    read: Callable[[Mapping[str, Any]], Mapping[str, Any]] = dict,
    help_text: str = "",
    title: str = "Presets",
    save_label: str = "Save current values as",
) -> tuple[str, dict[str, Mapping[str, Any]]]:
    """Named presets in the sidebar: pick one (applies it once), save the current values under a name.

    Args:
        kind: the store's preset kind.
        builtin: the built-in presets, name → parameters (they win over stored ones of the same name).
        key: prefix of the widgets' session keys.
        current: the parameters the widgets show now (to save).
        apply: sets the widgets to a preset's parameters.
        read: checks / converts a stored preset's parameters (raise :class:`MedlimError` to skip it).
        help_text: the picker's help.
        title: the sidebar section's title; save_label: the name field's label.

    Returns:
        ``(picked name, every preset by name)``.
    """
    from medlim.core.paths import validate_name
    from medlim.core.store.presets import list_presets, save_preset
    from medlim.errors import ParameterError
    from medlim.settings import get_settings
    from medlim.ui.errors import show_medlim_errors
    from medlim.ui.stores import open_store_cached

    presets: dict[str, Mapping[str, Any]] = dict(builtin)
    store = None
    with show_medlim_errors(subject="Presets"):
        store = open_store_cached(get_settings().database_url)
        for preset in list_presets(store, kind):
            if preset.name not in builtin:
                presets[preset.name] = read(dict(preset.params))
    pending = st.session_state.pop(f"{key}_preset_saved", None)
    if pending in presets:  # just saved from the current values: select it, keep the values
        st.session_state[f"{key}_preset"] = pending
        st.session_state[f"{key}_preset_applied"] = pending
    with st.sidebar:
        st.subheader(title)
        chosen = st.selectbox("Preset", list(presets), key=f"{key}_preset", help=help_text)
        if pending in presets:
            st.success(f"Saved preset “{pending}”.", icon=":material/check:")
        if st.session_state.get(f"{key}_preset_applied") != chosen:
            apply(presets[chosen])
            st.session_state[f"{key}_preset_applied"] = chosen
        name = st.text_input(save_label, key=f"{key}_preset_name", placeholder="e.g. my-lab")
        if st.button("Save preset", key=f"{key}_preset_save", disabled=store is None or not name.strip()):
            with show_medlim_errors(subject="Save preset") as outcome:
                name = validate_name(name, what="preset name")
                if name in builtin:
                    raise ParameterError(f"“{name}” is a built-in preset; choose another preset name.")
                save_preset(store, kind=kind, name=name, params=dict(current()))
            if not outcome.failed:
                st.session_state[f"{key}_preset_saved"] = name
                st.rerun()
    return chosen, presets

