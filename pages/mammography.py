"""Breast arterial calcification (BAC) page, thesis §3.3.

A radiologist uploads one mammogram or a whole exam (or opens a bundled sample
exam) and sees where SCU-Net finds calcified arteries, the five readouts per
view and per exam, and how the patient's burden changed across saved exams.
The sliders recompute from the cached probability map (no re-inference) and
keep their values for the session (an upload never resets them); the chosen
weights stick too. The batch tab runs the same quantification as
``medlim bac quantify`` over many files. All analysis, reports and history come
from :mod:`medlim.mammography`; this script only arranges widgets and results.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from medlim.core.io.pseudonym import file_label
from medlim.core.io.record import ImageRecord
from medlim.core.model_catalogue import picker_caption
from medlim.core.paths import allowed_roots_text, confine_to_data_roots
from medlim.core.text import counted
from medlim.mammography.analysis import BAC_TASK, DEFAULT_BAC_WEIGHTS, BacModel, requantify
from medlim.mammography.readout import AnalysedView, BacReadout, with_view_labels
from medlim.mammography.report import WeightsSummary, numbers_from
from medlim.mammography.samples import expand_uploads, sample_exams
from medlim.settings import get_settings
from medlim.ui import mammography as ui
from medlim.ui.errors import show_medlim_errors
from medlim.ui.figures import WindowSetting, default_window, windowed_region
from medlim.ui.shell import ensure_app_shell
from medlim.ui.widgets import ImageSource, owned_selectbox, owned_slider, owned_toggle, set_owned

CHECKPOINT_CHOICE = "Authors' checkpoint file (.pt)…"
VIEW_ORDER = {"RCC": 0, "LCC": 1, "RMLO": 2, "LMLO": 3}
ZOOM_SIZES = [256, 512, 1024]
#: Session keys of the batch job the page follows (issue 15) and of the weights a job names (`--weights`).
BATCH_JOB_KEY = "bac_job"
WEIGHTS_ARG_KEY = "bac_job_weights"
#: Session keys of the tabs, and of a batch job's view opened in the exam viewer (``{"job", "index", "name"}``).
TABS_KEY = "bac_tabs"
OPENED_VIEW_KEY = "bac_opened_view"
#: The two DICOM export modes, as the reader chooses them, and whether each links to the source.
DICOM_MODES = {"De-identified copy (default)": False, "Return to PACS (linked to the source study)": True}


# ----------------------------------------------------------------------------- model


def _choose_model() -> BacModel | None:
    """Sidebar weights picker; the loaded model, or None (with a message) when there is none."""
    from medlim.core.weights import Registries

    settings = get_settings()
    with st.sidebar:
        st.subheader("BAC model")
        registries, models = None, ()
        with show_medlim_errors(subject="Weights registry"):
            registries = Registries.load(settings)
            models = registries.models(task=BAC_TASK)
        options, default = ui.weights_options(models)
        if not options:
            st.warning(
                "No BAC segmentation weights are registered yet in "
                f"`{settings.weights_dir}`. Train them with `medlim train scunet`, import the authors' "
                "checkpoint with `medlim weights import`, or give a checkpoint file below.",
                icon=":material/warning:",
            )
        fallback = next((o for o in reversed(options) if o.startswith(f"{DEFAULT_BAC_WEIGHTS}@")), None)
        choice = owned_selectbox(
            "Weights", options + [CHECKPOINT_CHOICE], key="bac_weights",
            default=default or fallback or (options[0] if options else CHECKPOINT_CHOICE), keep_default=False,
            format_func=functools.partial(ui.weights_option_label, models=models),
            help="BAC segmentation models of the shipped and your own registry. It opens on the task's default "
            "(marked; set on the Models page); a model you choose here is kept for this session.",
        )  # fmt: skip
        picked = next((m for m in models if f"{m.entry.name}@{m.entry.version}" == choice), None)
        if picked is not None:
            st.caption(picker_caption(picked.entry, source=picked.source))
        # the training-data check's digest too: a recalibrated check loads afresh
        weights = choice
        fingerprint = "" if picked is None else f"{picked.entry.sha256}:{picked.entry.familiarity.get('sha256', '')}"
        if choice == CHECKPOINT_CHOICE:
            weights = _checkpoint_path()
            if weights is None:
                return None
            status = Path(weights).stat()
            fingerprint = f"{status.st_size}:{status.st_mtime_ns}"
        st.session_state[WEIGHTS_ARG_KEY] = weights  # what a batch job's `--weights` names
    if registries is None:
        return None
    with show_medlim_errors(subject="Model"):
        return ui.load_bac_model_cached(
            weights, str(registries.shipped.directory), str(registries.user.directory), fingerprint
        )
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


# ----------------------------------------------------------------------------- inputs


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
    sources = [ImageSource(file.name, file.getvalue(), f"upload:{file.file_id}") for file in uploaded or []]
    exams = sample_exams(get_settings().samples_dir)
    with sample_column:
        if exams:
            labels = {exam.label: exam for exam in exams}
            chosen = st.selectbox(
                "…or open a bundled sample exam (synthetic)", list(labels), index=None, key="bac_sample"
            )
            for path in labels[chosen].files if chosen is not None else ():
                status = path.stat()
                sources.append(ImageSource(path.name, path.read_bytes(),
                                           f"sample:{path}:{status.st_size}:{status.st_mtime_ns}"))  # fmt: skip
        else:
            st.caption("No bundled sample mammograms found.")
    opened = _opened_batch_view()
    return sources + ([opened] if opened is not None else [])


def _batch_request(job):  # noqa: ANN001, ANN202 - a Job → its BacJobRequest
    """What the batch job was asked (its files in row order, weights, cut-off, X, stated spacing)."""
    from medlim.cli.job_kinds import bac_job_request

    return bac_job_request(job.parameters, origin=job.origin)


def _opened_batch_view() -> ImageSource | None:
    """The view of a finished batch job opened from the Batch tab (issue 15), read from the job's file; the
    analysis comes back from the stored result (the job kept it), so the model does not run again."""
    from medlim.core.jobs import get_job
    from medlim.errors import InputError
    from medlim.ui.jobs import jobs_store

    opened = st.session_state.get(OPENED_VIEW_KEY)
    if not opened:
        return None
    source = None
    with show_medlim_errors(subject=f"View {opened['index']} of batch job {opened['job']}"):
        job = get_job(jobs_store(), int(opened["job"]))
        path = _batch_request(job).file(int(opened["index"]))
        try:
            data, status = path.read_bytes(), path.stat()
        except OSError as exc:
            raise InputError(f"the file of {opened['name']} is no longer where the job read it; run the batch "
                             "again to open its views.") from exc
        source = ImageSource(str(opened["name"]), data,
                             f"batch:{job.id}:{opened['index']}:{status.st_size}:{status.st_mtime_ns}")
    note, close = st.columns([5, 1], vertical_alignment="center")
    note.info(f"Opened **{opened['name']}** from batch job {opened['job']}, at the batch's cut-off, X and pixel "
              "spacing; its analysis is the job's stored result (the model does not run again).",
              icon=":material/open_in_new:")  # fmt: skip
    close.button("Close", key="bac_opened_close", on_click=st.session_state.pop, args=(OPENED_VIEW_KEY, None),
                 help="Take this view out of the exam viewer (the batch's results stay in the Batch tab).")
    return source


def _pixel_spacing_field(container, key: str) -> float | None:
    """The pixel spacing a person states (mm), or ``None`` (0 in the field) for the files' own."""
    value = container.number_input(
        "Pixel spacing (mm, 0 = from the file)", min_value=0.0, max_value=5.0, step=0.005,  # 0 at first
        format="%.4f", key=key,
        help="At the breast. Overrides the file's spacing; a file without one gets the weights' own (with a "
             "warning). Images outside the weights' training spacing are resampled to it for inference; the "
             "readouts stay in pixels of your image and in mm² at this spacing.")
    return float(value) if value and value > 0 else None


