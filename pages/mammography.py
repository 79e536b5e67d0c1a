"""Breast arterial calcification (BAC) page, thesis §3.3.

A radiologist uploads one mammogram or a whole exam (or opens a bundled sample
exam) and sees where SCU-Net finds calcified arteries, the five readouts per
view and per exam, and how the patient's burden changed across saved exams.
The sliders recompute from the cached probability map (no re-inference). The
batch tab runs the same quantification as ``medlim bac quantify`` over many
files. All analysis comes from :mod:`medlim.mammography`; this script only
arranges widgets and results.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import streamlit as st

from medlim.core.io.pseudonym import file_label
from medlim.core.io.record import ImageRecord
from medlim.core.paths import allowed_roots_text, confine_to_data_roots
from medlim.mammography.analysis import BacModel, requantify
from medlim.mammography.preprocess import PRESET_SUMMARIES
from medlim.settings import get_settings
from medlim.ui import mammography as ui
from medlim.ui.caching import lru_put
from medlim.ui.errors import show_medlim_errors
from medlim.ui.figures import default_window, downsample_for_display, windowed_pixels
from medlim.ui.loaders import read_image_cached
from medlim.ui.shell import ensure_app_shell
from medlim.ui.widgets import ImageSource

CHECKPOINT_CHOICE = "Authors' checkpoint file (.pt)…"
VIEW_ORDER = {"RCC": 0, "LCC": 1, "RMLO": 2, "LMLO": 3}


def _choose_model() -> BacModel | None:
    """Sidebar weights picker; the loaded model, or None (with a message) when there is none."""
    from medlim.core.weights import Registry

    settings = get_settings()
    with st.sidebar:
        st.subheader("BAC model")
        entries = []
        with show_medlim_errors(subject="Weights registry"):
            entries = Registry.load(settings.weights_dir).list()
        options = ui.bac_weights_options(entries)
        fingerprints = {f"{e.name}:{e.version}": e.sha256 for e in entries}
        if not options:
            st.warning(
                "No BAC segmentation weights are registered yet in "
                f"`{settings.weights_dir}`. Train them with `medlim train scunet`, import the authors' "
                "checkpoint with `medlim weights import`, or give a checkpoint file below.",
                icon=":material/warning:",
            )
        choice = st.selectbox(
            "Weights",
            options + [CHECKPOINT_CHOICE],
            key="bac_weights",
            help="Registry entries with task bac-segmentation; the default is scunet-bac.",
        )
        weights = choice
        if choice == CHECKPOINT_CHOICE:
            weights = _checkpoint_path()
            if weights is None:
                return None
            status = Path(weights).stat()
            fingerprints[weights] = f"{status.st_size}:{status.st_mtime_ns}"
    with show_medlim_errors(subject="Model"):
        return ui.load_bac_model_cached(weights, str(settings.weights_dir), fingerprints.get(weights, ""))
    return None


def _checkpoint_path() -> str | None:
    """The checkpoint file typed in the sidebar, confined to the data roots; ``None`` (with a message) otherwise."""
    typed = st.text_input(
        "Checkpoint path",
        key="bac_checkpoint",
        placeholder="SCUNet_dice_512_512_best_nosigmoid.pt",
        help="An authors' SCU-Net .pt file, imported in memory with the published preset. It must lie in "
        f"one of the data folders this app may read: {allowed_roots_text()} (a relative path is taken "
        "under the first).",
    ).strip()
    if not typed:
        st.info("Give the path of a checkpoint file to start.", icon=":material/info:")
        return None
    path = None
    with show_medlim_errors(subject="Checkpoint path"):
        path = confine_to_data_roots(typed, what="checkpoint file")
    if path is None:
        return None
    if not path.is_file():
        st.error(f"No file at `{path}`.", icon=":material/error:")
        return None
    return str(path)


def _model_caption(bac_model: BacModel, *, threshold: float, x: float, rule: str) -> str:
    entry = bac_model.entry
    dice = entry.metrics.get("whole_image_dice") if isinstance(entry.metrics, dict) else None
    quality = f", held-out phantom Dice {dice:.2f}" if isinstance(dice, (int, float)) else ""
    if bac_model.skip == "black":
        tiles = "only empty black background tiles skipped"
    else:
        tiles = "background tiles skipped" if bac_model.skip else "every tile analysed"
    return (
        f"Numbers from **{entry.name} v{entry.version}**{quality} · preset **{bac_model.preset}** "
        f"({PRESET_SUMMARIES.get(bac_model.preset, 'custom preprocessing')}; overlap {512 - bac_model.stride} px, "
        f"{bac_model.merge} merge, {tiles}) · cut-off p > {threshold:.2f}, "
        f"X = {x:g} (I {rule} X)."
    )


def _exam_sources() -> list[ImageSource]:
    """Uploaded files, or the files of a chosen bundled sample exam."""
    upload_column, sample_column = st.columns([3, 2])
    with upload_column:
        uploaded = st.file_uploader(
            "Upload one view or a whole exam (DICOM or PNG; several files at once)",
            accept_multiple_files=True,
            key="bac_upload",
            help="Files are read in memory for this session; names and IDs in the files are never shown.",
        )
    sources = [ImageSource(name=file.name, data=file.getvalue()) for file in uploaded or []]
    exams = ui.sample_exams(get_settings().samples_dir)
    with sample_column:
        if exams:
            labels = {exam.label: exam for exam in exams}
            chosen = st.selectbox(
                "…or open a bundled sample exam (synthetic)", list(labels), index=None, key="bac_sample"
            )
            if chosen is not None:
                sources.extend(ImageSource(name=p.name, data=p.read_bytes()) for p in labels[chosen].files)
        else:
            st.caption("No bundled sample mammograms found.")
    return sources


def _analyse(sources: list[ImageSource], bac_model: BacModel) -> list[tuple[object, ImageRecord, str]]:
    """Read and analyse each file once (cached); errors are shown per file and skipped."""
    done = []
    for source in sources:
        with show_medlim_errors(subject=source.name) as outcome:
            record = read_image_cached(source.data, source.name)
            analysis, digest = ui.analyse_cached(record, source.data, bac_model)
        if not outcome.failed:
            _remember_file_label(digest, source)
            done.append((analysis, record, digest))
    return done


_FILE_LABELS = "bac_file_labels"


def _remember_file_label(digest: str, source: ImageSource) -> None:
    """The file's pseudonymous label, computed once per file content in this session."""
    labels: OrderedDict[str, str] = st.session_state.setdefault(_FILE_LABELS, OrderedDict())
    if digest not in labels:
        lru_put(labels, digest, file_label(source.name, data=source.data), max_entries=64)


