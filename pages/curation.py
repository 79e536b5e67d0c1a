"""Curation workspace: MedShift on an external dataset, then keep/drop decisions (thesis ch. 5).

Choose the internal and the external dataset (generated phantoms, a folder on
the server, or an uploaded zip of ``<class>/`` folders), train the per-class
detectors and G and score the external images with progress; then see the
score histograms (Figs. 5.5–5.6), the elbow curve, the group galleries in
ascending score (Figs. 5.8–5.9), the TOP-k table (Table 5.2) and the OTDD
curve, tag images or whole groups keep/drop (saved in the results store) and
export the curated manifest. A stored run can be reopened later by its name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from medlim.settings import get_settings
from medlim.ui.errors import show_medlim_errors
from medlim.ui.shell import ensure_app_shell

PER_PAGE = 12
GRID = 4
BODY_PARTS = ("hand", "finger", "wrist", "forearm", "elbow", "humerus", "shoulder")


def _dataset_picker(role: str, *, default_seed: int, default_site: str, default_n: int) -> str | None:
    """A dataset source spec for ``role`` (``internal`` / ``external``), or ``None`` when incomplete."""
    st.markdown(f"**{role.capitalize()} dataset**")
    kind = st.radio("Source", ("Generated phantoms", "Folder on the server", "Upload a zip"), horizontal=True,
                    key=f"cur_{role}_kind", label_visibility="collapsed")
    if kind == "Generated phantoms":
        columns = st.columns(3)
        seed = int(columns[0].number_input("Seed", min_value=0, value=default_seed, key=f"cur_{role}_seed"))
        per_class = int(columns[1].number_input("Per class", min_value=5, max_value=2000, value=default_n,
                                                key=f"cur_{role}_n"))
        sites = ("internal", "mixed", "external")
        site = columns[2].selectbox("Site", sites, index=sites.index(default_site), key=f"cur_{role}_site")
        parts = st.multiselect("Body parts", BODY_PARTS, default=["hand", "elbow", "shoulder"], key=f"cur_{role}_parts")
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


def _run_form() -> None:
    from medlim.core.paths import validate_name
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift
    from medlim.curation.shift.report import save_result
    from medlim.ui.mammography import open_store_cached

    left, right = st.columns(2)
    with left:
        internal_spec = _dataset_picker("internal", default_seed=101, default_site="internal", default_n=20)
    with right:
        external_spec = _dataset_picker("external", default_seed=202, default_site="mixed", default_n=16)
    with st.expander("Settings"):
        columns = st.columns(4)
        detector = columns[0].selectbox("Detector", ("cvad", "tend"), key="cur_detector")
        k_text = columns[1].selectbox("Groups k", ("auto", "2", "3", "4", "5", "6"), key="cur_k",
                                      help="auto: the elbow of the distortion curve (max distance below the chord)")
        epochs = int(columns[2].number_input(
            "Detector epochs", min_value=1, max_value=200, value=60, key="cur_epochs",
            help="training epochs of each class's detector (the discriminator/head gets a third of them). "
                 "60 is the setting the shift evidence was measured with; fewer is faster but separates "
                 "shifted images less well"))
        g_epochs = int(columns[3].number_input("G epochs", min_value=1, max_value=200, value=3, key="cur_g_epochs"))
        columns = st.columns(3)
        repeats = int(columns[0].number_input("OTDD repeats", min_value=1, max_value=50, value=10, key="cur_repeats"))
        samples = int(columns[1].number_input("OTDD samples", min_value=10, max_value=5000, value=300, key="cur_samples"))
        features = columns[2].selectbox("OTDD features", ("embedding", "pixels"), key="cur_features")
    name = st.text_input("Save the run as", value="external", key="cur_name",
                         help="the dataset name in the results store; reopen it later from the list above")
    if not st.button("Train and score", type="primary", key="cur_run", disabled=not (internal_spec and external_spec)):
        return
    config = ShiftConfig(
        detector=DetectorConfig(kind=detector, input_size=64, epochs=epochs, head_epochs=max(2, epochs // 3)),
        classifier=ClassifierConfig(epochs=g_epochs), k="auto" if k_text == "auto" else int(k_text),
        features=features, otdd_max_samples=samples, otdd_repeats=repeats)
    bar = st.progress(0.0, text="starting")
    log_box = st.status("Training and scoring…", expanded=False)
    stages = ("read internal", "detectors", "classifier", "score external", "otdd")

    def progress(stage: str, done: int, total: int) -> None:
        index = stages.index(stage) if stage in stages else 0
        bar.progress(min(1.0, (index + done / max(total, 1)) / len(stages)), text=f"{stage}: {done}/{total}")

    with show_medlim_errors(subject="MedShift run") as outcome:
        name = validate_name(name, what="run name")
        internal = parse_dataset(internal_spec)
        external = parse_dataset(external_spec, name=name)
        result = run_shift(internal, external, config, log=log_box.write, progress=progress)
        store = open_store_cached(get_settings().database_url)
        save_result(store, result, home=get_settings().home, dataset=name)
    if outcome.failed:
        log_box.update(label="Failed", state="error")
        return
    log_box.update(label="Done", state="complete")
    st.session_state["cur_pending"] = name  # selected in the run list on the rerun
    st.rerun()


@st.dialog("Image", width="large")
def _enlarge(source: str, file: str, score: float) -> None:
    from medlim.ui.curation import thumbnails_cached

    st.image(thumbnails_cached(source, (file,), 512)[0], caption=f"{file} · score {score:.4f}", clamp=True)


def _images_present(source: str) -> bool:
    """Whether the images of a stored run can still be read (phantoms always; a folder while it exists)."""
    return source.startswith("phantom:") or (bool(source) and Path(source).is_dir())


def _workspace(name: str) -> None:
    from medlim.core.store.curation import get_scores, set_tags, tag_group, tag_map
    from medlim.curation.shift.report import curated_manifest, elbow_figure, histogram_figure, load_report, otdd_figure
    from medlim.ui.curation import curated_csv, gallery_page, group_rows, group_table, thumbnails_cached
    from medlim.ui.mammography import open_store_cached

    settings = get_settings()
    report = load_report(settings.home, name)
    store = open_store_cached(settings.database_url)
    if report is None:
        st.warning(f"No saved report for {name!r}; run MedShift again.")
        return
    method = report["method"]
    scores = get_scores(store, name, method=method)
    tags = tag_map(store, name)
    source = report["settings"].get("external_source", "")
    k = int(report["k"])
    columns = st.columns(4)
    columns[0].metric("External images", len(scores))
    columns[1].metric("Groups per class (k)", k)
    columns[2].metric("Tagged", len(tags))
    if report.get("evidence") and report["evidence"].get("auroc") is not None:
        columns[3].metric("AUROC vs known shift", f"{report['evidence']['auroc']:.3f}")
    scores_tab, groups_tab, topk_tab, export_tab = st.tabs(["Scores", "Groups", "TOP-k and OTDD", "Export"])
    with scores_tab:
        import numpy as np

        st.plotly_chart(histogram_figure({c: np.asarray(v) for c, v in report.get("internal_scores", {}).items()},
                                         np.array([s.score for s in scores]), [s.class_name for s in scores]),
                        key="cur_hist")
        st.plotly_chart(elbow_figure(report["elbow"]["ks"], report["elbow"]["distortion"], k), key="cur_elbow")
        scale = report.get("group_scale", "raw")
        st.caption(f"k rule: {report['k_rule']} · k-means on {'log' if scale == 'log' else 'raw'} scores"
                   + (" (groups bordered at score ratios; the thesis clusters raw scores)" if scale == "log" else ""))
        class_elbows = report["elbow"].get("class_elbows") or {}
        if class_elbows:
            st.caption("Each class's own elbow (the shared k comes from the mean curve): "
                       + ", ".join(f"{name} {value}" for name, value in sorted(class_elbows.items())))
    with groups_tab:
        st.dataframe(pd.DataFrame(group_table(scores, tags)), hide_index=True, key="cur_groups_table")
        classes = sorted({s.class_name for s in scores})
        columns = st.columns(3)
        class_name = columns[0].selectbox("Class", classes, key="cur_class")
        group = int(columns[1].selectbox("Group (0 = lowest scores)", list(range(k)), index=k - 1, key="cur_group"))
        rows = group_rows(scores, tags, class_name=class_name, group=group)
        page_count = max(1, -(-len(rows) // PER_PAGE))
        page = int(columns[2].number_input(f"Page (of {page_count})", min_value=1, max_value=page_count, value=1,
                                           key="cur_page")) - 1
        actions = st.columns(3)
        for column, (label, tag) in zip(actions, (("Keep whole group", "keep"), ("Drop whole group", "drop"),
                                                  ("Clear group tags", None))):
            if column.button(label, key=f"cur_group_{tag or 'clear'}"):
                changed = tag_group(store, name, method=method, class_name=class_name, group=group, tag=tag)
                st.toast(f"{changed} image(s) changed")
                st.rerun()
        shown = gallery_page(rows, page, PER_PAGE)
        if not shown.rows:
            st.info("This group is empty.")
        elif not _images_present(source):
            st.info("The images of this run were a temporary upload and are no longer on the server; scores and "
                    "tags remain. Keep an uploaded dataset (“Keep this dataset”) to see its images later.")
        else:
            with show_medlim_errors(subject="thumbnails") as outcome:
                pictures = thumbnails_cached(source, tuple(r["file"] for r in shown.rows))
            if not outcome.failed:
                grid = st.columns(GRID)
                for i, (row, picture) in enumerate(zip(shown.rows, pictures)):
                    with grid[i % GRID]:
                        mark = f" · {row['tag']}" if row["tag"] else ""
                        st.image(picture, caption=f"score {row['score']:.4f}{mark}", clamp=True,
                                 use_container_width=True)
                        buttons = st.columns(3)
                        if buttons[0].button("View", key=f"cur_big_{row['file']}", icon=":material/zoom_in:",
                                             help="enlarge"):
                            _enlarge(source, row["file"], row["score"])
                        if buttons[1].button("Keep", key=f"cur_keep_{row['file']}", help="tag keep"):
                            set_tags(store, name, {row["file"]: "keep"})
                            st.rerun()
                        if buttons[2].button("Drop", key=f"cur_drop_{row['file']}", help="tag drop"):
                            set_tags(store, name, {row["file"]: "drop"})
                            st.rerun()
    with topk_tab:
        table = pd.DataFrame([{"subset": f"TOP {row['level']}", "class": item["name"], "precision": item["precision"],
                               "recall": item["recall"], "f1": item["f1"], "auc": item["auc"], "images": item["count"]}
                              for row in report["topk"] for item in (*row["per_class"], row["macro"], row["weighted"])])
        st.dataframe(table, hide_index=True, key="cur_topk")
        series = report["series"]
        st.plotly_chart(otdd_figure(series["levels"], series["otdd_mean"], series["otdd_std"], series["macro_f1"]),
                        key="cur_otdd")
    with export_tab:
        drop_from = st.selectbox("Also leave out untagged images of groups ≥", ["none", *range(1, k)], key="cur_drop_from")
        rows = [{"file": s.file, "class": s.class_name, "score": s.score, "group": s.group} for s in scores]
        kept = curated_manifest(rows, tags, drop_groups_from=None if drop_from == "none" else int(drop_from))
        st.caption(f"{len(kept)} of {len(rows)} images kept.")
        st.caption("Files are named by pseudonymous labels (a keyed hash of each file's path in the dataset), "
                   "so the manifest carries no file names.")
        st.download_button("Download the curated manifest (CSV)", curated_csv(kept),
                           file_name=f"{name}-curated.csv", mime="text/csv", key="cur_export")


def main() -> None:
    ensure_app_shell()
    st.title("Curation decisions")
    st.caption("MedShift (thesis ch. 5): find the shift data of an external dataset, group it by anomaly score, "
               "measure it, keep or drop it. Research use only, not for diagnosis.")
    from medlim.core.store.curation import list_datasets
    from medlim.ui.mammography import open_store_cached

    with show_medlim_errors(subject="results store") as outcome:
        stored = list_datasets(open_store_cached(get_settings().database_url), with_scores=True)
    if outcome.failed:
        return
    options = ["New run…", *stored]
    pending = st.session_state.pop("cur_pending", None)
    if pending in options:
        st.session_state["cur_choice"] = pending
    choice = st.selectbox("Run", options, index=1 if stored else 0, key="cur_choice",
                          help="a stored run (scores, groups and tags are kept in the results store)")
    if choice == "New run…":
        _run_form()
    else:
        _workspace(choice)


main()