def _analyse(sources: list[ImageSource], bac_model: BacModel, pixel_spacing_mm: float | None = None) -> list[tuple]:
    """Read and analyse each file once (cached per content, weights and stated spacing); errors are shown per
    file and skipped.

    Returns:
        ``(analysis, record, content_sha256, pseudonymous label, cut-off table)`` per file analysed.
    """
    done = []
    for source in sources:
        with show_medlim_errors(subject=source.name) as outcome:
            digest = ui.content_digest(source.data, source.identity)
            analysis, record, table = ui.analyse_cached(source.data, source.name, digest, bac_model,
                                                        pixel_spacing_mm=pixel_spacing_mm)
        if not outcome.failed:
            done.append((analysis, record, digest, file_label(source.name, content_sha256=digest), table))
    return done


def _complete_view_labels(analysed: list[tuple]) -> list[tuple]:
    """Let the reader set view and laterality for files that do not record them (e.g. PNG exports)."""
    missing = [item for item in analysed if not (item[0].view and item[0].laterality)]
    if not missing:
        return analysed
    chosen: dict[str, tuple[str | None, str | None]] = {}
    with st.expander(f"Set view and laterality ({len(missing)} file(s) do not record them)", expanded=True):
        for _analysis, record, digest, _label, _table in missing:
            side_column, view_column = st.columns(2)
            side = side_column.selectbox(f"{record.name}: laterality", ["L", "R"], index=None,
                                         key=f"bac_set_side_{digest[:16]}")  # fmt: skip
            view = view_column.selectbox(f"{record.name}: view", ["CC", "MLO"], index=None,
                                         key=f"bac_set_view_{digest[:16]}")  # fmt: skip
            chosen[digest] = (side, view)
    completed = []
    for analysis, record, digest, label, table in analysed:
        side, view = chosen.get(digest, (None, None))
        analysis, record = with_view_labels(analysis, record, laterality=side, view=view)
        completed.append((analysis, record, digest, label, table))
    return completed


def _cutoff_help(bac_model: BacModel, extra: str = "") -> str:
    """The cut-off field's help (single view and batch): the rule, these weights' default and their gate, if any."""
    words = ["A pixel is calcification when the model's output p > t.", extra,
             f"Default of these weights: {bac_model.threshold:g}.",
             "" if bac_model.gate is None else bac_model.gate.describe(),
             "" if bac_model.region_filter is None else bac_model.region_filter.describe()]
    return " ".join(word for word in words if word)


