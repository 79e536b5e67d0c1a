"""The Models page's parts: dataset source, check report, training as a job with a live curve, models table.

Issue 12 ("Models page") and issue 15 (jobs): the page is a thin skin over
:mod:`medlim.core.model_catalogue` (tasks, models, dataset reports, training
curves, the ``medlim train`` argv of a request). Training is a ``train`` job
that runs ``medlim train <trainer> --data DIR ...`` in the worker, so it goes on
when the tab is closed; the page follows it with :mod:`medlim.ui.jobs` and
draws the live loss / validation curve from the job's log. The figures and
tables take no streamlit and are tested without a running app; the ``show_*``
and ``*_picker`` parts draw widgets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from medlim.core.evaluations import CutoffCurve, EvaluationReport, EvaluationTable
from medlim.core.model_catalogue import (
    TRAINERS,
    DatasetReport,
    ModelCatalogue,
    TaskInfo,
    TrainingCurve,
    TrainingRequest,
    trainer_task,
)
from medlim.core.text import counted
from medlim.errors import MedlimError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.jobs import Job

__all__ = [
    "COLOURS",
    "EVAL_JOB_KEY",
    "JOB_KEY",
    "cutoff_figure",
    "evaluation_frame",
    "evaluation_csv",
    "show_evaluation_job",
    "start_evaluation",
    "catalogue_frame",
    "checked_dataset",
    "curve_figure",
    "dataset_picker",
    "job_curve",
    "problems_frame",
    "show_catalogue",
    "show_dataset_report",
    "show_training_job",
    "start_training",
    "summary_frame",
    "training_form",
    "training_summary",
    "validation_frame",
]

#: Okabe–Ito colours (distinct for colour-blind readers), one per training stage.
COLOURS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
#: The session key of the training job the page follows (:mod:`medlim.ui.jobs`).
JOB_KEY = "models_job"
#: The session key of the evaluation job the page follows.
EVAL_JOB_KEY = "models_eval_job"
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


def training_summary(result_output: list[Any]) -> dict[str, Any] | None:
    """The ``{"registered": [...], "validation": {...}}`` line a trainer printed last, or ``None``."""
    return next((value for value in reversed(result_output)
                 if isinstance(value, dict) and isinstance(value.get("registered"), list)), None)


def validation_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The validation figures (``summary["validation"]``): a row per figure in plain words, a column per registered
    model, and what the figure means (:func:`medlim.core.validation_report.validation_table`, which the trainers
    also print)."""
    from medlim.core.evaluations import cell_text
    from medlim.core.validation_report import validation_table

    table = validation_table(summary)  # a model's column holds numbers, words and flags: shown as the CLI prints them
    return pd.DataFrame([{column: cell_text(row.get(column)) for column in table.columns} for row in table.rows],
                        columns=list(table.columns))


def job_curve(lines: list[str]) -> TrainingCurve:
    """The training curve a job's log lines carry (the trainers' epoch and validation lines)."""
    curve = TrainingCurve()
    for line in lines:
        curve = curve.with_line(line)
    return curve


def evaluation_frame(table: EvaluationTable) -> pd.DataFrame:
    """One evaluation table as a frame (columns in the table's order; ``None`` → NaN in number columns)."""
    frame = pd.DataFrame([dict(row) for row in table.rows], columns=list(table.columns))
    for column in table.columns:
        values = [row.get(column) for row in table.rows]
        if values and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def evaluation_csv(report: EvaluationReport) -> bytes:
    """Every table of the report as CSV, one block per table under its title (what the page offers to download)."""
    blocks = []
    for table in report.tables:
        blocks.append(f"# {table.title}\n" + evaluation_frame(table).to_csv(index=False))
    return "\n".join(blocks).encode("utf-8")


