"""What the Models page shows about tasks, models and datasets, as typed records any front end prints.

Issue 12 ("Models page") and issue 17 ("Each task's default"): a person picks a
task, points at a dataset, sees what ``medlim data check`` sees, trains, and
finds the new version beside the shipped ones. Everything the page shows comes
from here, so the command line can emit the same:

* :data:`TASKS` — the tasks a person brings data for (:class:`TaskInfo`):
  which registry task holds their models, which ``data check`` task checks
  their data, whether the page trains them today, and which figures matter.
* :func:`model_catalogue` → :class:`ModelCatalogue` of :class:`ModelRow`:
  both registries' models of a task, with source, default mark, date, dataset
  fingerprint and the task's key figures (``to_json()``, ``lines()``).
* :func:`inspect_dataset` → :class:`DatasetReport`: the check and fingerprint
  of a folder (``medlim data check --task T --json`` computes the same), its
  summary as labelled rows and every problem in plain words.
* :class:`TrainingCurve` — loss and validation figure per epoch, read from the
  progress lines of :func:`medlim.core.training.fit` and the trainers, so a
  page draws a live curve and a CLI could print it.
* :class:`TrainingRequest` → :func:`training_argv`: the ``medlim train <trainer>
  --data DIR ...`` arguments a page queues as a ``train`` job (issue 15), so
  a page's training is the command line's, run by a worker.
* :func:`picker_label`: a model as the pages' weights pickers list it, with its
  dataset fingerprint, key figure and date.

What does not live here: training itself (each room's trainer), the
registries (:mod:`medlim.core.weights`), and drawing (:mod:`medlim.ui.models`).
No streamlit, no torch.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlim.core.datasets import (
    PROBLEM_KINDS,
    DatasetCheck,
    DatasetFingerprint,
    DatasetProblem,
    check_dataset,
    dataset_fingerprint,
    open_dataset,
)
from medlim.core.text import escape_control
from medlim.core.weights import ListedModel, Registries
from medlim.errors import ParameterError, WeightsError

__all__ = [
    "TASKS",
    "DatasetReport",
    "EpochPoint",
    "KeyMetric",
    "ModelCatalogue",
    "ModelRow",
    "ProblemRow",
    "TRAINERS",
    "TaskInfo",
    "TrainingCurve",
    "TrainingRequest",
    "inspect_dataset",
    "model_catalogue",
    "picker_label",
    "picker_caption",
    "task_info",
    "trainer_task",
    "training_argv",
]


@dataclass(frozen=True)
class TaskInfo:
    """A task a person can bring data for.

    Attributes:
        key: the ``medlim data check --task`` name (``"ood"``, ``"bac"``, ...).
        title: the task for people.
        registry_task: the ``task`` of its models in the registries.
        page: the page that uses its models (title in the navigation).
        trains_from_page: the Models page trains it on a user's folder today.
        command: the command that trains it on a user's folder today, or ``None``.
        today: one sentence on what the command line does for this task today.
        key_metrics: ``(column, path)`` of the figures shown per model; ``path``
            is dot-separated keys into the entry's ``metrics``.
    """

    key: str
    title: str
    registry_task: str
    page: str
    trains_from_page: bool
    command: str | None
    today: str
    key_metrics: tuple[tuple[str, str], ...]


#: The tasks, in menu order.
TASKS: tuple[TaskInfo, ...] = (
    TaskInfo(
        "bac", "Breast arterial calcification (SCU-Net segmentation)", "bac-segmentation",
        "Arterial calcification", True,
        "medlim train scunet --data DIR --max-minutes M",
        "`medlim train scunet --data DIR --max-minutes M` fine-tunes the default model (or `--init NAME`) on your "
        "images with BAC masks (manifest.csv with image,mask[,patient]).",
        (("validation whole-view Dice", "whole_view.dice"), ("held-out Dice", "whole_image_dice"),
         ("held-out patch Dice", "patch_dice")),
    ),
    TaskInfo(
        "steatosis", "Liver steatosis (Mask R-CNN droplets)", "steatosis-instance-segmentation",
        "Liver steatosis", True,
        "medlim train steatosis --data DIR --max-minutes M",
        "`medlim train steatosis --data DIR --max-minutes M` trains on your unlabelled H&E images with the "
        "thesis's weak labels.",
        (("held-out F1", "network.f1"), ("held-out AP", "network.ap")),
    ),
    TaskInfo(
        "ood", "Out-of-distribution detection (TEND / CVAD)", "ood-detection", "Out-of-distribution", True,
        "medlim train tend|cvad --data DIR --id-class CLASS --max-minutes M",
        "`medlim train tend|cvad --data DIR --id-class CLASS --max-minutes M` trains on your class folders.",
        (("validation AUROC", "validation.auroc"), ("validation FPR@95%TPR", "validation.fpr_at_95_tpr"),
         ("held-out AUROC", "heldout.auroc")),
    ),
    TaskInfo(
        "oscars", "Similar-image search (OSCARS)", "image-retrieval", "Similar images", True,
        "medlim train oscars --data EXTERNAL --internal INTERNAL --name NAME --max-minutes M",
        "`medlim train oscars --data EXTERNAL --internal INTERNAL --name NAME` trains OSCARS and the triplet "
        "baseline on your class folders.",
        (("validation precision@10", "validation.precision@10"), ("held-out precision@1", "heldout.precision@1"),
         ("held-out hit rate@5", "heldout.hit_rate@5")),
    ),
    TaskInfo(
        "pms", "Multi-label search (PMS)", "multilabel-retrieval", "Similar images", True,
        "medlim train pms --data DIR --name NAME --max-minutes M",
        "`medlim train pms --data DIR --name NAME` trains on your multi-label manifest (labels separated by |).",
        (("held-out precision@1 (weighted)", "heldout.weighted.full_precision@1"),
         ("held-out hit rate@5 (weighted)", "heldout.weighted.full_hit_rate@5")),
    ),
)


def task_info(key: str) -> TaskInfo:
    """The :class:`TaskInfo` of ``key`` (a ``data check`` task name or a registry task).

    Raises:
        ParameterError: an unknown task (the message lists the known ones).
    """
    for task in TASKS:
        if key in (task.key, task.registry_task):
            return task
    raise ParameterError(f"unknown task {key!r}; known: {', '.join(t.key for t in TASKS)}.")


# -------------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class KeyMetric:
    """One figure of a model: ``column`` (e.g. ``"validation AUROC"``) and its value, or ``None``."""

    column: str
    value: float | None


def _lookup(metrics: Mapping[str, Any], path: str) -> float | None:
    """The number at ``path`` (dot-separated keys) in ``metrics``, or ``None``."""
    value: Any = metrics
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class ModelRow:
    """One model of a task as the catalogue lists it.

    Attributes:
        label: ``name@version``.
        name: registry name.
        version: registry version.
        source: ``"shipped"`` or ``"user"``.
        default: the task's default now (the user's choice, else the shipped mark).
        date: ``YYYY-MM-DD`` the model was made (recorded, else — for a user
            model — the day its weights file was written), or ``None``.
        fingerprint: id of the dataset it was trained on (user models), or ``None``.
        metrics: the task's key figures, in :attr:`TaskInfo.key_metrics` order.
        description: the entry's one line for people.
    """

    label: str
    name: str
    version: str
    source: str
    default: bool
    date: str | None
    fingerprint: str | None
    metrics: tuple[KeyMetric, ...]
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.label, "name": self.name, "version": self.version, "source": self.source,
            "default": self.default, "date": self.date, "fingerprint": self.fingerprint,
            "metrics": {m.column: m.value for m in self.metrics}, "description": self.description,
        }


def _entry_date(listed: ListedModel) -> str | None:
    """The recorded date of an entry, else the write date of a user model's file (``None`` for shipped)."""
    recorded = listed.entry.to_dict()
    for key in ("created", "date"):  # written by registries that record it
        if isinstance(recorded.get(key), str) and recorded[key]:
            return str(recorded[key])[:10]
    if listed.source != "user":
        return None  # a shipped file's date is the day it was checked out, not the day it was trained
    try:
        stamp = listed.entry.path.stat().st_mtime
    except (OSError, ValueError, WeightsError):  # a missing file, or one outside the folder: no date to show
        return None
    return _dt.datetime.fromtimestamp(stamp, tz=_dt.UTC).date().isoformat()