def _cutoff_sliders(bac_model: BacModel) -> tuple[float, float]:
    """Cut-off t and X sliders, each value owned by the page (set to the weights' defaults when the weights change)."""
    weights = (bac_model.entry.name, str(bac_model.entry.version), bac_model.entry.sha256)
    if st.session_state.get("bac_defaults_for") != weights:
        st.session_state["bac_defaults_for"] = weights
        set_owned("bac_threshold", round(float(bac_model.threshold), 2))
        set_owned("bac_x", int(round(bac_model.x)))
    left, right = st.columns(2)
    threshold = owned_slider(
        "Probability cut-off t", key="bac_threshold", default=round(float(bac_model.threshold), 2),
        min_value=0.0, max_value=1.0, step=0.01, container=left,
        help=_cutoff_help(bac_model, "Recomputed instantly from the stored probability map."),
    )  # fmt: skip
    x = owned_slider(
        "Intensity threshold X", key="bac_x", default=int(round(bac_model.x)), min_value=0, max_value=255, step=1,
        container=right,
        help="TAM_X and TSIM_X keep only mask pixels brighter than X on the 8-bit preprocessed image "
        f"(0–255). The history always uses X = 100. Default of these weights: {bac_model.x:g}.",
    )  # fmt: skip
    return float(threshold), float(x)


# ----------------------------------------------------------------------------- image


def _window_controls(record: ImageRecord, digest: str) -> tuple[float, float, str] | None:
    """Window/level sliders for grey DICOM; ``None`` while they show what the reader applied."""
    if record.metadata.source_format != "dicom" or record.is_color:
        return None
    windows = st.session_state.setdefault("bac_default_windows", {})
    if digest not in windows:
        if len(windows) >= 64:
            windows.pop(next(iter(windows)))
        windows[digest] = default_window(record)
    default: WindowSetting = windows[digest]
    span = max(default.high - default.low, 1e-6)
    step = 1.0 if span >= 50 else span / 500.0
    with st.expander("Window / level"):
        if default.description:
            st.caption(f"Opens on what the reader applied: {default.description}.")
        center = owned_slider(
            "Window centre (level)", key=f"bac_center_{digest[:16]}",
            default=float(min(max(default.center, default.low), default.low + span)),
            min_value=float(default.low), max_value=float(default.low + span), step=step,
        )  # fmt: skip
        width = owned_slider(
            "Window width", key=f"bac_width_{digest[:16]}", default=float(default.width), min_value=float(step),
            max_value=float(max(2.0 * span, default.width)), step=step,
            help="Display only: the analysis always uses the file's own window.",
        )  # fmt: skip
    if center == default.center and width == default.width:
        return None  # the reader's pixels, exactly (also for a VOI LUT, which a window only approximates)
    return center, width, default.function


def _display(record: ImageRecord, window: tuple[float, float, str] | None, region=None):
    if window is None:
        return record.pixels if region is None else record.pixels[region]
    return windowed_region(record, center=window[0], width=window[1], function=window[2], region=region)


def _zoom_to_selection(chart_key: str, digest: str, shape: tuple[int, int]) -> None:
    """Plotly selection callback: a click (or a box) on the overview moves the zoom there."""
    state = st.session_state.get(chart_key)
    centre = ui.zoom_centre(state.get("selection") if state else None, shape)
    if centre is not None:
        set_owned(f"bac_zoom_row_{digest[:16]}", centre[0])
        set_owned(f"bac_zoom_col_{digest[:16]}", centre[1])


def _show_image(view: AnalysedView, bac_model: BacModel, *, threshold: float) -> None:
    record, digest = view.record, view.content_sha256
    probability = view.analysis.prediction.probability
    rows, cols = probability.shape
    controls, image_column = st.columns([1, 3])
    with controls:
        show = owned_toggle("Show calcification mask", key="bac_overlay", default=True)
        opacity = owned_slider("Mask opacity", key="bac_opacity", default=0.6, min_value=0.1, max_value=1.0,
                               step=0.05, disabled=not show)  # fmt: skip
        window = _window_controls(record, digest)
    with image_column:
        with show_medlim_errors(subject=record.name) as outcome:
            base = ui.overlay_base_cached((digest, bac_model.label, window), lambda: _display(record, window),
                                          probability)  # fmt: skip
        if outcome.failed:
            return
        chart_key = f"bac_image_{digest[:16]}"
        st.plotly_chart(
            ui.overlay_figure(base, threshold=threshold, show_mask=show, opacity=opacity),
            key=chart_key, on_select=functools.partial(_zoom_to_selection, chart_key, digest, (rows, cols)),
            selection_mode=("points", "box"), config={"scrollZoom": True, "displaylogo": False},
        )  # fmt: skip
        note = f" Shown at 1/{base.factor} resolution; mask pixels are enlarged so thin arteries stay visible." \
            if base.factor > 1 else ""  # fmt: skip
        st.caption(f"{view.label} · {cols} × {rows} px. **Click** the image (or draw a box) to zoom to full "
                   f"resolution there; drag or scroll to zoom this view, double-click to reset.{note}")  # fmt: skip
    _show_zoom(view, window, threshold=threshold, show=show, opacity=opacity)


def _show_zoom(view: AnalysedView, window, *, threshold: float, show: bool, opacity: float) -> None:
    digest = view.content_sha256[:16]
    probability = view.analysis.prediction.probability
    rows, cols = probability.shape
    st.markdown("**Full resolution**")
    zoom_controls, zoom_column = st.columns([1, 3])
    with zoom_controls:
        size = owned_selectbox("Zoom size (px)", ZOOM_SIZES, key="bac_zoom_size", default=512)
        row = owned_slider("Zoom centre row", key=f"bac_zoom_row_{digest}", default=rows // 2, min_value=0,
                           max_value=rows - 1, step=1)  # fmt: skip
        col = owned_slider("Zoom centre column", key=f"bac_zoom_col_{digest}", default=cols // 2, min_value=0,
                           max_value=cols - 1, step=1)  # fmt: skip
    top, left, bottom, right = ui.crop_box((rows, cols), (row, col), size)
    region = (slice(top, bottom), slice(left, right))
    zoom_column.plotly_chart(
        ui.zoom_figure(_display(view.record, window, region), probability[region], origin=(top, left),
                       threshold=threshold, show_mask=show, opacity=opacity),
        key="bac_zoom", config={"scrollZoom": True, "displaylogo": False},
    )  # fmt: skip