def _file_label_of(digest: str) -> str:
    return st.session_state.get(_FILE_LABELS, {}).get(digest, "")


def _complete_view_labels(analysed: list[tuple]) -> list[tuple]:
    """Let the reader set view and laterality for files that do not record them (e.g. PNG exports).

    What is set replaces the missing fields of the analysis and the record's
    metadata, so it reaches the exam readout, the report and the store.
    """
    missing = [item for item in analysed if not (item[0].view and item[0].laterality)]
    if not missing:
        return analysed
    chosen: dict[str, tuple[str | None, str | None]] = {}
    with st.expander(f"Set view and laterality ({len(missing)} file(s) do not record them)", expanded=True):
        for analysis, record, digest in missing:
            side_column, view_column = st.columns(2)
            side = side_column.selectbox(f"{record.name}: laterality", ["L", "R"], index=None,
                                         key=f"bac_set_side_{digest[:16]}")  # fmt: skip
            view = view_column.selectbox(f"{record.name}: view", ["CC", "MLO"], index=None,
                                         key=f"bac_set_view_{digest[:16]}")  # fmt: skip
            chosen[digest] = (side, view)
    completed = []
    for analysis, record, digest in analysed:
        side, view = chosen.get(digest, (None, None))
        if side or view:
            side, view = analysis.laterality or side, analysis.view or view
            warnings = analysis.warnings
            if side and view:
                warnings = tuple(w for w in warnings if not w.startswith("View or laterality is not recorded"))
            analysis = dataclasses.replace(analysis, laterality=side, view=view, warnings=warnings)
            meta = dataclasses.replace(record.metadata, laterality=side, view=view)
            record = ImageRecord(pixels=record.pixels, raw=record.raw, metadata=meta, name=record.name)
        completed.append((analysis, record, digest))
    return completed