def _row(listed: ListedModel, task: TaskInfo) -> ModelRow:
    entry = listed.entry
    fingerprint = entry.data.get("fingerprint")
    fingerprint_id = fingerprint.get("id") if isinstance(fingerprint, Mapping) else None
    return ModelRow(
        label=entry.label, name=entry.name, version=entry.version, source=listed.source,
        default=listed.task_default, date=_entry_date(listed),
        fingerprint=str(fingerprint_id) if fingerprint_id else None,
        metrics=tuple(KeyMetric(column, _lookup(entry.metrics, path)) for column, path in task.key_metrics),
        description=entry.description,
    )


@dataclass(frozen=True)
class ModelCatalogue:
    """The models of one task in both registries.

    Attributes:
        task: the task.
        rows: its models, sorted by name then version.
        default: ``name@version`` of its default now, or ``None``.
        user_default: the default is the user's own choice (not the shipped mark).
    """

    task: TaskInfo
    rows: tuple[ModelRow, ...]
    default: str | None
    user_default: bool

    @property
    def columns(self) -> tuple[str, ...]:
        """The key-figure columns of the task."""
        return tuple(column for column, _ in self.task.key_metrics)

    def find(self, label: str) -> ModelRow | None:
        """The row ``name@version``, or ``None``."""
        return next((row for row in self.rows if row.label == label), None)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task.key, "registry_task": self.task.registry_task, "default": self.default,
                "user_default": self.user_default, "models": [row.to_json() for row in self.rows]}

    def lines(self) -> list[str]:
        """A text table (one line per model), as a command line prints it."""
        header = ("MODEL", "SOURCE", "DEFAULT", "DATE", "DATASET", *self.columns)
        table = [header] + [
            (row.label, row.source, "default" if row.default else "-", row.date or "-", row.fingerprint or "-",
             *("-" if m.value is None else f"{m.value:.3f}" for m in row.metrics))
            for row in self.rows
        ]
        widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
        return ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]


