"""Curation workspace: MedShift on an external dataset, then keep/drop decisions (thesis ch. 5).

Choose the internal and the external dataset (generated phantoms, a folder on
the server, or an uploaded zip of ``<class>/`` folders), see what the run will
use (images per class, files left out, what would stop it: ``medlim shift check``),
train the per-class
detectors and G and score the external images as a job (it survives a closed
tab; the page finds it again and follows its progress); then see the
score histograms (Figs. 5.5–5.6), the elbow curve, the group galleries in
ascending score (Figs. 5.8–5.9), the TOP-k table (Table 5.2) and the OTDD
curve, tag images or whole groups keep/drop (saved in the results store) and
export the curated manifest. A stored run can be reopened later by its name.

Every number here comes from :mod:`medlim.curation.shift.service`, which
``medlim shift run|show|topk|export`` call too; the run settings start at
:class:`~medlim.curation.shift.service.ShiftRunConfig`'s defaults, the CLI's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from medlim.settings import get_settings
from medlim.ui.errors import show_medlim_errors
from medlim.ui.shell import ensure_app_shell

PER_PAGE = 12
GRID = 4
JOB_KEY = "cur_job"
SITES = ("internal", "mixed", "external", "mix0.3-1x0.5", "named0.05-1x0.5")
SITE_NAMES = {"internal": "internal", "mixed": "mixed (half shifted, severity 0–1)", "external": "external (all shifted)",
              "mix0.3-1x0.5": "half shifted, severity 0.3–1",
              "named0.05-1x0.5": "half shifted by one named shift each (blur, low resolution, cast, noise, grid, "
                                 "exposure, tint), severity 0.05–1"}


def _dataset_picker(role: str, default: Any) -> str | None:
    """A dataset source spec for ``role`` (``internal`` / ``external``), or ``None`` when incomplete.

    ``default`` is a :class:`~medlim.curation.shift.service.PhantomChoice` (the README's evidence sets).
    """
    from medlim.phantoms.radiograph import BODY_PARTS

    st.markdown(f"**{role.capitalize()} dataset**")
    kind = st.radio("Source", ("Generated phantoms", "Folder on the server", "Upload a zip"), horizontal=True,
                    key=f"cur_{role}_kind", label_visibility="collapsed")
    if kind == "Generated phantoms":
        columns = st.columns(3)
        seed = int(columns[0].number_input("Seed", min_value=0, value=default.seed, key=f"cur_{role}_seed"))
        per_class = int(columns[1].number_input("Per class", min_value=5, max_value=2000, value=default.per_class,
                                                key=f"cur_{role}_n"))
        site = columns[2].selectbox("Site", SITES, index=SITES.index(default.site), key=f"cur_{role}_site",
                                    format_func=SITE_NAMES.get)
        parts = st.multiselect("Body parts", BODY_PARTS, default=list(default.body_parts or BODY_PARTS),
                               key=f"cur_{role}_parts")
        if len(parts) < 2:
            st.info("Pick at least two body parts.")
            return None
        return f"phantom:{site}:{seed}:{per_class}:{','.join(parts)}"
    if kind == "Folder on the server":
        return _server_folder(role)
    upload = st.file_uploader("Zip of <class>/ folders", type=["zip"], key=f"cur_{role}_zip",
                              help="Unpacked for this session only (removed when it ends) unless you keep it.")
    if upload is None:
        return None
    kept = st.session_state.get(f"cur_{role}_kept")
    if kept and kept[0] == upload.file_id and Path(kept[2]).is_dir():
        st.caption(f"Kept as dataset “{kept[1]}” in `{kept[2]}`: open it later under “Folder on the server”.")
        return kept[2]
    folder = _unpacked(role, upload)
    return None if folder is None else _keep_form(role, upload.file_id, folder)


def _server_folder(role: str) -> str | None:
    """A folder typed by the user, confined to the data roots (one message for anything outside them)."""
    from medlim.core.paths import allowed_roots_text, confine_to_data_roots

    typed = st.text_input(
        "Folder with one sub-folder per class", key=f"cur_{role}_folder",
        help=f"A folder inside the data folders this app may read: {allowed_roots_text()} "
             "(a relative path is taken under the first). Kept uploads are in the datasets folder.")
    if not typed.strip():
        return None
    folder = None
    with show_medlim_errors(subject="Dataset folder"):
        folder = confine_to_data_roots(typed, what="dataset folder")
    return None if folder is None else str(folder)


def _unpacked(role: str, upload) -> str | None:  # noqa: ANN001 - a Streamlit UploadedFile
    """The upload unpacked (once per upload) into this session's temporary folder; ``None`` when refused."""
    from medlim.curation.shift.data import extract_zip
    from medlim.ui.session_files import session_tmp_dir

    state = f"cur_{role}_unpacked"
    done = st.session_state.get(state)
    if done and done[0] == upload.file_id and Path(done[1]).is_dir():
        return done[1]
    folder = None
    with show_medlim_errors(subject="Zip upload"):
        folder = str(extract_zip(upload.getvalue(), session_tmp_dir() / "uploads", label=upload.name))
    if folder is not None:
        st.session_state[state] = (upload.file_id, folder)
    return folder


def _keep_form(role: str, file_id: str, folder: str) -> str:
    """The "Keep this dataset" form: move the unpacked upload to ``MEDLIM_HOME/datasets/<name>``; the folder to use."""
    from medlim.curation.shift.data import keep_dataset

    columns = st.columns([3, 2], vertical_alignment="bottom")
    name = columns[0].text_input(
        "Keep this dataset as", key=f"cur_{role}_keep_name", placeholder="e.g. partner-hospital-2024",
        help="The unpacked upload is removed when this session ends; kept, it moves to the datasets folder "
             "(a data folder) and stays.")
    if columns[1].button("Keep this dataset", key=f"cur_{role}_keep", disabled=not name.strip()):
        with show_medlim_errors(subject="Keep this dataset") as outcome:
            path = keep_dataset(folder, get_settings().datasets_dir, name)
        if not outcome.failed:
            st.session_state[f"cur_{role}_kept"] = (file_id, path.name, str(path))
            st.caption(f"Kept as dataset “{path.name}” in `{path}`: open it later under “Folder on the server”.")
            return str(path)
    return folder


def _data_check(internal_spec: str, external_spec: str) -> Any | None:
    """What the run will use, as ``medlim shift check`` prints it: images per class, the files left out and
    what would stop the run; ``None`` when a dataset cannot be listed (said in an error box).

    Only the listing is used (first bytes, cached until a class folder changes): no pixels are decoded here.
    """
    from medlim.core.text import counted
    from medlim.curation.shift.check import check_shift_data
    from medlim.ui.curation import image_set_cached, listing_stamp

    listed = {}
    for role, spec in (("internal", internal_spec), ("external", external_spec)):
        with show_medlim_errors(subject=f"{role.capitalize()} dataset") as outcome:
            listed[role] = image_set_cached(spec, listing_stamp(spec))[0]
        if outcome.failed:
            return None
    check = check_shift_data(listed["internal"], listed["external"])
    st.markdown("**What the run will use**")
    st.dataframe(pd.DataFrame([row.to_json() for row in check.classes]), hide_index=True, key="cur_check_classes")
    if check.left_out:
        st.warning(f"{counted(len(check.left_out), 'file')} left out, no image the reader takes (the table counts "
                   "the others):", icon=":material/warning:")
        st.dataframe(pd.DataFrame([item.to_json() for item in check.left_out]), hide_index=True,
                     key="cur_check_left_out")
    for note in check.notes:
        st.info(note)
    for problem in check.problems:
        st.error(f"The run cannot start: {problem}", icon=":material/error:")
    return check


def _settings_form() -> Any:
    """The run settings, every widget starting at :class:`ShiftRunConfig`'s default (the CLI's)."""
    from medlim.curation.shift.service import ShiftRunConfig

    default = ShiftRunConfig()
    with st.expander("Settings"):
        columns = st.columns(4)
        detector = columns[0].selectbox("Detector", ("cvad", "tend"), index=("cvad", "tend").index(default.detector),
                                        key="cur_detector")
        k_options = ("auto", "2", "3", "4", "5", "6", "7", "8")
        k_text = columns[1].selectbox("Groups k", k_options, index=k_options.index(str(default.k)), key="cur_k",
                                      help="auto: the elbow of the distortion curve (max distance below the chord); "
                                           "the thesis used 5")
        scales = ("log", "raw")
        scale = columns[2].selectbox("Grouping scale", scales, index=scales.index(default.group_scale), key="cur_scale",
                                     help="k-means on log scores (a stated deviation) or on raw scores (the thesis)")
        size = int(columns[3].number_input("Detector side (px)", min_value=32, max_value=256, step=32,
                                           value=default.size, key="cur_size",
                                           help="a multiple of 32 for CVAD, of 64 for TEND"))
        columns = st.columns(3)
        epochs = int(columns[0].number_input(
            "Detector epochs", min_value=1, max_value=500, value=default.epochs, key="cur_epochs",
            help="each class's detector (CVAD VAE / TEND autoencoder); the shift evidence was measured with "
                 f"{default.epochs}; fewer is faster but separates shifted images less well"))
        head_epochs = int(columns[1].number_input("Head epochs", min_value=1, max_value=500, value=default.head_epochs,
                                                  key="cur_head_epochs", help="CVAD discriminator / TEND head epochs"))
        g_epochs = int(columns[2].number_input("G epochs", min_value=1, max_value=200, value=default.classifier_epochs,
                                               key="cur_g_epochs", help="epochs of the classifier G (ResNet-18)"))
        columns = st.columns(4)
        anchored = columns[3].checkbox(
            "Lowest group below threshold", value=default.group_anchor == "threshold", key="cur_anchor",
            help="each class's lowest group is exactly its images scoring below the class detector's calibrated "
                 "threshold (like the internal data), k-means groups the rest — a stated deviation; off: k-means "
                 "of all scores (the thesis, --group-anchor none)")
        columns = st.columns(4)
        stats = columns[3].checkbox(
            "Acquisition statistics", value=default.stats, key="cur_stats",
            help="fuse each image's detector score with a score of its acquisition statistics (noise, sharpness, "
                 "grid lines, exposure, casts) — a stated deviation that finds mild shifts; off: the thesis's "
                 "detector score alone (--stats off)")
        repeats = int(columns[0].number_input("OTDD repeats", min_value=1, max_value=50, value=default.otdd_repeats,
                                              key="cur_repeats"))
        samples = int(columns[1].number_input("OTDD samples", min_value=10, max_value=5000,
                                              value=default.otdd_max_samples, key="cur_samples",
                                              help="samples per side and repeat"))
        features = ("embedding", "pixels")
        feature = columns[2].selectbox("OTDD features", features, index=features.index(default.features),
                                       key="cur_features")
    return dataclasses.replace(default, detector=detector, k="auto" if k_text == "auto" else int(k_text),
                               group_scale=scale, group_anchor="threshold" if anchored else "none",
                               size=size, epochs=epochs, head_epochs=head_epochs,
                               classifier_epochs=g_epochs, otdd_repeats=repeats, otdd_max_samples=samples,
                               features=feature, stats=stats)


def _replace_confirmed(name: str, stored: tuple[str, ...]) -> bool | None:
    """Whether a run may be saved as ``name``: ``False`` free, ``True`` replacing confirmed, ``None`` not confirmed."""
    if name.strip() not in stored:
        return False
    st.warning(f"A run is saved as “{name.strip()}”. Saving this one under the same name replaces it.")
    confirmed = st.checkbox(f"Replace the saved run {name.strip()} (its tags are deleted)", key="cur_replace")
    return True if confirmed else None


def _run_form(stored: tuple[str, ...]) -> None:
    """The run's datasets and settings; "Train and score" queues ``medlim shift run`` as a job (issue 15)."""
    import uuid

    from medlim.core.job_folders import job_folder
    from medlim.curation.shift.service import (
        EVIDENCE_EXTERNAL,
        EVIDENCE_INTERNAL,
        check_run_name,
        shift_run_argv,
    )
    from medlim.ui.jobs import submit_page_job
    from medlim.ui.stores import open_store_cached

    left, right = st.columns(2)
    with left:
        internal_spec = _dataset_picker("internal", EVIDENCE_INTERNAL)
    with right:
        external_spec = _dataset_picker("external", EVIDENCE_EXTERNAL)
    with st.container():  # one element, whatever the check shows (a spinner, warnings): the settings below keep
        # their place in the page, so an open "Settings" expander is not redrawn closed on the next rerun
        check = _data_check(internal_spec, external_spec) if internal_spec and external_spec else None
    config = _settings_form()
    name = st.text_input("Save the run as", value="external", key="cur_name",
                         help="the dataset name in the results store; reopen it later from the list above")
    replace = _replace_confirmed(name, stored)
    ready = check is not None and check.ok and replace is not None
    st.caption("The run is a job in the app's worker: it goes on when you leave this page or close the tab.")
    if not st.button("Train and score", type="primary", key="cur_run", disabled=not ready):
        return
    argv = None
    with show_medlim_errors(subject="MedShift run"):  # a taken or unsafe name is refused before the job
        name = check_run_name(open_store_cached(get_settings().database_url), name, replace=bool(replace))
        argv = shift_run_argv(_job_readable(internal_spec), _job_readable(external_spec), config,
                              out=job_folder("shift-runs", f"run-{uuid.uuid4().hex[:12]}"), dataset=name,
                              replace=bool(replace))
    if argv is not None and submit_page_job("shift.run", argv, state_key=JOB_KEY) is not None:
        st.rerun()


def _job_readable(spec: str) -> str:
    """A dataset spec the worker can read after the tab closes: an unpacked upload is copied into the data roots."""
    import shutil
    import uuid

    from medlim.core.job_folders import job_folder
    from medlim.core.paths import is_within_data_roots

    if spec.startswith("phantom:") or is_within_data_roots(spec):
        return spec
    copy = job_folder("uploads", f"shift-{uuid.uuid4().hex[:12]}")
    shutil.copytree(spec, copy, dirs_exist_ok=True)
    return str(copy)


def _run_done(job: Any) -> None:
    from medlim.ui.jobs import dismiss_job, result_output

    argv = job.parameters.get("argv") or []
    name = argv[argv.index("--dataset") + 1] if "--dataset" in argv else None
    summary = next((value for value in result_output(job) if isinstance(value, dict)), {})
    took = f" in {summary['seconds']:.0f} s" if isinstance(summary.get("seconds"), (int, float)) else ""
    st.success(f"MedShift run “{name}” finished{took}: it is open below, and stays in the run list.",
               icon=":material/check_circle:")
    if name and st.session_state.get("cur_job_opened") != job.id:  # open the new run once, then leave the choice
        st.session_state["cur_job_opened"] = job.id
        st.session_state["cur_pending"] = name
    if name and st.button(f"Open the run “{name}”", key="cur_job_open"):
        dismiss_job(JOB_KEY)
        st.session_state["cur_pending"] = name
        st.rerun()


def _run_job() -> bool:
    """The MedShift job this page follows, drawn; whether one is shown."""
    from medlim.ui.jobs import follow_job, page_job

    job = None
    with show_medlim_errors(subject="MedShift job"):
        job = page_job(JOB_KEY, "shift.run")
    if job is None:
        return False
    st.subheader("MedShift run")
    follow_job(job, key=JOB_KEY, render_done=_run_done)
    return True


@st.dialog("Image", width="large")
def _enlarge(source: str, file: str, score: float) -> None:
    from medlim.ui.curation import thumbnails_cached

    st.image(thumbnails_cached(source, (file,), 512)[0], caption=f"{file} · score {score:.4f}", clamp=True)


def _images_present(source: str) -> bool:
    """Whether the images of a stored run can still be read (phantoms always; a folder while it exists)."""
    return source.startswith("phantom:") or (bool(source) and Path(source).is_dir())


def _metrics(run: Any) -> None:
    summary = run.summary()
    columns = st.columns(4)
    columns[0].metric("External images", summary["external_images"])
    columns[1].metric("Groups per class (k)", summary["k"])
    columns[2].metric("Tagged", summary["tagged"])
    if summary["auroc"] is not None:
        columns[3].metric("AUROC vs known shift", f"{summary['auroc']:.3f}",
                          help="AUROC of the score against the images known to be shifted (phantoms' ground truth)")


def _scores_tab(run: Any) -> None:
    from medlim.curation.shift.report import elbow_figure, histogram_figure

    report = run.report
    st.plotly_chart(histogram_figure(report.internal_scores, [s.score for s in run.scores],
                                     [s.class_name for s in run.scores]), key="cur_hist")
    st.plotly_chart(elbow_figure(report.elbow_ks, report.elbow_distortion, report.k), key="cur_elbow")
    log = report.group_scale == "log"
    st.caption(f"k rule: {report.k_rule} · k-means on {'log' if log else 'raw'} scores"
               + (" (groups bordered at score ratios; the thesis clusters raw scores)" if log else "")
               + (" · group 0 is each class's images below its detector's calibrated threshold, k-means groups the "
                  "rest (the thesis clusters all scores)" if report.group_anchor == "threshold" else ""))
    if report.class_elbows:
        st.caption("Each class's own elbow (the shared k comes from the mean curve): "
                   + ", ".join(f"{name} {value}" for name, value in sorted(report.class_elbows.items())))


def _shift_types(run: Any) -> None:
    """Detection per shift type, when the external images carried one (``medlim shift show``'s table)."""
    from medlim.curation.ood.plots import shift_type_figure

    table = run.shift_types
    st.subheader("Detection per shift type")
    st.caption(f"Share of each shift type above its class detector's calibrated threshold, and its AUROC against "
               f"the {table.source} (`medlim shift show {run.name}`).")
    st.dataframe(pd.DataFrame(table.wide_rows()), hide_index=True, key="cur_shift_table")
    columns = st.columns(2)
    columns[0].plotly_chart(shift_type_figure(table, metric="detected"), key="cur_shift_detected")
    columns[1].plotly_chart(shift_type_figure(table, metric="auroc"), key="cur_shift_auroc")


def _groups_tab(run: Any, store: Any) -> None:
    from medlim.core.store.curation import tag_group
    from medlim.ui.curation import gallery_page

    st.dataframe(pd.DataFrame([g.to_json() for g in run.group_table()]), hide_index=True, key="cur_groups_table")
    k = run.report.k
    columns = st.columns(3)
    class_name = columns[0].selectbox("Class", run.classes, key="cur_class")
    group = int(columns[1].selectbox("Group (0 = lowest scores)", list(range(k)), index=k - 1, key="cur_group"))
    items = run.gallery(class_name, group)
    page_count = max(1, -(-len(items) // PER_PAGE))
    page = int(columns[2].number_input(f"Page (of {page_count})", min_value=1, max_value=page_count, value=1,
                                       key="cur_page")) - 1
    actions = st.columns(3)
    for column, (label, tag) in zip(actions, (("Keep whole group", "keep"), ("Drop whole group", "drop"),
                                              ("Clear group tags", None))):
        if column.button(label, key=f"cur_group_{tag or 'clear'}"):
            changed = tag_group(store, run.name, method=run.report.method, class_name=class_name, group=group, tag=tag)
            st.toast(f"{changed} image(s) changed")
            st.rerun()
    _gallery(run, store, gallery_page(items, page, PER_PAGE).rows)


def _gallery(run: Any, store: Any, shown: tuple[Any, ...]) -> None:
    from medlim.core.store.curation import set_tags
    from medlim.ui.curation import thumbnails_cached

    source = run.report.external_source
    if not shown:
        st.info("This group is empty.")
        return
    if not _images_present(source):
        st.info("The images of this run were a temporary upload and are no longer on the server; scores and "
                "tags remain. Keep an uploaded dataset (“Keep this dataset”) to see its images later.")
        return
    with show_medlim_errors(subject="thumbnails") as outcome:
        pictures = thumbnails_cached(source, tuple(item.file for item in shown))
    if outcome.failed:
        return
    grid = st.columns(GRID)
    for i, (item, picture) in enumerate(zip(shown, pictures)):
        with grid[i % GRID]:
            mark = f" · {item.tag}" if item.tag else ""
            st.image(picture, caption=f"score {item.score:.4f}{mark}", clamp=True, use_container_width=True)
            buttons = st.columns(3)
            if buttons[0].button("View", key=f"cur_big_{item.file}", icon=":material/zoom_in:", help="enlarge"):
                _enlarge(source, item.file, item.score)
            for column, tag in ((buttons[1], "keep"), (buttons[2], "drop")):
                if column.button(tag.capitalize(), key=f"cur_{tag}_{item.file}", help=f"tag {tag}"):
                    set_tags(store, run.name, {item.file: tag})
                    st.rerun()


def _topk_tab(run: Any) -> None:
    from medlim.curation.shift.report import otdd_figure

    st.dataframe(pd.DataFrame([row.to_json() for row in run.topk_table()]), hide_index=True, key="cur_topk")
    report = run.report
    st.plotly_chart(otdd_figure(report.levels, report.otdd_mean, report.otdd_std, report.macro_f1), key="cur_otdd")


def _export_tab(run: Any) -> None:
    from medlim.ui.curation import curated_csv

    options = ["none", *range(1, run.report.k)]
    drop_from = st.selectbox("Also leave out untagged images of groups ≥", options, key="cur_drop_from")
    kept = run.curated(None if drop_from == "none" else int(drop_from))
    st.caption(f"{len(kept)} of {run.images} images kept.")
    st.caption("Files are named by pseudonymous labels (a keyed hash of each file's path in the dataset), "
               "so the manifest carries no file names.")
    st.download_button("Download the curated manifest (CSV)", curated_csv(kept),
                       file_name=f"{run.name}-curated.csv", mime="text/csv", key="cur_export")


def _workspace(name: str) -> None:
    from medlim.curation.shift.service import open_run
    from medlim.ui.stores import open_store_cached

    settings = get_settings()
    with show_medlim_errors(subject=name) as outcome:
        store = open_store_cached(settings.database_url)
        run = open_run(store, settings.home, name)
    if outcome.failed:
        return
    _metrics(run)
    names = ["Scores", "Groups", "TOP-k and OTDD", "Export"] + (["Shift types"] if run.shift_types is not None else [])
    scores_tab, groups_tab, topk_tab, export_tab, *shift_tab = st.tabs(names)
    with scores_tab:
        _scores_tab(run)
    with groups_tab:
        _groups_tab(run, store)
    with topk_tab:
        _topk_tab(run)
    with export_tab:
        _export_tab(run)
    for tab in shift_tab:
        with tab:
            _shift_types(run)


def main() -> None:
    ensure_app_shell()
    st.title("Curation decisions")
    st.caption("MedShift (thesis ch. 5): find the shift data of an external dataset, group it by anomaly score, "
               "measure it, keep or drop it. Research use only, not for diagnosis.")
    from medlim.core.store.curation import list_datasets
    from medlim.ui.stores import open_store_cached

    with show_medlim_errors(subject="results store") as outcome:
        stored = list_datasets(open_store_cached(get_settings().database_url), with_scores=True)
    if outcome.failed:
        return
    _run_job()
    options = ["New run…", *stored]
    pending = st.session_state.pop("cur_pending", None)
    if pending in options:
        st.session_state["cur_choice"] = pending
    choice = st.selectbox("Run", options, index=1 if stored else 0, key="cur_choice",
                          help="a stored run (scores, groups and tags are kept in the results store)")
    if choice == "New run…":
        _run_form(stored)
    else:
        _workspace(choice)


main()