# ----------------------------------------------------------------------------- readouts


def _area_metric(column, label: str, pixels: int, mm2: float | None, help_text: str) -> None:
    """An area readout: mm² when the file has a pixel spacing (pixels below), else pixels."""
    if mm2 is None:
        column.metric(f"{label} (px)", f"{pixels:,}", help=help_text)
    else:
        column.metric(f"{label} (mm²)", f"{mm2:,.2f}", help=help_text)
        column.caption(f"{pixels:,} px")


def _show_view_metrics(readout: BacReadout, record: ImageRecord) -> None:
    columns = st.columns(5)
    x = f"{readout.x:g}"
    columns[0].metric("PM", f"{readout.pm:,.0f}", help=ui.METRIC_HELP["PM"])
    columns[0].caption("Σ p over the image")
    _area_metric(columns[1], "AM", readout.am, readout.am_mm2, ui.METRIC_HELP["AM"])
    columns[2].metric("SIM", f"{readout.sim:,.0f}", help=ui.METRIC_HELP["SIM"])
    columns[2].caption("Σ grey (0–255) in the mask")
    _area_metric(columns[3], f"TAM_{x}", readout.tam_x, readout.tam_x_mm2, ui.METRIC_HELP["TAM_X"])
    columns[4].metric(f"TSIM_{x}", f"{readout.tsim_x:,.0f}", help=ui.METRIC_HELP["TSIM_X"])
    columns[4].caption(f"Σ grey of the TAM_{x} pixels")
    st.caption(readout.spacing_text)
    st.caption(f"Training-data check: {ui.unlike_training_text(readout)}.", help=ui.UNLIKE_TRAINING_HELP)
    dropped = ui.region_filter_text(readout)
    if dropped:
        st.caption(dropped, help=ui.REGION_FILTER_HELP)


def _readout_table(views: list[AnalysedView], readouts: dict[str, BacReadout], x: float) -> None:
    rows = ui.readout_rows([readouts[v.content_sha256] for v in views], [v.label for v in views],
                           [v.analysis.study_date for v in views])  # fmt: skip
    frame = pd.DataFrame(rows).rename(columns=lambda c: c.replace("TAM_X", f"TAM_{x:g}").replace("TSIM_X", f"TSIM_{x:g}"))
    help_for = {
        "PM": ui.METRIC_HELP["PM"], "AM (px)": ui.METRIC_HELP["AM"], "AM (mm²)": ui.METRIC_HELP["AM"],
        "SIM": ui.METRIC_HELP["SIM"], f"TAM_{x:g} (px)": ui.METRIC_HELP["TAM_X"],
        f"TAM_{x:g} (mm²)": ui.METRIC_HELP["TAM_X"], f"TSIM_{x:g}": ui.METRIC_HELP["TSIM_X"],
    }  # fmt: skip
    config = {name: st.column_config.NumberColumn(name, help=text) for name, text in help_for.items()}
    ratio = f"TAM_{x:g} / breast area"
    config[ratio] = st.column_config.NumberColumn(ratio, help=ui.METRIC_HELP["TAM_X / breast area"], format="%.2e")
    config["Unlike training"] = st.column_config.TextColumn(
        "Unlike training", help=ui.UNLIKE_TRAINING_HELP + " Shown as score / limit."
    )
    st.dataframe(frame, hide_index=True, column_config=config, key=None)


def _exam_groups(views: list[AnalysedView]) -> dict[tuple[str | None, str | None], list[AnalysedView]]:
    groups: dict[tuple[str | None, str | None], list[AnalysedView]] = {}
    for view in views:
        groups.setdefault((view.analysis.patient_key, view.analysis.study_date), []).append(view)
    return groups


# ----------------------------------------------------------------------------- save, downloads, history


def _saved_key(views: list[AnalysedView]) -> tuple:
    return tuple((v.content_sha256, v.metrics.threshold, v.metrics.x) for v in views)


def _save(views: list[AnalysedView], bac_model: BacModel) -> None:
    from medlim.mammography.batch import save_views

    ids = save_views(ui.open_store_cached(get_settings().database_url), views, bac_model)
    unplaced = [v.label for v in views if not (v.analysis.patient_key and v.analysis.study_date)]
    st.session_state["bac_saved_note"] = _saved_key(views), (
        f"Saved {counted(len(ids), 'view')} to the results store with TAM_100 "
        f"(analyses {', '.join(map(str, ids))}; saving again updates the same rows)."
        + (f" {', '.join(unplaced)}: no patient or exam date in the file, so not in a history." if unplaced else "")
    )


def _report_builder(views: list[AnalysedView], bac_model: BacModel) -> Callable[[], object]:
    """Builds the exam's report when a download is asked for (TAM_100 costs one more pass per view)."""
    from medlim.mammography.report import build_reports, reported_view

    def build():
        return build_reports([reported_view(v) for v in views], WeightsSummary.of(bac_model))[0]

    return build