def model_catalogue(task: str | TaskInfo, *, registries: Registries | None = None) -> ModelCatalogue:
    """Both registries' models of ``task``, with source, default mark, date, dataset and key figures.

    Args:
        task: a :class:`TaskInfo`, or its key or registry task.
        registries: where to look (default: :meth:`Registries.load` from the settings).

    Raises:
        ParameterError: an unknown task.
        WeightsError: a manifest or the defaults file cannot be read.
    """
    info = task if isinstance(task, TaskInfo) else task_info(task)
    registries = registries if registries is not None else Registries.load()
    rows = tuple(_row(listed, info) for listed in registries.models(info.registry_task))
    default = registries.default(info.registry_task)
    shipped = registries.shipped_default(info.registry_task)
    user_default = default is not None and (shipped is None or default.key != shipped.key)
    return ModelCatalogue(task=info, rows=rows, default=None if default is None else default.label,
                          user_default=user_default)


# -------------------------------------------------------------------------------------------------
# datasets


@dataclass(frozen=True)
class ProblemRow:
    """One dataset problem in plain words.

    Attributes:
        kind: the problem kind (a key of :data:`medlim.core.datasets.PROBLEM_KINDS`).
        what: what that kind means.
        where: ``"row 4, hand/x.png"``, or ``"the whole dataset"``.
        message: what is wrong and what to do.
    """

    kind: str
    what: str
    where: str
    message: str


