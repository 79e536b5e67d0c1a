"""The Models page's parts: dataset source, check report, OOD training with a live curve, models table.

Issue 12 ("Models page"): the page is a thin skin over
:mod:`medlim.core.model_catalogue` (tasks, models, dataset reports, training
curves) and :func:`medlim.curation.ood.page_training.train_detectors` (the
room's training service; re-exported here for the page). The figures and
tables take no streamlit and are tested without a running app; the ``show_*``
and ``*_picker`` parts draw widgets.

Training runs inside the page's script run: the tab must stay open until it
ends (jobs that survive a closed tab come later; the page says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from medlim.core.model_catalogue import (
    DatasetReport,
    ModelCatalogue,
    TaskInfo,
    TrainingCurve,
)
from medlim.curation.ood.page_training import (
    DETECTOR_KINDS,
    PageTraining,
    TrainingUpdate,
    detector_names,
    train_detectors,
)
from medlim.errors import MedlimError

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = [
    "COLOURS",
    "DETECTOR_KINDS",
    "PageTraining",
    "TrainingUpdate",
    "catalogue_frame",
    "checked_dataset",
    "curve_figure",
    "dataset_picker",
    "detector_names",
    "ood_training",
    "problems_frame",
    "show_catalogue",
    "show_dataset_report",
    "show_training_result",
    "summary_frame",
    "train_detectors",
    "validation_frame",
]

#: Okabe–Ito colours (distinct for colour-blind readers), one per training stage.
COLOURS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
#: Shortest time between two redraws of the live curve (seconds).
REDRAW_S = 0.5
_SOURCES = ("Upload a zip", "Folder on the server")


# -------------------------------------------------------------------------------------------------
# figures and tables (no streamlit)


def curve_figure(curve: TrainingCurve, *, height: int = 540) -> go.Figure:
    """Training loss (top, log scale) and the validation figure (bottom) per epoch, one colour per stage.

    Args:
        curve: the points so far.
        height: figure height in pixels.
    """
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, shared_xaxes=False, vertical_spacing=0.24,
                           subplot_titles=("Training loss per epoch", "Validation per epoch (picks the kept epoch)"))
    metrics = set()
    for number, stage in enumerate(curve.stages):
        colour = COLOURS[number % len(COLOURS)]
        epochs, values, metric = curve.series(stage, "loss")
        if epochs:
            figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines", name=f"{stage}: {metric}",
                                        line={"color": colour}, legendgroup=stage), row=1, col=1)
        epochs, values, metric = curve.series(stage, "validation")
        if epochs:
            metrics.add(metric)
            figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=f"{stage}: {metric}",
                                        line={"color": colour, "dash": "dot"}, marker={"symbol": "diamond"},
                                        legendgroup=stage), row=2, col=1)
    validation_title = "validation " + (" / ".join(sorted(m.upper() for m in metrics)) or "figure")
    figure.update_xaxes(title_text="epoch (of its stage)", row=1, col=1)
    figure.update_xaxes(title_text="epoch (of its stage)", row=2, col=1)
    figure.update_yaxes(title_text="loss (log scale)", type="log", row=1, col=1)
    figure.update_yaxes(title_text=validation_title, row=2, col=1)
    figure.update_layout(height=height, margin={"l": 60, "r": 20, "t": 40, "b": 50}, legend={"title": "stage"})
    return figure


def catalogue_frame(catalogue: ModelCatalogue) -> pd.DataFrame:
    """The models table: model, source, default, date, dataset, then the task's key figures."""
    rows = []
    for row in catalogue.rows:
        rows.append({"model": row.label, "source": row.source, "default": "✓ default" if row.default else "",
                     "date": row.date or "", "dataset": row.fingerprint or "",
                     **{m.column: m.value for m in row.metrics}})
    columns = ["model", "source", "default", "date", "dataset", *catalogue.columns]
    frame = pd.DataFrame(rows, columns=columns)
    for column in catalogue.columns:  # numbers (NaN where a model has no such figure), even when all are missing
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def summary_frame(report: DatasetReport) -> pd.DataFrame:
    """The check's summary as ``what`` / ``value`` rows."""
    return pd.DataFrame(list(report.summary_rows()), columns=["what", "value"])


def problems_frame(report: DatasetReport) -> pd.DataFrame:
    """Every problem: what is wrong, where, and what to do."""
    rows = [{"problem": row.what, "where": row.where, "details": row.message} for row in report.problem_rows()]
    return pd.DataFrame(rows, columns=["problem", "where", "details"])