def _downloads(views: list[AnalysedView], selected: AnalysedView, bac_model: BacModel, *, threshold: float) -> None:
    from medlim.mammography.report import report_stem

    save_column, mask_column, csv_column, json_column = st.columns(4)
    if save_column.button("Save to the patient's history", key="bac_save", type="primary",
                          help="Stores the readouts and TAM_100 (not the image) under the pseudonymous patient "
                          "key. Idempotent: saving again updates the same rows."):  # fmt: skip
        with show_medlim_errors(subject="Results store"):
            _save(views, bac_model)
    probability = selected.analysis.prediction.probability
    mask_column.download_button(
        f"Mask of {selected.label} (PNG)", lambda: ui.mask_png(probability, threshold=threshold),
        file_name=f"{Path(selected.download_label).stem}_bac_mask.png", mime="image/png", key="bac_download_mask",
        help="Full-size 8-bit mask: 255 where p > t, else 0.", on_click="ignore",
    )  # fmt: skip
    for index, ((patient_key, date), members) in enumerate(_exam_groups(views).items()):
        build, stem, suffix = _report_builder(members, bac_model), report_stem(patient_key, date), f"_{index}" if index else ""
        csv_column.download_button(f"Report {date or ''} (CSV)".replace("  ", " "), lambda b=build: b().to_csv(),
                                   file_name=f"{stem}.csv", mime="text/csv", key=f"bac_download_csv{suffix}",
                                   on_click="ignore")  # fmt: skip
        json_column.download_button(f"Report {date or ''} (JSON)".replace("  ", " "), lambda b=build: b().to_json(),
                                    file_name=f"{stem}.json", mime="application/json",
                                    key=f"bac_download_json{suffix}", on_click="ignore")  # fmt: skip


def _dicom_downloads(selected: AnalysedView, source: bytes | None, weights, columns) -> None:
    """SEG and SR of the selected view, in the mode the reader chose (DICOM sources only)."""
    from medlim.mammography.dicom_export import dataset_bytes, export_view_dicom

    mode = st.radio(
        "DICOM SEG and SR", list(DICOM_MODES), horizontal=True, key="bac_dicom_mode",
        help="De-identified: new study, series and instance UIDs and the pseudonymous patient key; no name, "
             "birth date, institution, accession number or physician from the file. Return to PACS: the "
             "source's UIDs, patient and study, so a viewer overlays the segmentation on the original.",
    )  # fmt: skip
    fmt = selected.record.metadata.source_format
    if fmt != "dicom" or source is None:
        columns[0].caption(f"DICOM SEG and SR are made from DICOM mammograms only; {selected.label} is a "
                           f"{fmt.upper()} file (its mask and the CSV/JSON/PDF reports are still offered).")  # fmt: skip
        return
    link, stem = DICOM_MODES.get(mode or "", False), Path(selected.download_label).stem
    build = functools.cache(lambda: export_view_dicom(selected, source, weights, link_to_source=link))
    columns[0].download_button(f"Segmentation of {selected.label} (DICOM SEG)",
                               lambda: dataset_bytes(build().segmentation), file_name=f"{stem}_seg.dcm",
                               mime="application/dicom", key="bac_download_seg", on_click="ignore")  # fmt: skip
    columns[1].download_button(f"Readouts of {selected.label} (DICOM SR)", lambda: dataset_bytes(build().report),
                               file_name=f"{stem}_sr.dcm", mime="application/dicom", key="bac_download_sr",
                               on_click="ignore")  # fmt: skip


def _clinical_downloads(views: list[AnalysedView], selected: AnalysedView, bac_model: BacModel,
                        sources: dict[str, bytes]) -> None:  # fmt: skip
    """DICOM SEG/SR of the selected view and a PDF report per exam, built by the room's functions."""
    from medlim.mammography.pdf_report import patient_exams, views_pdf
    from medlim.mammography.report import report_stem

    weights = WeightsSummary.of(bac_model)
    columns = st.columns(3)
    _dicom_downloads(selected, sources.get(selected.content_sha256), weights, columns)
    entry = bac_model.entry

    def pdf(members: list[AnalysedView], patient_key: str | None) -> bytes:
        store = ui.open_store_cached(get_settings().database_url) if patient_key else None
        history = patient_exams(patient_key, [v.readout() for v in members], store=store,
                                weights_name=entry.name, weights_version=str(entry.version))  # fmt: skip
        return views_pdf(members, weights, history=history)[1]

    for index, ((patient_key, date), members) in enumerate(_exam_groups(views).items()):
        columns[2].download_button(f"Report {date or ''} (PDF)".replace("  ", " "),
                                   lambda m=members, k=patient_key: pdf(m, k),
                                   file_name=f"{report_stem(patient_key, date)}.pdf", mime="application/pdf",
                                   key=f"bac_download_pdf{f'_{index}' if index else ''}", on_click="ignore",
                                   help="Views with the overlay, readouts per view and exam, the patient's "
                                   "history, the model and settings; no names or IDs.")  # fmt: skip