def _problem_row(problem: DatasetProblem) -> ProblemRow:
    where = ([f"row {problem.row}"] if problem.row is not None else []) + (
        [problem.item] if problem.item is not None else [])
    return ProblemRow(kind=problem.kind, what=PROBLEM_KINDS.get(problem.kind, problem.kind),
                      where=", ".join(where) or "the whole dataset", message=escape_control(problem.message))


@dataclass(frozen=True)
class DatasetReport:
    """A folder checked for a task, as ``medlim data check --task T`` checks it.

    Attributes:
        task: the task it was checked for.
        check: the check (summary, problems, split).
        fingerprint: the dataset's fingerprint (it names the data in a trained model's record).
    """

    task: TaskInfo
    check: DatasetCheck
    fingerprint: DatasetFingerprint

    @property
    def ok(self) -> bool:
        """Nothing is wrong: a trainer will accept the folder."""
        return self.check.ok

    @property
    def classes(self) -> tuple[str, ...]:
        """Classes that hold at least one image."""
        return tuple(name for name, count in self.check.summary.classes if count > 0)

    def summary_rows(self) -> tuple[tuple[str, str], ...]:
        """``(what, value)`` per line of the summary, as ``medlim data check`` prints it (:meth:`DatasetSummary.rows`)."""
        return self.check.summary.rows(split=self.check.split, fingerprint=self.fingerprint.id)

    def problem_rows(self) -> tuple[ProblemRow, ...]:
        """Every problem, in the order the check found them."""
        return tuple(_problem_row(problem) for problem in self.check.problems)

    def to_json(self) -> dict[str, Any]:
        """``{"summary", "problems", "fingerprint", "split"}``, as ``medlim data check --json`` prints."""
        document = self.check.to_json()
        return {"summary": document["summary"], "problems": document["problems"],
                "fingerprint": self.fingerprint.to_json(), "split": document["split"]}