def _cutoff_sliders(bac_model: BacModel) -> tuple[float, float]:
    """Cut-off t and X sliders; they reset to the weights' defaults when the weights change."""
    if st.session_state.get("bac_defaults_for") != bac_model.label:
        st.session_state["bac_defaults_for"] = bac_model.label
        st.session_state["bac_threshold"] = round(float(bac_model.threshold), 2)
        st.session_state["bac_x"] = int(round(bac_model.x))
    left, right = st.columns(2)
    threshold = left.slider(
        "Probability cut-off t",
        min_value=0.0,
        max_value=1.0,
        step=0.01,
        key="bac_threshold",
        help="A pixel is calcification when the model's output p > t. Recomputed instantly from the stored "
        f"probability map. Default of these weights: {bac_model.threshold:g}.",
    )
    x = right.slider(
        "Intensity threshold X",
        min_value=0,
        max_value=255,
        step=1,
        key="bac_x",
        help="TAM_X and TSIM_X keep only mask pixels brighter than X on the 8-bit preprocessed image "
        f"(0–255). The longitudinal readout uses X = 100. Default of these weights: {bac_model.x:g}.",
    )
    return float(threshold), float(x)


def _sort_key(view: ui.AnalysedView) -> tuple[str, int, str]:
    return (view.analysis.study_date or "", VIEW_ORDER.get(view.label, 9), view.label)


def _display_controls(record: ImageRecord, digest: str) -> tuple[bool, float, tuple[float, float, str] | None]:
    show = st.toggle("Show calcification mask", value=True, key="bac_overlay")
    opacity = st.slider("Mask opacity", 0.1, 1.0, 0.6, 0.05, key="bac_opacity", disabled=not show)
    window = None
    if record.metadata.source_format == "dicom" and not record.is_color:
        # The file's window is recovered by a fit over up to a million pixels: once per image.
        windows: OrderedDict = st.session_state.setdefault("bac_default_windows", OrderedDict())
        if digest not in windows:
            lru_put(windows, digest, default_window(record), max_entries=64)
        default = windows[digest]
        span = max(default.high - default.low, 1e-6)
        step = 1.0 if span >= 50 else span / 500.0
        with st.expander("Window / level"):
            center = st.slider(
                "Window centre (level)",
                float(default.low),
                float(default.low + span),
                float(min(max(default.center, default.low), default.low + span)),
                step,
                key=f"bac_center_{digest[:16]}",
            )
            width = st.slider(
                "Window width",
                float(step),
                float(max(2.0 * span, default.width)),
                float(default.width),
                step,
                key=f"bac_width_{digest[:16]}",
                help="Display only: the analysis always uses the file's own window.",
            )
            window = (center, width, default.function)
    return show, opacity, window