def _history(patient_keys: list[str], bac_model: BacModel) -> None:
    from medlim.mammography.history import patient_history

    st.subheader("History")
    st.caption(ui.CHANGE_RULE_HELP)
    if not patient_keys:
        st.info("The files carry no patient key, so there is no history to show.", icon=":material/info:")
        return
    store = ui.open_store_cached(get_settings().database_url)
    entry = bac_model.entry
    for patient_key in patient_keys:
        with show_medlim_errors(subject=f"Patient {patient_key}") as outcome:
            history = patient_history(store, patient_key, weights_name=entry.name, weights_version=str(entry.version))
        if outcome.failed:
            continue
        st.markdown(f"**Patient key {patient_key}** (pseudonymous) · {len(history.exams)} saved exam(s) with "
                    f"{bac_model.label} · Σ TAM_100 / breast area")  # fmt: skip
        if history.without_tam_100:
            st.caption(f"{history.without_tam_100} image(s) were saved before TAM_100 was kept: save them again.")
        if not history.exams:
            others = f" Saved with other weights: {', '.join(history.other_weights)}." if history.other_weights else ""
            st.caption("No saved exams for this patient with these weights yet: press *Save to the patient's "
                       f"history*.{others}")  # fmt: skip
            continue
        if len(history.thresholds) > 1:
            st.caption("The exams were saved at different cut-offs "
                       f"({', '.join(f'{t:g}' for t in history.thresholds)}); compare with care.")  # fmt: skip
        st.plotly_chart(ui.history_figure(history), key=f"bac_history_{patient_key}", config={"displaylogo": False})
        if history.changes:
            st.dataframe(pd.DataFrame(ui.change_rows(history.changes)), hide_index=True)
        else:
            st.caption("One exam saved: the change flags appear from the second exam on.")


# ----------------------------------------------------------------------------- tabs


def _exam_tab(bac_model: BacModel) -> None:
    sources = _exam_sources()
    if not sources:
        st.info("Upload a mammogram or a four-view exam, or open a sample exam, to start.", icon=":material/upload:")
        return
    spacing = _pixel_spacing_field(st, "bac_pixel_spacing")
    analysed = _complete_view_labels(_analyse(sources, bac_model, spacing))
    if not analysed:
        return
    threshold, x = _cutoff_sliders(bac_model)
    views = sorted(
        (AnalysedView(analysis, requantify(analysis, threshold=threshold, x=x, table=table), record, digest, label,
                      table) for analysis, record, digest, label, table in analysed),
        key=lambda v: (v.analysis.study_date or "", VIEW_ORDER.get(v.label, 9), v.label),
    )  # fmt: skip
    readouts = {v.content_sha256: v.readout() for v in views}
    st.caption(numbers_from(bac_model, threshold=threshold, x=x, rule=views[0].metrics.intensity_rule))
    for view in views:
        for warning in view.analysis.warnings:
            st.warning(f"**{view.label}** ({view.record.name}): {warning}", icon=":material/warning:")

    dates = {v.analysis.study_date for v in views}
    labels = [f"{v.label} {v.analysis.study_date}" if len(dates) > 1 else v.label for v in views]
    chosen = st.radio("View", labels, horizontal=True, key="bac_view")
    selected = views[labels.index(chosen)] if chosen in labels else views[0]
    _show_view_metrics(readouts[selected.content_sha256], selected.record)
    _show_image(selected, bac_model, threshold=threshold)

    st.subheader("Readouts per view and per exam")
    groups = _exam_groups(views)
    for (patient_key, date), members in groups.items():
        if len(groups) > 1:
            st.markdown(f"**Exam {date or '—'}** · patient key {patient_key or '—'}")
        _readout_table(members, readouts, x)
    unplaced = [v.label for v in views if not (v.analysis.patient_key and v.analysis.study_date
                                                and v.analysis.view and v.analysis.laterality)]  # fmt: skip
    if unplaced:
        st.caption(f"Not in an exam readout (no patient, date, view or laterality in the file): {', '.join(unplaced)}.")

    _downloads(views, selected, bac_model, threshold=threshold)
    _clinical_downloads(views, selected, bac_model, {ui.content_digest(s.data, s.identity): s.data for s in sources})
    saved_for, note = st.session_state.get("bac_saved_note", (None, None))
    if note and saved_for == _saved_key(views):  # only for the exam and settings that were saved
        st.success(note, icon=":material/check_circle:")
    _history(sorted({v.analysis.patient_key for v in views if v.analysis.patient_key}), bac_model)


def _batch_sources(uploaded, use_samples: bool, exams) -> list[tuple[str, bytes | Path]]:  # noqa: ANN001
    """The uploads (zips expanded) and, when asked, the bundled samples, as ``(name, bytes or path)``."""
    sources: list[tuple[str, bytes | Path]] = []
    with show_medlim_errors(subject="Upload"):
        sources = list(expand_uploads((f.name, f.getvalue()) for f in uploaded or []))
    if use_samples:
        root = get_settings().samples_dir
        sources += [(p.relative_to(root).as_posix(), p) for exam in exams for p in exam.files]
    return sources


def _submit_batch(sources: list[tuple[str, bytes | Path]], argv_options: list[str]) -> None:
    """Queue ``medlim bac quantify`` over the files as a job (issue 15): uploads are written to a job folder
    inside the data roots first, so the worker reads them after the tab has closed."""
    import uuid

    from medlim.core.job_folders import job_folder, write_job_files
    from medlim.core.paths import is_within_data_roots
    from medlim.ui.jobs import submit_page_job

    paths: list[str] = []
    with show_medlim_errors(subject="Upload"):
        readable = [isinstance(data, Path) and is_within_data_roots(data) for _name, data in sources]
        written = iter(write_job_files(job_folder("uploads", f"bac-{uuid.uuid4().hex[:12]}"), [
            (name, data if isinstance(data, bytes) else Path(data).read_bytes())
            for (name, data), ok in zip(sources, readable) if not ok]))
        paths = [str(data) if ok else str(next(written)) for (_name, data), ok in zip(sources, readable)]
    if not paths:
        return
    job = submit_page_job("bac.quantify", ["bac", "quantify", *paths, *argv_options], state_key=BATCH_JOB_KEY)
    if job is not None:  # the names shown in this session (the job's rows carry pseudonymous labels)
        st.session_state.setdefault("bac_batch_names", {})[job.id] = [name for name, _data in sources]
        st.rerun()