def inspect_dataset(
    directory: str | Path,
    task: str | TaskInfo,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetReport:
    """Check a dataset folder for a task and fingerprint it (reads every image once).

    Args:
        directory: the dataset folder (any layout :func:`medlim.core.datasets.open_dataset` reads).
        task: the task (a :class:`TaskInfo` or its key).
        seed: the validation split's seed (the trainers' default is 0).
        progress: ``progress(done, total)`` after each image.

    Raises:
        ParameterError: an unknown task.
        InputError: the folder does not exist.
    """
    info = task if isinstance(task, TaskInfo) else task_info(task)
    dataset = open_dataset(Path(directory), task=info.key)
    check = check_dataset(dataset, task=info.key, seed=seed, progress=progress)
    return DatasetReport(task=info, check=check, fingerprint=dataset_fingerprint(dataset, check=check))


# -------------------------------------------------------------------------------------------------
# training progress, as a curve

# The harness's validation line (medlim.core.training.fit) and the trainers' epoch lines
# ("tend epoch 3/300: bce 0.24, g_in 107.1"): the first figure of an epoch line is its loss.
_VALIDATION_LINE = re.compile(r"^(?P<stage>.+?) validation after epoch (?P<epoch>\d+): (?P<metric>\S+) (?P<value>\S+)")
_EPOCH_LINE = re.compile(r"^(?P<stage>.+?) epoch (?P<epoch>\d+)/(?P<planned>\d+): (?P<metric>[^\s,]+) (?P<value>[^\s,]+)")


@dataclass(frozen=True)
class EpochPoint:
    """One point of a training curve.

    Attributes:
        stage: the trainer stage (``"autoencoder"``, ``"tend"``, ``"cvad generator"``, ...).
        epoch: the epoch of that stage (1-based).
        kind: ``"loss"`` (training loss of the epoch) or ``"validation"`` (the figure that picks the best state).
        metric: the figure's name (``"bce"``, ``"mse"``, ``"auroc"``).
        value: its value.
        planned: epochs the stage planned (loss points), or ``None``.
    """

    stage: str
    epoch: int
    kind: str
    metric: str
    value: float
    planned: int | None = None


def _number(text: str) -> float | None:
    """The finite number ``text`` holds, else ``None`` (a NaN loss has no place on a log axis)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class TrainingCurve:
    """Loss and validation points of a run, built from its progress lines.

    Attributes:
        points: in the order they came.
    """

    points: tuple[EpochPoint, ...] = field(default_factory=tuple)

    def with_line(self, line: str) -> TrainingCurve:
        """This curve plus the point ``line`` carries (the same curve when it carries none).

        A validation line belongs to the stage of the last epoch line (the
        harness names stages its own way, e.g. ``"AE baseline"`` for ``"autoencoder"``).
        """
        text = line.strip()
        match = _VALIDATION_LINE.match(text)
        if match is not None:
            value = _number(match["value"])
            stage = self.points[-1].stage if self.points else match["stage"]
            if value is None:
                return self
            return TrainingCurve(self.points + (EpochPoint(stage, int(match["epoch"]), "validation",
                                                           match["metric"], value),))
        match = _EPOCH_LINE.match(text)
        if match is None or _number(match["value"]) is None:
            return self
        point = EpochPoint(match["stage"], int(match["epoch"]), "loss", match["metric"], float(match["value"]),
                           planned=int(match["planned"]))
        return TrainingCurve(self.points + (point,))

    @property
    def stages(self) -> tuple[str, ...]:
        """Stages in the order they started."""
        return tuple(dict.fromkeys(point.stage for point in self.points))

    def series(self, stage: str, kind: str) -> tuple[tuple[int, ...], tuple[float, ...], str]:
        """``(epochs, values, metric name)`` of one stage and kind (empty tuples when none)."""
        chosen = [p for p in self.points if p.stage == stage and p.kind == kind]
        return (tuple(p.epoch for p in chosen), tuple(p.value for p in chosen), chosen[0].metric if chosen else "")

    def latest(self) -> EpochPoint | None:
        """The last loss point (the epoch running now), or ``None``."""
        return next((p for p in reversed(self.points) if p.kind == "loss"), None)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"stage": p.stage, "epoch": p.epoch, "kind": p.kind, "metric": p.metric, "value": p.value}
                for p in self.points]


# -------------------------------------------------------------------------------------------------
# training as a job: the command line a page queues

#: Task key → the ``medlim train`` trainers that train it (the first is the default).
TRAINERS: dict[str, tuple[str, ...]] = {
    "bac": ("scunet",), "steatosis": ("steatosis",), "ood": ("tend", "cvad"), "oscars": ("oscars",), "pms": ("pms",),
}
#: Trainers that start from registered weights (``--init``).
_FINE_TUNED = ("scunet", "steatosis")


@dataclass(frozen=True)
class TrainingRequest:
    """What a person asks a trainer to do on their folder (the options of ``medlim train``).

    Attributes:
        trainer: ``scunet``, ``steatosis``, ``tend``, ``cvad``, ``oscars`` or ``pms``.
        data: the dataset folder (absolute; a page's job confines it to the data roots when it runs).
        max_minutes: time budget of the whole command (> 0).
        name: registry name, or ``""`` for the trainer's default.
        id_class: the in-distribution class (``tend`` / ``cvad`` only).
        internal: the internal folder whose detectors bin the external images (``oscars`` only).
        init: weights to start from, ``NAME[@VERSION]``, ``"none"`` (from scratch), or ``""`` (the task's
            default model; ``scunet`` / ``steatosis`` only).
        skip_bad: leave out the rows with problems instead of refusing the dataset.
    """

    trainer: str
    data: Path
    max_minutes: float
    name: str = ""
    id_class: str = ""
    internal: Path | None = None
    init: str = ""
    skip_bad: bool = False


def trainer_task(trainer: str) -> TaskInfo:
    """The task a trainer's models belong to.

    Raises:
        ParameterError: an unknown trainer.
    """
    for key, trainers in TRAINERS.items():
        if trainer in trainers:
            return task_info(key)
    known = ", ".join(t for trainers in TRAINERS.values() for t in trainers)
    raise ParameterError(f"unknown trainer {trainer!r}; known: {known}.")


def training_argv(request: TrainingRequest) -> list[str]:
    """``["train", trainer, "--data", DIR, ...]``: the command a ``train`` job runs (without ``medlim``).

    Raises:
        ParameterError: an unknown trainer, a budget that is not a positive number of minutes, an OOD
            trainer without its class, OSCARS without its internal folder, or ``--init`` where the trainer
            does not fine-tune.
    """
    trainer_task(request.trainer)
    minutes = request.max_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ParameterError(f"the time budget must be a positive number of minutes; {minutes!r} is given.")
    argv = ["train", request.trainer, "--data", str(request.data), "--max-minutes", f"{float(minutes):g}"]
    if request.trainer in ("tend", "cvad"):
        if not request.id_class.strip():
            raise ParameterError(f"`medlim train {request.trainer}` needs the in-distribution class (--id-class).")
        argv += ["--id-class", request.id_class.strip()]
    if request.trainer == "oscars":
        if request.internal is None:
            raise ParameterError("`medlim train oscars` needs the internal folder (--internal) for its detectors.")
        argv += ["--internal", str(request.internal)]
    if request.init.strip():
        if request.trainer not in _FINE_TUNED:
            raise ParameterError(f"`medlim train {request.trainer}` does not start from other weights (--init).")
        argv += ["--init", request.init.strip()]
    if request.name.strip():
        argv += ["--name", request.name.strip()]
    if request.skip_bad:
        argv.append("--skip-bad")
    return argv


def picker_label(listed: ListedModel) -> str:
    """A model as a page's weights picker lists it.

    ``name@version`` with its marks (yours, default); a user's model also shows
    the dataset it was trained on, its first key figure and the day it was made
    (``"tend-hand@2 (yours, default) · data 3f2a9c1e0b7d · validation AUROC 0.912 ·
    2026-12-05"``), so a version trained on the Models page is told apart from the others.
    """
    entry = listed.entry
    marks = [word for word, on in (("yours", listed.source == "user"), ("default", listed.task_default)) if on]
    parts = [f"{entry.name}@{entry.version}" + (f" ({', '.join(marks)})" if marks else "")]
    task = getattr(entry, "task", None)
    if listed.source != "user" or not isinstance(task, str):
        return parts[0]
    try:
        row = _row(listed, task_info(task))
    except ParameterError:  # a task no page trains: name and marks only
        return parts[0]
    if row.fingerprint:
        parts.append(f"data {row.fingerprint[:12]}")
    figure = next((metric for metric in row.metrics if metric.value is not None), None)
    if figure is not None:
        parts.append(f"{figure.column} {figure.value:.3f}")
    if row.date:
        parts.append(row.date)
    return " · ".join(parts)


def picker_caption(entry: Any, *, source: str) -> str:
    """The line a page shows under its weights picker for the chosen model: what it is, in the manifest's words.

    The manifest's ``description`` with where the model comes from (``"shipped: …"`` or ``"yours: …"`` for
    ``source`` ``"user"``); the ``name@version`` alone when it has none, so two shipped versions are told apart
    by more than their numbers.
    """
    where = "yours" if source == "user" else "shipped"
    description = " ".join(str(getattr(entry, "description", "") or "").split())
    return f"{where}: {description}" if description else f"{where}: {entry.name}@{entry.version}"