_VALIDATION_COLUMNS = (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr_at_95_tpr", "FPR@95%TPR"), ("tpr", "TPR at t"),
                       ("fpr", "FPR at t"), ("threshold", "threshold t"), ("n_id", "ID images"),
                       ("n_ood", "OOD images"), ("best_epoch", "kept epoch"), ("epochs_run", "epochs run"),
                       ("stopped", "stopped by"))


def validation_frame(training: PageTraining) -> pd.DataFrame:
    """One row per registered model: its figures on the validation split, and how its training ended."""
    rows = []
    for outcome in training.outcomes:
        for entry in outcome.registered:
            figures: dict[str, Any] = outcome.validation.get(entry.name, {})
            rows.append({"model": entry.label, **{label: figures.get(key) for key, label in _VALIDATION_COLUMNS}})
    return pd.DataFrame(rows, columns=["model", *(label for _, label in _VALIDATION_COLUMNS)])


# -------------------------------------------------------------------------------------------------
# streamlit parts


def dataset_picker() -> Path | None:
    """The dataset folder: an uploaded zip (unpacked for this session) or a folder under the data roots."""
    import streamlit as st

    source = st.radio("Dataset", _SOURCES, horizontal=True, key="models_source",
                      help="A zip suits a small dataset; copy a large one into a data folder and type its path.")
    if source == _SOURCES[1]:
        return _server_folder()
    upload = st.file_uploader("Zip of the dataset (class folders, or a manifest.csv beside the images)",
                              type=["zip"], key="models_zip",
                              help="Unpacked for this session only (removed when it ends) unless you keep it.")
    if upload is None:
        return None
    kept = st.session_state.get("models_kept")
    if kept and kept[0] == upload.file_id and Path(kept[1]).is_dir():
        st.caption(f"Kept in `{kept[1]}`: open it later under “Folder on the server”.")
        return Path(kept[1])
    folder = _unpacked(upload)
    return None if folder is None else _keep_form(upload.file_id, folder)


def _server_folder() -> Path | None:
    import streamlit as st

    from medlim.core.paths import allowed_roots_text, confine_to_data_roots
    from medlim.ui.errors import show_medlim_errors

    typed = st.text_input("Dataset folder on the server", key="models_folder",
                          help=f"A folder inside the data folders this app may read: {allowed_roots_text()} "
                               "(a relative path is taken under the first). Kept uploads are in the datasets folder.")
    if not typed.strip():
        return None
    folder = None
    with show_medlim_errors(subject="Dataset folder"):
        folder = confine_to_data_roots(typed, what="dataset folder")
    return folder


def _unpacked(upload: Any) -> Path | None:
    """The upload unpacked once into this session's temporary folder; ``None`` when refused."""
    import streamlit as st

    from medlim.curation.shift.data import extract_zip
    from medlim.ui.errors import show_medlim_errors
    from medlim.ui.session_files import session_tmp_dir

    done = st.session_state.get("models_unpacked")
    if done and done[0] == upload.file_id and Path(done[1]).is_dir():
        return Path(done[1])
    folder = None
    with show_medlim_errors(subject="Zip upload"):
        folder = extract_zip(upload.getvalue(), session_tmp_dir() / "uploads", label=upload.name)
    if folder is not None:
        st.session_state["models_unpacked"] = (upload.file_id, str(folder))
    return folder


def _keep_form(file_id: str, folder: Path) -> Path:
    """"Keep this dataset": move the unpacked upload to ``MEDLIM_HOME/datasets/<name>``; the folder to use."""
    import streamlit as st

    from medlim.curation.shift.data import keep_dataset
    from medlim.settings import get_settings
    from medlim.ui.errors import show_medlim_errors

    columns = st.columns([3, 2], vertical_alignment="bottom")
    name = columns[0].text_input("Keep this dataset as", key="models_keep_name", placeholder="e.g. hospital-a-2024",
                                 help="The unpacked upload is removed when this session ends; kept, it moves to "
                                      "the datasets folder (a data folder) and stays.")
    if columns[1].button("Keep this dataset", key="models_keep", disabled=not name.strip()):
        with show_medlim_errors(subject="Keep this dataset") as outcome:
            path = keep_dataset(folder, get_settings().datasets_dir, name)
        if not outcome.failed:
            st.session_state["models_kept"] = (file_id, str(path))
            st.caption(f"Kept in `{path}`: open it later under “Folder on the server”.")
            return path
    return folder


def _forget_report() -> None:
    import streamlit as st

    st.session_state.pop("models_report", None)