def _batch_names(job, rows: list[dict]) -> dict[str, str]:  # noqa: ANN001 - a finished Job
    """Put the names this session uploaded into ``rows`` (in place); returns shown name → pseudonymous label."""
    names = st.session_state.get("bac_batch_names", {}).get(job.id)
    labels = {}
    for row in rows:
        label = str(row.get("file") or "")
        if names and 0 < int(row.get("index", 0)) <= len(names):
            row["file"] = names[int(row["index"]) - 1]
        labels[str(row.get("file") or "")] = label
    return labels


def _batch_done(job, *, bac_model: BacModel) -> None:  # noqa: ANN001 - a finished Job
    """A finished batch: the views, the exams, a distribution, CSV/JSON, and any view opened in the exam viewer.

    Every number comes from the job's stored result (``medlim jobs show ID --json``: ``rows`` and ``exams``),
    through :func:`medlim.mammography.batch_results.batch_results`.
    """
    import json

    from medlim.mammography.batch_results import batch_results
    from medlim.mammography.report import csv_bytes, pseudonymous_rows

    results = None
    with show_medlim_errors(subject=f"Batch job {job.id}"):
        results = batch_results(job.result or {})
    if results is None:
        return
    rows = [ui.flat_batch_row(row) for row in results.rows]
    labels = _batch_names(job, rows)
    st.markdown(f"**{results.files} files**, {results.failed} could not be analysed"
                + (f", {results.reused} read back from the results store." if results.reused else "."))
    frame = pd.DataFrame(rows).drop(columns=["patient_key", "warnings", "index"], errors="ignore")
    st.dataframe(frame, hide_index=True, key=None)
    x = next((float(r.x) for r in results.readouts if r is not None), 100.0)
    if results.exams:
        st.markdown("**Per exam** (views of one patient key at one study date, summed)",
                    help=ui.METRIC_HELP["TAM_X / breast area"])  # fmt: skip
        help_for = {"PM": "PM", "AM (px)": "AM", "AM (mm²)": "AM", "SIM": "SIM", f"TAM_{x:g} (px)": "TAM_X",
                    f"TAM_{x:g} (mm²)": "TAM_X", f"TSIM_{x:g}": "TSIM_X",
                    f"Σ TAM_{x:g} / breast area": "TAM_X / breast area"}  # fmt: skip
        config = {name: st.column_config.NumberColumn(name, help=f"Summed over the exam's views. {ui.METRIC_HELP[key]}")
                  for name, key in help_for.items()}  # fmt: skip
        config["Σ TAM_100 / breast area"] = st.column_config.NumberColumn(
            "Σ TAM_100 / breast area", help="The exam's burden in the patient's history (X = 100).", format="%.2e")
        st.dataframe(pd.DataFrame(ui.batch_exam_rows(results.exams, x)), hide_index=True, column_config=config,
                     key=None)  # fmt: skip
    elif any(r is not None for r in results.readouts):
        st.caption("No per-exam totals: the files record no patient key and study date.")
    if results.views_in_no_exam and results.exams:
        st.caption(f"{results.views_in_no_exam} view(s) record no patient key or study date: in no exam.")
    _batch_distribution(results, x)
    csv_column, json_column = st.columns(2)
    csv_column.download_button("Results (CSV)", csv_bytes(pseudonymous_rows(rows, labels)), file_name="bac_batch.csv",
                               mime="text/csv", key="bac_batch_download")  # fmt: skip
    json_column.download_button(
        "Results (JSON)", json.dumps({"job": job.id, **(job.result or {})}, ensure_ascii=False).encode("utf-8"),
        file_name="bac_batch.json", mime="application/json", key="bac_batch_download_json",
        help="The job's result as `medlim jobs show ID --json` prints it: rows by pseudonymous label, and exams.",
    )  # fmt: skip
    _batch_open_view(job, results, rows, bac_model)


def _batch_distribution(results, x: float) -> None:  # noqa: ANN001 - BatchResults
    from medlim.mammography.batch_results import DISTRIBUTION_METRICS

    present = {key: label.replace("_X", f"_{x:g}") for key, label in DISTRIBUTION_METRICS.items()
               if results.distribution(key)[0]}
    if not present:
        return
    metric = st.selectbox("Distribution over the views", list(present), format_func=present.get,
                          key="bac_batch_metric")  # fmt: skip
    values, views = results.distribution(metric or next(iter(present)))
    st.plotly_chart(ui.batch_distribution_figure(values, views, title=present[metric or next(iter(present))]),
                    key="bac_batch_distribution", config={"displaylogo": False})  # fmt: skip