def cutoff_figure(curve: CutoffCurve, *, height: int = 420) -> go.Figure:
    """Dice on views with BAC (left axis) and the median false area of BAC-free views (right axis) per cut-off.

    Dashed lines mark the model's own cut-off and the one the trainer's rule would choose; a dotted line the
    0.5 mm² target of the false area (when the views state their spacing).
    """
    from plotly.subplots import make_subplots

    thresholds = [p.threshold for p in curve.points]
    figure = make_subplots(specs=[[{"secondary_y": curve.unit is not None}]])
    figure.add_trace(go.Scatter(x=thresholds, y=[p.dice for p in curve.points], mode="lines+markers",
                                name="Dice, views with BAC", line={"color": COLOURS[0]}), secondary_y=False)
    if curve.unit is not None:
        figure.add_trace(go.Scatter(x=thresholds, y=[p.false_area for p in curve.points], mode="lines+markers",
                                    name=f"median false AM, BAC-free views ({curve.unit})",
                                    line={"color": COLOURS[5], "dash": "dot"}), secondary_y=True)
        if curve.unit == "mm²":
            figure.add_hline(y=0.5, line={"color": COLOURS[5], "width": 1, "dash": "dot"}, secondary_y=True,
                             annotation_text="0.5 mm²", annotation_position="top left")
        figure.update_yaxes(title_text=f"false area ({curve.unit})", rangemode="tozero", secondary_y=True)
    for value, text, colour in ((curve.own, "model's default", COLOURS[6]), (curve.chosen, "trainer's rule", COLOURS[2])):
        if value is not None:
            figure.add_vline(x=value, line={"color": colour, "width": 1, "dash": "dash"}, annotation_text=text,
                             annotation_position="top")
    figure.update_yaxes(title_text="Dice", range=[0, 1], secondary_y=False)
    figure.update_xaxes(title_text="probability cut-off", range=[0, 1])
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.25}, title="What each cut-off costs on your views")
    return figure


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
    from medlim.core.paths import confining_to_data_roots
    from medlim.ui.errors import show_medlim_errors

    held = st.session_state.get("models_report")
    if held is not None and held[0] == (str(folder), task.key):
        return held[1]
    bar = st.progress(0.0, text="Checking the dataset…")
    report = None
    with show_medlim_errors(subject="Dataset check"), confining_to_data_roots():  # a manifest may not reach out
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
        st.warning(f"{counted(count, 'problem')} found: fix them in the folder and check again, "
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
# training as a job


def _init_choice(task: TaskInfo, trainer: str) -> str:
    """``--init`` for trainers that fine-tune: the task's default, from scratch, or a registered version."""
    import streamlit as st

    from medlim.core.model_catalogue import model_catalogue

    if trainer not in ("scunet", "steatosis"):
        return ""
    default, scratch = "the task's default model", "none (train from scratch)"
    labels = []
    try:
        labels = [row.label for row in model_catalogue(task).rows]
    except MedlimError:
        labels = []
    choice = st.selectbox("Start from", [default, scratch, *labels], key="models_init",
                          help="Fine-tune registered weights (`--init NAME@VERSION`), or train from scratch.")
    return "" if choice == default else "none" if choice == scratch else choice


def _required_text(label: str, *, key: str, help: str, missing: str) -> str | None:  # noqa: A002 - streamlit's word
    """A text field the form cannot go on without: its stripped value, or ``None`` after saying what is missing."""
    import streamlit as st

    typed = st.text_input(label, key=key, help=help).strip()
    if not typed:
        st.info(missing)
        return None
    return typed


def _task_options(task: TaskInfo, report: DatasetReport) -> dict[str, Any] | None:
    """The options only some trainers take; ``None`` until they are complete."""
    import streamlit as st

    from medlim.core.paths import confine_to_data_roots
    from medlim.ui.errors import show_medlim_errors

    trainers = TRAINERS[task.key]
    trainer = trainers[0] if len(trainers) == 1 else st.radio(
        "Detector", trainers, horizontal=True, key="models_trainer", format_func=str.upper,
        help="TEND (thesis §4.1; also registers its autoencoder baseline) or CVAD (§4.2).")
    options: dict[str, Any] = {"trainer": trainer, "init": _init_choice(task, trainer)}
    if trainer in ("tend", "cvad"):
        classes = list(report.classes)
        if not classes and report.check.summary.layout == "unlabelled" and report.check.summary.images:
            named = _required_text("What these images show (one class)", key="models_plain_class",
                                   help="A plain folder of images is one in-distribution class; its name (e.g. hand) "
                                        "names the detector. Generated distortions validate it.",
                                   missing="Name the class these images show to train a detector on them.")
            if named is None:
                return None
            options["id_class"] = named
            return options
        if not classes:
            st.info("The dataset holds no class folder with images: OOD training needs at least one class.")
            return None
        options["id_class"] = st.selectbox("In-distribution class", classes, key="models_id_class",
                                           help="The detector learns this class; the other classes validate it.")
    if trainer == "oscars":
        typed = _required_text("Internal folder (same classes)", key="models_internal",
                               help="Class folders of your internal data: one anomaly detector per class is trained "
                                    "on them to bin the external images (thesis §6.1).",
                               missing="Type the internal folder the anomaly detectors train on.")
        if typed is None:
            return None
        internal = None
        with show_medlim_errors(subject="Internal folder"):
            internal = confine_to_data_roots(typed, what="internal folder")
        if internal is None:
            return None
        options["internal"] = internal
    return options


def training_form(task: TaskInfo, folder: Path, report: DatasetReport) -> TrainingRequest | None:
    """The task's training settings as a :class:`TrainingRequest`; ``None`` until they are complete."""
    import streamlit as st

    options = _task_options(task, report)
    if options is None:
        return None
    columns = st.columns([1, 2])
    minutes = columns[0].number_input("Minutes", min_value=0.1, max_value=240.0, value=2.0, step=0.5,
                                      key="models_minutes", help="Time budget of the whole training (--max-minutes).")
    name = columns[1].text_input("Name (optional)", key="models_name",
                                 help="Registry name; the version is the next free one. Default: the trainer's.")
    skip_bad = False
    if not report.ok:
        skip_bad = st.checkbox("Leave out the images with problems", key="models_skip_bad",
                               help="As `--skip-bad`: bad images are left out and listed; problems of the whole "
                                    "dataset (too few images, an empty class) cannot be fixed this way.")
    return TrainingRequest(data=folder, max_minutes=float(minutes), name=name, skip_bad=skip_bad, **options)


def _job_dataset(folder: Path, report: DatasetReport) -> Path:
    """A folder the worker may read: ``folder`` itself inside the data roots, else a copy kept for jobs.

    An unpacked zip lives in the session's temporary folder, which is outside the
    data roots and removed when the tab closes; the job reads a copy under
    :func:`medlim.core.job_folders.job_folder` (named by the dataset fingerprint).
    """
    import shutil

    from medlim.core.job_folders import job_folder
    from medlim.core.paths import is_within_data_roots

    if is_within_data_roots(folder):
        return folder
    copy = job_folder("uploads", f"dataset-{report.fingerprint.id[:16]}")
    if not any(copy.iterdir()):
        shutil.copytree(folder, copy, dirs_exist_ok=True)
    return copy


def start_training(task: TaskInfo, folder: Path, report: DatasetReport) -> None:
    """The settings and the Train button: queues ``medlim train ...`` as a job this page then follows."""
    import streamlit as st

    from medlim.core.datasets import PROBLEM_KINDS, unfixable_problems
    from medlim.core.model_catalogue import training_argv
    from medlim.ui.errors import show_medlim_errors
    from medlim.ui.jobs import submit_page_job

    request = training_form(task, folder, report)
    if request is None:
        return
    st.caption("Training runs as a job in the app's worker: it goes on when you leave this page or close the tab, "
               "and this page finds it again.")
    unfixable = unfixable_problems(report.check) if request.skip_bad else ()
    if unfixable:
        st.warning("Leaving out the images with problems cannot fix: "
                   + "; ".join(PROBLEM_KINDS[kind] for kind in dict.fromkeys(p.kind for p in unfixable))
                   + ". Add images (or fix the dataset) and check it again.", icon=":material/block:")
    if not st.button("Train", key="models_train", type="primary",
                     disabled=not (report.ok or (request.skip_bad and not unfixable))):
        return
    argv = None
    with show_medlim_errors(subject="Training"):
        argv = training_argv(dataclasses.replace(request, data=_job_dataset(folder, report)))
    if argv is not None and submit_page_job("train", argv, state_key=JOB_KEY,
                                            dataset_fingerprint=report.fingerprint.id) is not None:
        st.rerun()  # the job's progress shows above the form


def _job_task(job: Job) -> TaskInfo | None:
    argv = job.parameters.get("argv") or []
    try:
        return trainer_task(str(argv[1]))
    except (IndexError, MedlimError):
        return None


def _live_curve(job: Job) -> None:
    import streamlit as st

    from medlim.core.jobs import job_log
    from medlim.ui.jobs import jobs_store

    curve = job_curve([line.line for line in job_log(jobs_store(), job.id)])
    latest = curve.latest()
    if latest is not None:
        st.caption(f"{latest.stage}: epoch {latest.epoch} of {latest.planned}")
    if curve.points:
        st.plotly_chart(curve_figure(curve), key=f"models_curve_live_{job.id}")


def _training_done(job: Job) -> None:
    import streamlit as st

    from medlim.core.jobs import job_log
    from medlim.ui.jobs import jobs_store, result_output

    task = _job_task(job)
    summary = training_summary(result_output(job)) or {}
    labels = [f"{entry.get('name')}@{entry.get('version')}" for entry in summary.get("registered") or []]
    if labels:
        where = f"the “{task.page}” page's model picker" if task is not None else "its page's model picker"
        st.success("Registered " + ", ".join(f"**{label}**" for label in labels) + f" in your models. Find "
                   f"{'them' if len(labels) > 1 else 'it'} in {where}.", icon=":material/check_circle:")
    curve = job_curve([line.line for line in job_log(jobs_store(), job.id)])
    if curve.points:
        st.plotly_chart(curve_figure(curve), key="models_curve")
    if summary:
        st.markdown("**Validation split** (the held-out 20 % of your dataset, or your --val folder; the kept "
                    "state's figures)")
        st.table(validation_frame(summary).set_index("figure"))  # a few rows: static, its text in the page
    if task is not None and labels:
        columns = st.columns(len(labels))
        for column, label in zip(columns, labels):
            column.button(f"Make {label} the default for {task.page}", key=f"models_default_{label}",
                          on_click=_set_default, args=(label, task.registry_task))


def show_training_job(task: TaskInfo) -> None:
    """The training job this page follows (started here, or found again after a closed tab), live or finished."""
    import streamlit as st

    from medlim.ui.jobs import follow_job, page_job

    job = page_job(JOB_KEY, "train")
    if job is None:
        return
    job_task = _job_task(job)
    title = "Training job" if job_task is None or job_task == task else f"Training job ({job_task.title})"
    st.subheader(title)
    follow_job(job, key=JOB_KEY, render_done=_training_done, render_live=_live_curve)


def _evaluable(task: TaskInfo, labels: list[str], report: DatasetReport) -> list[str]:
    """The task's models the folder can evaluate (for OOD: :func:`medlim.curation.ood.labels.detectors_for_classes`)."""
    if task.key != "ood":
        return labels
    from medlim.core.weights import Registries
    from medlim.curation.ood.labels import detectors_for_classes

    registries = Registries.load()
    entries = []
    for label in labels:
        try:
            entries.append(registries.find(label))
        except MedlimError:
            continue
    usable = set(detectors_for_classes(entries, report.classes))
    return [label for label in labels if label in usable]


def start_evaluation(task: TaskInfo, folder: Path, report: DatasetReport) -> None:
    """Pick one of the task's models and check it on the folder's annotations, as an ``evaluate`` job."""
    import streamlit as st

    from medlim.core.evaluations import (
        EVALUATION_LAYOUTS,
        EvaluationRequest,
        evaluation_argv,
        evaluation_blockers,
        evaluation_problem,
        model_cutoff,
    )
    from medlim.core.model_catalogue import model_catalogue
    from medlim.ui.errors import show_medlim_errors
    from medlim.ui.jobs import submit_page_job

    st.subheader("Check a model on your annotated data")
    if task.key not in EVALUATION_LAYOUTS:
        st.info("Models of this task cannot be evaluated on your data from this page yet.")
        return
    problem = evaluation_problem(task.key, report.check.summary.layout)
    if problem is not None:
        st.info(problem[0].upper() + problem[1:], icon=":material/info:")
        return
    catalogue = None
    with show_medlim_errors(subject="Models"):
        catalogue = model_catalogue(task)
    if catalogue is None or not catalogue.rows:
        st.info("This task has no model yet.")
        return
    labels = _evaluable(task, [row.label for row in catalogue.rows], report)
    if not labels:
        st.info("No detector of this task has its in-distribution class among this folder's classes "
                f"({', '.join(report.classes)}): train one on it above, or add a folder of the detector's class.",
                icon=":material/info:")
        return
    index = labels.index(catalogue.default) if catalogue.default in labels else 0
    columns = st.columns([3, 2], vertical_alignment="bottom")
    label = columns[0].selectbox("Model", labels, index=index, key="models_eval_model",
                                 help="The model whose results are compared with your masks, labels or classes.")
    cutoff = model_cutoff(task.key, label)
    skip_bad = False
    blockers = evaluation_blockers(report.check)
    if not report.ok and not blockers:
        st.caption("The folder is too small to train on, which does not matter for an evaluation.")
    if blockers:
        skip_bad = st.checkbox("Leave out the images with problems", key="models_eval_skip_bad",
                               help="As `--skip-bad`: the images with problems are left out and counted.")
    what = {"bac": "every probability cut-off of the trainer's grid and the model's own, from one inference per "
                   "view: Dice, agreement of the readouts, TAM bias and false BAC on BAC-free views",
            "steatosis": "weak labels and the network against your droplet labels",
            "ood": "AUROC and the share flagged per class, with the detector's class as in-distribution",
            "oscars": "precision and hit rate at 1, 5 and 10, leave-one-out", "pms": "precision at 1, 5 and 10"}
    st.caption(f"Evaluates {what.get(task.key, 'the model')}. Runs as a job in the app's worker; the same as "
               f"`medlim {' '.join(evaluation_argv(EvaluationRequest(task.key, Path('DIR'), label, cutoff))[:2])} "
               "--data DIR --json`.")
    if not columns[1].button("Evaluate", key="models_evaluate", disabled=bool(blockers) and not skip_bad):
        return
    argv = None
    with show_medlim_errors(subject="Evaluation"):
        argv = evaluation_argv(EvaluationRequest(task=task.key, data=_job_dataset(folder, report), model=label,
                                                 cutoff=cutoff, skip_bad=skip_bad))
    if argv is not None and submit_page_job("evaluate", argv, state_key=EVAL_JOB_KEY,
                                            dataset_fingerprint=report.fingerprint.id) is not None:
        st.rerun()


def _evaluation_done(job: Job) -> None:
    import streamlit as st

    from medlim.core.evaluations import evaluation_of_argv, evaluation_report
    from medlim.ui.errors import show_medlim_errors
    from medlim.ui.jobs import result_output

    argv = [str(arg) for arg in job.parameters.get("argv") or []]
    known = evaluation_of_argv(argv)
    payload = next((value for value in reversed(result_output(job)) if isinstance(value, dict)), None)
    if known is None or payload is None:
        st.info("The evaluation printed nothing to show; its log is on the Jobs page.")
        return
    report = None
    with show_medlim_errors(subject="Evaluation"):
        report = evaluation_report(known[0], payload, cutoff=known[1])
    if report is None:
        return
    size = f", {report.images} images" if report.images is not None else ""
    st.markdown(f"**{report.model or 'Model'}** on dataset `{report.fingerprint or '?'}`{size}")
    if report.curve is not None and report.curve.points:
        st.plotly_chart(cutoff_figure(report.curve), key=f"models_eval_curve_{job.id}")
    for number, table in enumerate(report.tables):
        st.markdown(f"**{table.title}**")
        config = {column: st.column_config.Column(help=text) for column, text in table.help.items()
                  if column in table.columns}
        st.dataframe(evaluation_frame(table), hide_index=True, key=f"models_eval_table_{job.id}_{number}",
                     width="stretch", column_config=config)
        for note in table.notes:
            st.caption(note)
    for note in report.notes:
        st.caption(note)
    import json

    columns = st.columns(2)
    columns[0].download_button("Tables (CSV)", evaluation_csv(report), file_name=f"evaluation-{job.id}.csv",
                               mime="text/csv", key=f"models_eval_csv_{job.id}")
    columns[1].download_button("Everything (JSON)", json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8"),
                               file_name=f"evaluation-{job.id}.json", mime="application/json",
                               key=f"models_eval_json_{job.id}")


def show_evaluation_job(task: TaskInfo) -> None:
    """The evaluation job this page follows, live or finished."""
    import streamlit as st

    from medlim.ui.jobs import follow_job, page_job

    job = page_job(EVAL_JOB_KEY, "evaluate")
    if job is None:
        return
    st.subheader("Evaluation on your data")
    follow_job(job, key=EVAL_JOB_KEY, render_done=_evaluation_done)