def checked_dataset(folder: Path, task: TaskInfo) -> DatasetReport | None:
    """The folder checked for ``task`` (once per folder and task, or again on request), with a progress bar."""
    import streamlit as st

    from medlim.core.model_catalogue import inspect_dataset
    from medlim.ui.errors import show_medlim_errors

    held = st.session_state.get("models_report")
    if held is not None and held[0] == (str(folder), task.key):
        return held[1]
    bar = st.progress(0.0, text="Checking the dataset…")
    report = None
    with show_medlim_errors(subject="Dataset check"):
        report = inspect_dataset(folder, task, progress=lambda done, total: bar.progress(
            done / max(total, 1), text=f"Checking the dataset: {done} of {total} images"))
    bar.empty()
    if report is not None:
        st.session_state["models_report"] = ((str(folder), task.key), report)
    return report


def show_dataset_report(report: DatasetReport) -> None:
    """The ``data check`` summary, then every problem in plain words (or that there is none)."""
    import streamlit as st

    st.table(summary_frame(report).set_index("what"))  # a few rows: static, readable, its text in the page
    if report.ok:
        st.success("No problems found: a trainer will accept this dataset.", icon=":material/check_circle:")
    else:
        count = len(report.check.problems)
        st.warning(f"{count} problem{'s' if count != 1 else ''} found: fix them in the folder and check again, "
                   "or leave out the images with problems when training.", icon=":material/warning:")
        st.dataframe(problems_frame(report), hide_index=True, key="models_problems", width="stretch")
    st.button("Check again", key="models_recheck", on_click=_forget_report,
              help="Read the folder again (after you changed files in it).")


def _set_default(label: str, registry_task: str) -> None:
    import streamlit as st

    from medlim.core.weights import Registries
    from medlim.ui.errors import error_text

    try:
        entry = Registries.load().set_default(label, task=registry_task)
    except MedlimError as error:
        st.session_state["models_notice"] = ("error", error_text(error, subject="Default model"))
        return
    st.session_state["models_notice"] = ("success", f"{entry.label} is now the default {registry_task} model.")


def _reset_default(registry_task: str) -> None:
    import streamlit as st

    from medlim.core.weights import Registries
    from medlim.ui.errors import error_text

    try:
        shipped = Registries.load().clear_default(registry_task)
    except MedlimError as error:
        st.session_state["models_notice"] = ("error", error_text(error, subject="Default model"))
        return
    now = shipped.label if shipped is not None else "none"
    st.session_state["models_notice"] = ("success", f"The default is the shipped one again: {now}.")


def show_catalogue(task: TaskInfo) -> ModelCatalogue | None:
    """The task's models from both registries, and the choice of its default."""
    import streamlit as st

    from medlim.core.model_catalogue import model_catalogue
    from medlim.ui.errors import show_medlim_errors

    catalogue = None
    with show_medlim_errors(subject="Model registries"):
        catalogue = model_catalogue(task)
    if catalogue is None:
        return None
    notice = st.session_state.pop("models_notice", None)
    if notice is not None:
        (st.success if notice[0] == "success" else st.error)(notice[1])
    if not catalogue.rows:
        st.info(f"No {task.title} model is registered yet.")
        return catalogue
    st.dataframe(catalogue_frame(catalogue), hide_index=True, key="models_table", width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in catalogue.columns})
    st.caption("source: shipped with medlim, or user (trained here or imported) · dataset: fingerprint of the "
               "data a user model was trained on (`medlim data check` prints it) · figures on each model's own "
               "validation split or held-out set, as recorded when it was made.")
    labels = [row.label for row in catalogue.rows]
    columns = st.columns([3, 2, 2], vertical_alignment="bottom")
    chosen = columns[0].selectbox("Default model of this task", labels, key=f"models_default_pick_{task.key}",
                                  index=labels.index(catalogue.default) if catalogue.default in labels else 0,
                                  help="Pages and commands use the default unless told otherwise.")
    columns[1].button("Make it the default", key="models_set_default", on_click=_set_default,
                      args=(chosen, task.registry_task), disabled=chosen == catalogue.default)
    if catalogue.user_default:
        columns[2].button("Back to the shipped default", key="models_reset_default", on_click=_reset_default,
                          args=(task.registry_task,))
    return catalogue


# -------------------------------------------------------------------------------------------------
# OOD training on the page