def _open_batch_view(job_id: int, names: dict[int, str], cutoffs: dict[int, tuple[float, float]],
                     spacing: float | None, weights: tuple[str, str, str]) -> None:
    """Open the chosen view in the Exam tab at the batch's cut-off, X and stated spacing (a button's callback)."""
    index = int(st.session_state["bac_batch_view"])
    st.session_state[OPENED_VIEW_KEY] = {"job": job_id, "index": index, "name": names[index]}
    threshold, x = cutoffs[index]
    st.session_state["bac_defaults_for"] = weights  # these weights' sliders: not reset to their defaults
    set_owned("bac_threshold", round(threshold, 2))
    set_owned("bac_x", int(round(x)))
    st.session_state["bac_pixel_spacing"] = spacing if spacing is not None and 0 < spacing <= 5.0 else 0.0
    st.session_state[TABS_KEY] = "Exam"


def _batch_open_view(job, results, rows: list[dict], bac_model: BacModel) -> None:  # noqa: ANN001 - Job, BatchResults
    """Choose one analysed view of the batch and open it in the exam viewer (Exam tab)."""
    openable = {int(row["index"]): str(row.get("file") or row["index"]) for row, readout in zip(rows, results.readouts)
                if readout is not None and "index" in row}  # fmt: skip
    if not openable:
        return
    request = None
    with show_medlim_errors(subject=f"Batch job {job.id}"):
        request = _batch_request(job)
    if request is None:
        return
    argv = list(job.parameters.get("argv", []))
    weights = argv[argv.index("--weights") + 1] if "--weights" in argv[:-1] else None
    current = st.session_state.get(WEIGHTS_ARG_KEY)
    same = weights is None or weights == current
    spacing = request.pixel_spacing_mm if isinstance(request.pixel_spacing_mm, float) else None
    cutoffs = {int(row["index"]): (float(r.threshold), float(r.x)) for row, r in zip(rows, results.readouts)
               if r is not None and "index" in row}  # fmt: skip
    choice_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    choice_column.selectbox("Open a view in the exam viewer", list(openable), format_func=openable.get,
                            key="bac_batch_view")  # fmt: skip
    button_column.button(
        "Open in the Exam tab", key="bac_batch_open", on_click=_open_batch_view,
        args=(job.id, openable, cutoffs, spacing,
              (bac_model.entry.name, str(bac_model.entry.version), bac_model.entry.sha256)), disabled=not same,
        help="The view with its overlay, zoom and live sliders, from the job's stored analysis (no new "
             "inference)." if same else f"This batch ran with {weights}: choose those weights in the sidebar to "
             "open its views.",
    )  # fmt: skip
    if not same:
        st.caption(f"This batch ran with **{weights}**; the sidebar has **{current}**. Choose the batch's weights "
                   "to open its views.")  # fmt: skip


def _batch_tab(bac_model: BacModel) -> None:
    from medlim.ui.jobs import follow_job, page_job

    st.caption(
        "Many mammograms at once — the same numbers as `medlim bac quantify`, run as a job in the app's worker: "
        "it goes on when you leave this page or close the tab. A bad file is reported in the table and the run "
        "goes on."
    )
    job = None
    with show_medlim_errors(subject="Batch job"):
        job = page_job(BATCH_JOB_KEY, "bac.quantify")
    if job is not None:
        follow_job(job, key=BATCH_JOB_KEY, render_done=functools.partial(_batch_done, bac_model=bac_model))
    uploaded = st.file_uploader(
        "Mammograms or .zip archives of them", accept_multiple_files=True, key="bac_batch_upload"
    )
    exams = sample_exams(get_settings().samples_dir)
    use_samples = bool(exams) and st.checkbox("Add all bundled sample mammograms", key="bac_batch_samples")
    left, middle, right = st.columns(3)
    threshold = left.number_input("Probability cut-off t", 0.0, 1.0, float(bac_model.threshold), 0.01,
                                  key="bac_batch_threshold", help=_cutoff_help(bac_model))  # fmt: skip
    x = middle.number_input("Intensity threshold X", 0.0, 255.0, float(bac_model.x), 1.0, key="bac_batch_x")
    save = right.checkbox("Save to the results store", value=True, key="bac_batch_save")
    resume = right.checkbox("Reuse stored results (resume)", value=False, key="bac_batch_resume", disabled=not save)
    spacing = _pixel_spacing_field(left, "bac_batch_pixel_spacing")
    if st.button("Quantify", key="bac_batch_run", type="primary"):
        sources = _batch_sources(uploaded, use_samples, exams)
        if not sources:
            st.info("Add files first.", icon=":material/upload:")
            return
        options = ["--weights", str(st.session_state.get(WEIGHTS_ARG_KEY) or bac_model.entry.label),
                   "--threshold", repr(float(threshold)), "--x", repr(float(x)),
                   *(["--resume"] if resume and save else []), *([] if save else ["--no-store"]),
                   *(["--pixel-spacing", repr(float(spacing))] if spacing is not None else [])]
        _submit_batch(sources, options)


ensure_app_shell()
st.title("Breast arterial calcification")
st.caption(
    "SCU-Net marks calcified breast arteries and measures them per view, per exam and across years "
    "(thesis §3.3). Research use only — not for diagnosis."
)
bac_model = _choose_model()
if bac_model is not None:
    # keyed, so opening a view of a finished batch can bring the Exam tab forward (both tabs still run)
    exam_tab, batch_tab = st.tabs(["Exam", "Batch"], key=TABS_KEY, on_change="rerun")
    with exam_tab:
        _exam_tab(bac_model)
    with batch_tab:
        _batch_tab(bac_model)