def _show_image(view: ui.AnalysedView, *, threshold: float) -> None:
    record = view.record
    controls, image_column = st.columns([1, 3])
    with controls:
        show, opacity, window = _display_controls(record, view.content_sha256)
    with image_column:
        with show_medlim_errors(subject=record.name) as outcome:
            if window is None:
                display = record.pixels
            else:
                display = windowed_pixels(record, center=window[0], width=window[1], function=window[2])
        if outcome.failed:
            return
        mask = view.analysis.prediction.probability > threshold
        shrunk, factor = downsample_for_display(display)
        st.plotly_chart(
            ui.overlay_figure(shrunk, ui.block_max(mask, factor) if show else None, factor=factor, opacity=opacity),
            key="bac_image",
            config={"scrollZoom": True, "displaylogo": False},
        )
        rows, cols = mask.shape
        note = f" Shown at 1/{factor} resolution; use the crop below for full resolution." if factor > 1 else ""
        st.caption(
            f"{view.label} · {cols} × {rows} px. Drag to zoom, scroll to zoom, double-click to reset.{note} "
            "Mask pixels on a reduced display are enlarged so thin arteries stay visible."
        )
    with st.expander("Full-resolution crop"):
        crop_controls, crop_column = st.columns([1, 3])
        with crop_controls:
            size = st.select_slider("Crop size (px)", [256, 512, 1024], value=512, key="bac_crop_size")
            # Keys carry the image size: another view may be smaller than the last position.
            row = st.slider("Crop centre row", 0, rows - 1, rows // 2, key=f"bac_crop_row_{rows}")
            col = st.slider("Crop centre column", 0, cols - 1, cols // 2, key=f"bac_crop_col_{cols}")
        top, left = max(0, min(rows - size, row - size // 2)), max(0, min(cols - size, col - size // 2))
        crop = (slice(top, top + size), slice(left, left + size))
        crop_column.plotly_chart(
            ui.overlay_figure(display[crop], mask[crop] if show else None, origin=(top, left), opacity=opacity,
                              height=560),
            key="bac_crop",
            config={"scrollZoom": True, "displaylogo": False},
        )  # fmt: skip


def _area_metric(column, label: str, pixels: int, mm2: float | None, help_text: str) -> None:
    """An area readout: mm² when the file has a pixel spacing (pixels below), else pixels."""
    if mm2 is None:
        column.metric(f"{label} (px)", f"{pixels:,}", help=help_text)
    else:
        column.metric(f"{label} (mm²)", f"{mm2:,.2f}", help=help_text)
        column.caption(f"{pixels:,} px")


def _show_view_metrics(view: ui.AnalysedView) -> None:
    m = view.metrics
    columns = st.columns(5)
    x = f"{m.x:g}"
    columns[0].metric("PM", f"{m.pm:,.0f}", help=ui.METRIC_HELP["PM"])
    columns[0].caption("Σ p over the image")
    _area_metric(columns[1], "AM", m.am, m.am_mm2, ui.METRIC_HELP["AM"])
    columns[2].metric("SIM", f"{m.sim:,}", help=ui.METRIC_HELP["SIM"])
    columns[2].caption("Σ grey (0–255) in the mask")
    _area_metric(columns[3], f"TAM_{x}", m.tam_x, m.tam_x_mm2, ui.METRIC_HELP["TAM_X"])
    columns[4].metric(f"TSIM_{x}", f"{m.tsim_x:,}", help=ui.METRIC_HELP["TSIM_X"])
    columns[4].caption(f"Σ grey of the TAM_{x} pixels")
    if m.am_mm2 is not None:
        st.caption(
            f"mm² from the file's {m.spacing_source} ({view.record.metadata.pixel_spacing_label}): "
            f"{m.pixel_spacing_mm[0]:.4f} × {m.pixel_spacing_mm[1]:.4f} mm per pixel."
        )
    else:
        st.caption("The file records no pixel spacing: areas in pixels only.")


def _readout_table(views: list[ui.AnalysedView], x: float) -> None:
    frame = pd.DataFrame(ui.readout_rows(views))
    frame = frame.rename(columns=lambda c: c.replace("TAM_X", f"TAM_{x:g}").replace("TSIM_X", f"TSIM_{x:g}"))
    help_for = {
        "PM": ui.METRIC_HELP["PM"],
        "AM (px)": ui.METRIC_HELP["AM"],
        "AM (mm²)": ui.METRIC_HELP["AM"],
        "SIM": ui.METRIC_HELP["SIM"],
        f"TAM_{x:g} (px)": ui.METRIC_HELP["TAM_X"],
        f"TAM_{x:g} (mm²)": ui.METRIC_HELP["TAM_X"],
        f"TSIM_{x:g}": ui.METRIC_HELP["TSIM_X"],
        f"TAM_{x:g} / breast area": ui.METRIC_HELP["TAM_X / breast area"],
    }
    config = {name: st.column_config.NumberColumn(name, help=text) for name, text in help_for.items()}
    config[f"TAM_{x:g} / breast area"] = st.column_config.NumberColumn(
        f"TAM_{x:g} / breast area", help=help_for[f"TAM_{x:g} / breast area"], format="%.2e"
    )
    st.dataframe(frame, hide_index=True, column_config=config, key=None)


def _saved_key(views: list[ui.AnalysedView]) -> tuple:
    return tuple((v.content_sha256, v.metrics.threshold, v.metrics.x) for v in views)


def _save(views: list[ui.AnalysedView], bac_model: BacModel) -> None:
    from medlim.mammography.batch import save_analysis

    store = ui.open_store_cached(get_settings().database_url)
    saved = 0
    for view in views:
        save_analysis(store, view.current, record=view.record, content_sha256=view.content_sha256, bac_model=bac_model)
        if view.metrics.x != ui.HISTORY_X:  # the longitudinal readout is TAM_100: keep it too
            at_100 = requantify(view.analysis, threshold=view.metrics.threshold, x=ui.HISTORY_X)
            save_analysis(
                store, ui.AnalysedView(view.analysis, at_100, view.record, view.content_sha256).current,
                record=view.record, content_sha256=view.content_sha256, bac_model=bac_model,
            )  # fmt: skip
        saved += 1
    unplaced = [v.label for v in views if not (v.analysis.patient_key and v.analysis.study_date)]
    st.session_state["bac_saved_note"] = _saved_key(views), (
        f"Saved {saved} view{'s' if saved != 1 else ''} to the results store (saving again updates the same rows)."
        + (f" {', '.join(unplaced)}: no patient or exam date in the file, so not in a history." if unplaced else "")
    )


def _history(patient_keys: list[str], bac_model: BacModel, *, threshold: float) -> None:
    from medlim.core.store import list_bac_results
    from medlim.mammography.batch import exam_rows

    st.subheader("History")
    st.caption(ui.CHANGE_RULE_HELP)
    if not patient_keys:
        st.info("The files carry no patient key, so there is no history to show.", icon=":material/info:")
        return
    store = ui.open_store_cached(get_settings().database_url)
    for patient_key in patient_keys:
        stored = list_bac_results(store, patient_key=patient_key, weights_name=bac_model.entry.name)
        values = ui.history_values(
            stored, weights_name=bac_model.entry.name, weights_version=bac_model.entry.version, threshold=threshold
        )
        with show_medlim_errors(subject=f"Patient {patient_key}") as outcome:
            exams, changes, _unplaced = exam_rows(values)
        if outcome.failed:
            continue
        st.markdown(
            f"**Patient key {patient_key}** (pseudonymous) · {len(exams)} saved exam(s) with "
            f"{bac_model.label}, cut-off p > {threshold:.2f}, X = {ui.HISTORY_X:g}"
        )
        if not exams:
            st.caption(
                "No saved exams for this patient with these weights and cut-off yet: "
                "press *Save to the patient's history*."
            )
            continue
        st.plotly_chart(ui.history_figure(exams, changes), key=f"bac_history_{patient_key}",
                        config={"displaylogo": False})  # fmt: skip
        if changes:
            st.dataframe(pd.DataFrame(ui.change_rows(changes)), hide_index=True)
        else:
            st.caption("One exam saved: the change flags appear from the second exam on.")


def _exam_tab(bac_model: BacModel) -> None:
    from medlim.mammography.batch import exam_rows, outcome_record

    sources = _exam_sources()
    if not sources:
        st.info("Upload a mammogram or a four-view exam, or open a sample exam, to start.", icon=":material/upload:")
        return
    analysed = _complete_view_labels(_analyse(sources, bac_model))
    if not analysed:
        return
    threshold, x = _cutoff_sliders(bac_model)
    views = sorted(
        (
            ui.AnalysedView(analysis, requantify(analysis, threshold=threshold, x=x), record, digest,
                            _file_label_of(digest))
            for analysis, record, digest in analysed
        ),
        key=_sort_key,
    )
    rule = views[0].metrics.intensity_rule
    st.caption(_model_caption(bac_model, threshold=threshold, x=x, rule=rule))
    for view in views:
        for warning in view.analysis.warnings:
            st.warning(f"**{view.label}** ({view.record.name}): {warning}", icon=":material/warning:")

    dates = {v.analysis.study_date for v in views}
    labels = [f"{v.label} {v.analysis.study_date}" if len(dates) > 1 else v.label for v in views]
    chosen = st.radio("View", labels, horizontal=True, key="bac_view")
    selected = views[labels.index(chosen)] if chosen in labels else views[0]
    _show_view_metrics(selected)
    _show_image(selected, threshold=threshold)

    st.subheader("Readouts per view and per exam")
    groups: dict[tuple[str, str], list[ui.AnalysedView]] = {}
    for view in views:
        groups.setdefault((view.analysis.patient_key or "—", view.analysis.study_date or "—"), []).append(view)
    for (patient_key, date), members in groups.items():
        if len(groups) > 1:
            st.markdown(f"**Exam {date}** · patient key {patient_key}")
        _readout_table(members, x)
    exams, _changes, unplaced = exam_rows(outcome_record(v.current, file=v.record.name) for v in views)
    if unplaced:
        st.caption(
            f"Not in an exam readout (no patient, date, view or laterality in the file): {', '.join(unplaced)}."
        )

    records = ui.report_records(views, bac_model)
    save_column, mask_column, csv_column, json_column = st.columns(4)
    if save_column.button("Save to the patient's history", key="bac_save", type="primary",
                          help="Stores the readouts (not the image) under the pseudonymous patient key. "
                          "Idempotent: saving again updates the same rows."):  # fmt: skip
        with show_medlim_errors(subject="Results store"):
            _save(views, bac_model)
    mask_column.download_button(
        f"Mask of {selected.label} (PNG)",
        ui.mask_png(selected.analysis, threshold=threshold),
        file_name=f"{Path(selected.download_label).stem}_bac_mask.png",
        mime="image/png",
        key="bac_download_mask",
        help="Full-size 8-bit mask: 255 where p > t, else 0.",
    )
    csv_column.download_button("Report (CSV)", ui.report_csv(records), file_name="bac_report.csv",
                               mime="text/csv", key="bac_download_csv")  # fmt: skip
    json_column.download_button(
        "Report (JSON)", ui.report_json(records, bac_model=bac_model, exams=exams, x=x),
        file_name="bac_report.json", mime="application/json", key="bac_download_json",
    )  # fmt: skip
    saved_for, note = st.session_state.get("bac_saved_note", (None, None))
    if note and saved_for == _saved_key(views):  # only for the exam and settings that were saved
        st.success(note, icon=":material/check_circle:")
    keys = sorted({v.analysis.patient_key for v in views if v.analysis.patient_key})
    _history(keys, bac_model, threshold=threshold)


def _batch_tab(bac_model: BacModel) -> None:
    from medlim.mammography.batch import quantify_files

    st.caption(
        "Many mammograms at once — the same numbers as `medlim bac quantify`. A bad file is reported in the "
        "table and the run goes on."
    )
    uploaded = st.file_uploader(
        "Mammograms or .zip archives of them", accept_multiple_files=True, key="bac_batch_upload"
    )
    exams = ui.sample_exams(get_settings().samples_dir)
    use_samples = bool(exams) and st.checkbox("Add all bundled sample mammograms", key="bac_batch_samples")
    left, middle, right = st.columns(3)
    threshold = left.number_input("Probability cut-off t", 0.0, 1.0, float(bac_model.threshold), 0.01,
                                  key="bac_batch_threshold")  # fmt: skip
    x = middle.number_input("Intensity threshold X", 0.0, 255.0, float(bac_model.x), 1.0, key="bac_batch_x")
    save = right.checkbox("Save to the results store", value=True, key="bac_batch_save")
    resume = right.checkbox("Reuse stored results (resume)", value=False, key="bac_batch_resume", disabled=not save)
    if st.button("Quantify", key="bac_batch_run", type="primary"):
        sources: list[tuple[str, bytes | Path]] = []
        with show_medlim_errors(subject="Upload"):
            sources = ui.expand_uploads((f.name, f.getvalue()) for f in uploaded or [])
        if use_samples:
            root = get_settings().samples_dir
            sources += [(p.relative_to(root).as_posix(), p) for exam in exams for p in exam.files]
        if not sources:
            st.info("Add files first.", icon=":material/upload:")
            return
        st.session_state["bac_batch_labels"] = {
            name: file_label(name, data=data if isinstance(data, bytes) else Path(data).read_bytes())
            for name, data in sources
        }
        bar = st.progress(0.0, text=f"0 of {len(sources)} files")

        def report(index: int, name: str, seconds: float) -> None:
            bar.progress(index / len(sources), text=f"{index} of {len(sources)}: {Path(name).name} ({seconds:.1f} s)")

        store = ui.open_store_cached(get_settings().database_url) if save else None
        rows = []
        for outcome in quantify_files(sources, bac_model, threshold=threshold, x=x, store=store,
                                      reuse_stored=resume and save, progress=report):  # fmt: skip
            if outcome.ok:
                rows.append({"ok": True, **outcome.values, "reused": outcome.reused})
            else:
                rows.append({"file": outcome.file, "ok": False, "error": outcome.error, "message": outcome.message})
        bar.empty()
        st.session_state["bac_batch_rows"] = rows
    rows = st.session_state.get("bac_batch_rows")
    if rows:
        failed = sum(not row["ok"] for row in rows)
        st.markdown(f"**{len(rows)} files**, {failed} could not be analysed.")
        frame = pd.DataFrame(rows).drop(columns=["patient_key", "warnings"], errors="ignore")
        st.dataframe(frame, hide_index=True, key=None)
        labels = st.session_state.get("bac_batch_labels", {})
        st.download_button("Results (CSV)", ui.report_csv(ui.pseudonymous_rows(rows, labels)),
                           file_name="bac_batch.csv", mime="text/csv",
                           key="bac_batch_download")  # fmt: skip


ensure_app_shell()
st.title("Breast arterial calcification")
st.caption(
    "SCU-Net marks calcified breast arteries and measures them per view, per exam and across years "
    "(thesis §3.3). Research use only — not for diagnosis."
)
bac_model = _choose_model()
if bac_model is not None:
    exam_tab, batch_tab = st.tabs(["Exam", "Batch"])
    with exam_tab:
        _exam_tab(bac_model)
    with batch_tab:
        _batch_tab(bac_model)