@dataclass
class _LiveView:
    """The progress bar and the live curve of a run (redrawn at most every :data:`REDRAW_S`)."""

    bar: Any
    chart: Any
    drawn: float = 0.0
    draws: int = 0

    def __call__(self, update: TrainingUpdate) -> None:
        latest = update.curve.latest()
        where = f"{latest.stage} epoch {latest.epoch}/{latest.planned} · " if latest is not None else ""
        self.bar.progress(update.fraction, text=f"{update.kind.upper()}: {where}{update.line[:120]}")
        now = time.monotonic()
        if update.curve.points and now - self.drawn >= REDRAW_S:
            self.drawn, self.draws = now, self.draws + 1
            self.chart.plotly_chart(curve_figure(update.curve), key=f"models_curve_live_{self.draws}")


def _training_form(report: DatasetReport) -> dict[str, Any] | None:
    """The OOD settings; ``None`` until they are complete."""
    import streamlit as st

    classes = list(report.classes)
    if not classes:
        st.info("The dataset holds no class folder with images: OOD training needs at least one class.")
        return None
    columns = st.columns([2, 2, 1, 2])
    id_class = columns[0].selectbox("In-distribution class", classes, key="models_id_class",
                                    help="The detector learns this class; the other classes validate it as OOD.")
    kinds = columns[1].multiselect("Detectors", list(DETECTOR_KINDS), default=["TEND"], key="models_kinds",
                                   help="TEND (thesis §4.1) also registers its autoencoder baseline; "
                                        "CVAD (§4.2). Two kinds share the time budget.")
    minutes = columns[2].number_input("Minutes", min_value=0.1, max_value=240.0, value=2.0, step=0.5,
                                      key="models_minutes", help="Time budget of the whole training (all detectors).")
    name = columns[3].text_input("Name (optional)", key="models_name", placeholder=f"tend-{id_class}",
                                 help="Registry name; the version is the next free one. Default: <kind>-<class>.")
    skip_bad = False
    if not report.ok:
        skip_bad = st.checkbox("Leave out the images with problems", key="models_skip_bad",
                               help="As `--skip-bad`: bad images are left out and listed; problems of the whole "
                                    "dataset (too few images, an empty class) cannot be fixed this way.")
    if not kinds:
        st.info("Choose at least one detector.")
        return None
    return {"id_class": id_class, "kinds": [DETECTOR_KINDS[k] for k in kinds], "minutes": float(minutes),
            "name": name, "skip_bad": skip_bad}


def ood_training(folder: Path, report: DatasetReport) -> None:
    """Settings, the Train button, the live progress and curve; the result is kept for :func:`show_training_result`."""
    import streamlit as st

    from medlim.core.weights import Registries
    from medlim.ui.errors import show_medlim_errors

    settings = _training_form(report)
    if settings is None:
        return
    st.info("Training runs in this browser tab: keep the tab open and leave this page alone until it ends. "
            "(Training as a job that survives closing the tab is coming.)", icon=":material/info:")
    if not st.button("Train", key="models_train", type="primary", disabled=not (report.ok or settings["skip_bad"])):
        return
    view = _LiveView(bar=st.progress(0.0, text="Checking the dataset…"), chart=st.empty())
    training = None
    with show_medlim_errors(subject="Training"):
        training = train_detectors(folder, registries=Registries.load(), on_update=view, **settings)
    view.bar.empty()
    if training is not None:
        st.session_state["models_result"] = training
        st.rerun()  # the models table above shows the new versions


def show_training_result(task: TaskInfo) -> None:
    """The last run's curve, validation figures, registered versions and "Make this the default" buttons."""
    import streamlit as st

    training: PageTraining | None = st.session_state.get("models_result")
    if training is None or training.registry_task != task.registry_task:
        return
    st.subheader("Last training")
    st.success("Registered " + ", ".join(f"**{label}**" for label in training.registered) + " in your models. "
               f"Find {'them' if len(training.registered) > 1 else 'it'} in the detector picker of the "
               f"“{task.page}” page.", icon=":material/check_circle:")
    for kind, message in training.failures:
        st.error(f"**{kind.upper()}** registered nothing: {message}", icon=":material/error:")
    st.plotly_chart(curve_figure(training.curve), key="models_curve")
    st.markdown("**Validation split** (the held-out 20 % of your dataset; the kept epoch's figures)")
    st.dataframe(validation_frame(training), hide_index=True, key="models_validation", width="stretch")
    columns = st.columns(max(1, len(training.detectors)))
    for column, label in zip(columns, training.detectors):
        column.button(f"Make {label} the default for {task.page}", key=f"models_default_{label}",
                      on_click=_set_default, args=(label, task.registry_task))
