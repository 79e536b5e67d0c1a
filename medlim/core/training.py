"""One training harness for every trainer that learns from a user's folder (issue 12).

What lives here, shared by the TEND/CVAD, SCU-Net, steatosis and retrieval
trainers:

* :class:`Deadline` — the ``--max-minutes`` budget, started when the command
  starts, so it covers preparation, training, validation and baselines.
* :func:`prepare_training_data` — the same check as ``medlim data check``
  (:func:`medlim.core.datasets.check_dataset`); a dataset with problems is
  refused with every problem listed (:class:`DatasetProblemsError`, exit 2)
  unless ``skip_bad`` drops the bad rows (reported). The validation split is
  20 % by patient when a ``patient`` column exists, else by image (stratified
  by class), seeded and recorded; a separate validation folder overrides it.
  The dataset's fingerprint names the data in the manifest and in the
  recorded command — never a path or a file name.
* :func:`fit` — runs epochs (a trainer's step boundary), validates, keeps the
  best state by a validation score, stops early after ``patience`` validations
  without improvement, and stops before an epoch (plus its validation) would
  overrun the budget. A run that never validated raises
  :class:`NotValidatedError`: nothing unvalidated is ever registered.
* Inside a ``train`` job, :func:`fit` saves the trainer after every epoch and a
  resumed attempt goes on after the last saved epoch; the model is registered
  once per job (:mod:`medlim.core.training_resume`).
* :func:`run_epochs` — the same epoch loop for a stage that is not validated
  (OSCARS's anomaly detectors, the phantom recipes): saved and resumed inside
  a job exactly as :func:`fit`.
* :class:`TrainingPlan` — the settings a trainer derived from the data (as
  nnU-Net derives its plan from a dataset fingerprint), with the reason for
  each, recorded in the manifest entry (``plan``).
* :class:`TrainingOutcome` — ``{"registered": [{"name", "version"}, ...],
  "validation": {...}}``, printed by the command as the last line of stdout;
  progress goes to stderr through a ``progress(line)`` callback.

What does not: networks, losses and data loading of each task (in each room),
and the registries (:mod:`medlim.core.weights`). No torch here: states are
whatever the trainer's ``snapshot`` returns.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from medlim.core.datasets import (
    DEFAULT_VAL_FRACTION,
    Dataset,
    DatasetCheck,
    DatasetFingerprint,
    DatasetProblem,
    DropReport,
    check_dataset,
    dataset_fingerprint,
    drop_bad_items,
    open_dataset,
)
from medlim.core.text import escape_control
from medlim.core.training_resume import FitResume
from medlim.core.weights.entry import WeightsEntry, json_safe
from medlim.errors import ParameterError

__all__ = [
    "DatasetProblemsError",
    "NotValidatedError",
    "Progress",
    "stderr_progress",
    "Deadline",
    "ValidationScore",
    "FitResult",
    "fit",
    "run_epochs",
    "TrainingData",
    "prepare_training_data",
    "check_folder",
    "problem_lines",
    "TrainingPlan",
    "TrainingOutcome",
    "recorded_command",
]

#: A progress callback: one human-readable line at a time (the CLI writes it to stderr).
Progress = Callable[[str], None]
State = TypeVar("State")


class DatasetProblemsError(ParameterError):
    """A training or validation folder has problems (the message lists every one).

    Attributes:
        problems: the problems, as ``medlim data check`` reports them.
    """

    def __init__(self, message: str, problems: Sequence[DatasetProblem]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class NotValidatedError(ParameterError):
    """Training ended (time budget, or no validation epoch) before the model was validated once."""


def stderr_progress(line: str) -> None:
    """Write one progress line to stderr (flushed)."""
    print(line, file=sys.stderr, flush=True)


class Deadline:
    """A wall-clock budget started at construction (``--max-minutes``).

    Args:
        max_minutes: the budget in minutes; ``None`` (or 0) means no limit.
        clock: seconds from an arbitrary origin (``time.monotonic``; tests pass a fake one).

    Raises:
        ParameterError: a negative or non-finite budget.
    """

    def __init__(self, max_minutes: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_minutes is not None and (
            isinstance(max_minutes, bool) or not math.isfinite(float(max_minutes)) or float(max_minutes) < 0
        ):
            raise ParameterError(f"--max-minutes must be a positive number of minutes; {max_minutes!r} is given.")
        self.clock = clock
        self.max_minutes = float(max_minutes) if max_minutes else None
        self.started = clock()
        self.ends = None if self.max_minutes is None else self.started + 60.0 * self.max_minutes
        self.parent: Deadline | None = None  # the budget this one was shared from

    @property
    def limited(self) -> bool:
        return self.ends is not None

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return self.clock() - self.started

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit, never negative)."""
        return math.inf if self.ends is None else max(0.0, self.ends - self.clock())

    def expired(self) -> bool:
        """True once the budget is spent."""
        return self.ends is not None and self.clock() >= self.ends

    def share(self, fraction: float) -> Deadline:
        """A budget for one stage: ``fraction`` (in (0, 1]) of the time left now, never beyond this one."""
        if not 0.0 < fraction <= 1.0:
            raise ParameterError(f"`fraction` must be in (0, 1], {fraction!r} is given.")
        stage = Deadline(None, clock=self.clock)
        stage.max_minutes = self.max_minutes
        stage.parent = self
        if self.ends is not None:
            stage.ends = min(self.ends, stage.started + fraction * self.remaining())
        return stage

    def spent_fraction(self) -> float:
        """Share of this budget spent so far, in [0, 1]; 0 without a limit. A learning-rate schedule's time
        fraction: a trainer that anneals by the larger of it and its step fraction still ends annealed when the
        budget cuts it short (it moves with :meth:`catch_up`, so a resumed job keeps its place)."""
        if self.ends is None:
            return 0.0
        length = self.ends - self.started
        return 1.0 if length <= 0 else min(1.0, max(0.0, (self.clock() - self.started) / length))

    def command_elapsed(self) -> float:
        """Seconds the whole command's budget has spent (the outermost budget this stage was shared from)."""
        return self.parent.command_elapsed() if self.parent is not None else self.elapsed()

    def catch_up(self, spent: float) -> None:
        """Count ``spent`` seconds as spent by the command, when it has spent less so far.

        A resumed training job calls it with what its earlier attempt had spent at its last
        checkpoint, so it goes on with the rest of the budget; this stage and every budget it
        was shared from move their start and end earlier by the difference.
        """
        extra = float(spent) - self.command_elapsed()
        if not math.isfinite(extra) or extra <= 0:
            return
        budget: Deadline | None = self
        while budget is not None:
            budget.started -= extra
            if budget.ends is not None:
                budget.ends -= extra
            budget = budget.parent

    def describe(self) -> str:
        """``"0.5 min (--max-minutes)"`` or ``"no time limit"``."""
        return "no time limit" if self.max_minutes is None else f"{self.max_minutes:g} min (--max-minutes)"


@dataclass(frozen=True)
class ValidationScore:
    """One validation of a model; higher ``score`` is better.

    Attributes:
        score: the value that picks the best state (e.g. AUROC, Dice).
        metric: its name, for progress lines (``"auroc"``).
        tiebreak: compared when scores are equal (higher is better).
        metrics: everything measured, JSON-ready (recorded for the best state).
        payload: what the trainer needs with the best state (e.g. calibrated thresholds).
    """

    score: float
    metric: str = "score"
    tiebreak: float = 0.0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    payload: Any = None


@dataclass(frozen=True)
class FitResult(Generic[State]):
    """What :func:`fit` kept.

    Attributes:
        state: the snapshot taken at the best validation.
        best: that validation.
        best_epoch: the epoch it followed (1-based).
        epochs_run: epochs trained.
        epochs_planned: epochs the plan allowed.
        validations: validations run.
        stopped: ``"completed"``, ``"early stopping"`` or ``"time budget"``.
        history: ``(epoch, score)`` of every validation.
        seconds: wall time of the fit.
    """

    state: State
    best: ValidationScore
    best_epoch: int
    epochs_run: int
    epochs_planned: int
    validations: int
    stopped: str
    history: tuple[tuple[int, float], ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The best validation's metrics plus how the fit went."""
        return {
            **json_safe(dict(self.best.metrics)),
            self.best.metric: json_safe(self.best.score),
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "epochs_planned": self.epochs_planned,
            "validations": self.validations,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class _FitProgress:
    """How far a fit is (what a checkpoint keeps besides the trainer)."""

    epoch: int = 0  # the last epoch trained (and validated when due)
    best: ValidationScore | None = None
    state: Any = None
    best_epoch: int = 0
    since_best: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    epoch_seconds: float = 0.0
    validation_seconds: float = 0.0
    stopped: str = ""  # "", or "early stopping" once patience ran out

    def to_checkpoint(self) -> dict[str, Any]:
        best = None if self.best is None else {
            "score": float(self.best.score), "metric": self.best.metric, "tiebreak": float(self.best.tiebreak),
            "metrics": dict(self.best.metrics), "payload": self.best.payload}
        return {"epoch": self.epoch, "best": best, "state": self.state, "best_epoch": self.best_epoch,
                "since_best": self.since_best, "history": [list(pair) for pair in self.history],
                "epoch_seconds": self.epoch_seconds, "validation_seconds": self.validation_seconds,
                "stopped": self.stopped}

    @classmethod
    def from_checkpoint(cls, saved: Mapping[str, Any]) -> _FitProgress:
        best = None if saved["best"] is None else ValidationScore(**saved["best"])
        return cls(epoch=int(saved["epoch"]), best=best, state=saved["state"], best_epoch=int(saved["best_epoch"]),
                   since_best=int(saved["since_best"]), history=[(int(e), float(v)) for e, v in saved["history"]],
                   epoch_seconds=float(saved["epoch_seconds"]), validation_seconds=float(saved["validation_seconds"]),
                   stopped=str(saved["stopped"]))


def _resumed(resume: FitResume | None, deadline: Deadline, label: str, progress: Progress | None) -> _FitProgress:
    """The progress saved by an earlier attempt of this job (trainer restored, budget caught up), or a fresh one."""
    saved = resume.checkpoint.load() if resume is not None else None
    if resume is None or saved is None:
        return _FitProgress()
    resume.restore(saved["trainer"])
    deadline.catch_up(float(saved["spent"]))
    done = _FitProgress.from_checkpoint(saved["fit"])
    if progress is not None:
        progress(f"{label}: resumed after epoch {done.epoch} from the job's checkpoint")
    return done


def _save(resume: FitResume | None, done: _FitProgress, deadline: Deadline) -> None:
    if resume is not None:
        resume.checkpoint.save({"trainer": resume.capture(), "fit": done.to_checkpoint(),
                                "spent": deadline.command_elapsed()})


def fit(
    train_epoch: Callable[[int], str | None],
    *,
    epochs: int,
    validate: Callable[[], ValidationScore],
    snapshot: Callable[[], State],
    deadline: Deadline,
    patience: int | None = None,
    first_validation: int = 1,
    label: str = "model",
    progress: Progress | None = None,
    resume: FitResume | None = None,
) -> FitResult[State]:
    """Train epoch by epoch, validate after each, keep the best state; stop on budget or patience.

    An epoch is the step boundary: it is started only when the budget left
    covers the last epoch's and the last validation's duration, and a
    validation is run only while the budget is not spent.

    Args:
        train_epoch: trains epoch ``k`` (1-based); returns a progress line or ``None``.
        epochs: epochs planned (≥ 1).
        validate: scores the model as it is now.
        snapshot: a copy of the state to keep (e.g. a deep copy of a state dict).
        deadline: the command's budget (or a stage's :meth:`Deadline.share`).
        patience: stop after this many validations without a better score (``None``: never).
        first_validation: first epoch after which to validate (e.g. after a warm-up).
        label: the model, for messages.
        progress: callback for progress lines.
        resume: inside a job (:func:`medlim.core.training_resume.fit_resume`): save after every epoch,
            and go on after the last saved epoch of an earlier attempt with the rest of the budget.

    Returns:
        A :class:`FitResult` holding the best state.

    Raises:
        NotValidatedError: no validation ran (budget spent, or ``first_validation > epochs``).
        ParameterError: bad ``epochs``, ``patience`` or ``first_validation``.
    """
    _check_fit_options(epochs, first_validation, patience)
    clock, started = deadline.clock, deadline.clock()
    done = _resumed(resume, deadline, label, progress)
    stopped = done.stopped or "completed"  # or "time budget", "early stopping"
    for epoch in range(done.epoch + 1, epochs + 1 if not done.stopped else 0):
        needed = done.epoch_seconds + (done.validation_seconds if epoch >= first_validation else 0.0)
        if deadline.expired() or deadline.remaining() < needed:
            stopped = "time budget"
            break
        tick = clock()
        line = train_epoch(epoch)
        done.epoch_seconds, done.epoch = clock() - tick, epoch
        if progress is not None and line:
            progress(line)
        if epoch >= first_validation and deadline.expired():
            stopped = "time budget"
            break
        if epoch >= first_validation:
            tick = clock()
            result = validate()
            done.validation_seconds = clock() - tick
            _keep_if_better(done, epoch, result, snapshot, label, progress)
            if patience is not None and done.since_best >= patience:
                stopped = done.stopped = "early stopping"
        _save(resume, done, deadline)
        if done.stopped:
            break
    best = done.best
    if best is None:
        raise NotValidatedError(_never_validated(label, deadline, done.epoch, epochs, first_validation))
    if progress is not None:
        progress(f"{label}: kept epoch {done.best_epoch} ({best.metric} {best.score:.4f}); stopped: {stopped}")
    return FitResult(state=done.state, best=best, best_epoch=done.best_epoch, epochs_run=done.epoch,
                     epochs_planned=epochs, validations=len(done.history), stopped=stopped,
                     history=tuple(done.history), seconds=clock() - started)


def run_epochs(
    train_epoch: Callable[[int], str | None],
    *,
    epochs: int,
    deadline: Deadline | None = None,
    label: str = "model",
    progress: Progress | None = None,
    report_every: int = 1,
    resume: FitResume | None = None,
) -> int:
    """Train the epochs of a stage that is not validated, saved and resumed inside a job as :func:`fit` does.

    For stages whose result is not chosen by a validation score: OSCARS's
    per-class anomaly detectors and the phantom recipes (their schedule is
    fixed; they are judged on a held-out set afterwards). The first epoch always
    runs; each further one only while ``deadline`` has at least the last epoch's
    duration left.

    Args:
        train_epoch: trains epoch ``k`` (1-based); returns a progress line or ``None``.
        epochs: epochs planned (≥ 1).
        deadline: the stage's budget (default: none).
        label: the stage, for messages.
        progress: callback for progress lines.
        report_every: pass on every ``report_every``-th epoch's line (and the last one's).
        resume: inside a job (:func:`medlim.core.training_resume.fit_resume`): save after every epoch,
            and go on after the last saved epoch of an earlier attempt (a finished stage is not trained again).

    Returns:
        The epochs trained, those of an earlier attempt included.

    Raises:
        ParameterError: bad ``epochs`` or ``report_every``.
    """
    _check_fit_options(epochs, 1, None)
    if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
        raise ParameterError(f"`report_every` must be an integer ≥ 1, {report_every!r} is given.")
    deadline = deadline if deadline is not None else Deadline(None)
    clock = deadline.clock
    done = _resumed(resume, deadline, label, progress)
    while done.epoch < epochs and not done.stopped:
        if done.epoch > 0 and deadline.remaining() < done.epoch_seconds:
            done.stopped = "time budget"
            _save(resume, done, deadline)
            break
        tick = clock()
        line = train_epoch(done.epoch + 1)
        done.epoch_seconds, done.epoch = clock() - tick, done.epoch + 1
        if progress is not None and line and (done.epoch == epochs or done.epoch % report_every == 0):
            progress(line)
        _save(resume, done, deadline)
    return done.epoch


def _keep_if_better(done: _FitProgress, epoch: int, result: ValidationScore, snapshot: Callable[[], Any],
                    label: str, progress: Progress | None) -> None:
    """Record a validation; keep a snapshot when it beats the best so far."""
    done.history.append((epoch, float(result.score)))
    best = done.best
    improved = best is None or (result.score, result.tiebreak) > (best.score, best.tiebreak)
    if improved:
        done.best, done.state, done.best_epoch, done.since_best = result, snapshot(), epoch, 0
    else:
        done.since_best += 1
    if progress is not None:
        progress(f"{label} validation after epoch {epoch}: {result.metric} {result.score:.4f}"
                 + (" (best so far)" if improved else ""))


def _check_fit_options(epochs: int, first_validation: int, patience: int | None) -> None:
    for name, value in (("epochs", epochs), ("first_validation", first_validation)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"`{name}` must be an integer ≥ 1, {value!r} is given.")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ParameterError(f"`patience` must be a positive integer or None, {patience!r} is given.")


def _never_validated(label: str, deadline: Deadline, epochs_run: int, epochs: int, first_validation: int) -> str:
    if deadline.limited and (deadline.expired() or epochs_run < min(epochs, first_validation)):
        return (
            f"{label} was never validated: the time budget of {deadline.describe()} ran out after "
            f"{deadline.elapsed():.1f} s, with {epochs_run} of {epochs} epochs trained (validation starts after "
            f"epoch {first_validation}). Nothing was registered; give more minutes, or fewer or smaller images."
        )
    return (
        f"{label} was never validated: it trains {epochs} epochs and validates from epoch {first_validation}. "
        "Nothing was registered; train for more epochs."
    )


# -------------------------------------------------------------------------------------------------
# the data


@dataclass(frozen=True)
class TrainingData:
    """A checked training folder, its validation part and what the manifest records of them.

    Attributes:
        dataset: the training dataset (bad rows dropped with ``skip_bad``).
        train: indices of ``dataset.items`` to train on.
        val_dataset: the dataset validation items come from (``dataset`` itself, or the ``--val`` folder).
        val: indices of ``val_dataset.items`` to validate on.
        check: the check of ``dataset`` (its digests name items without paths).
        fingerprint: the fingerprint of ``dataset``.
        val_fingerprint: the fingerprint of the ``--val`` folder, or ``None``.
        split: how the validation part was made, JSON-ready (no indices, no names).
        dropped: what ``skip_bad`` dropped (training and validation folders), or ``None``.
    """

    dataset: Dataset
    train: tuple[int, ...]
    val_dataset: Dataset
    val: tuple[int, ...]
    check: DatasetCheck
    fingerprint: DatasetFingerprint
    val_fingerprint: DatasetFingerprint | None
    split: Mapping[str, Any]
    dropped: tuple[DropReport, ...] | None = None

    def record(self) -> dict[str, Any]:
        """The manifest entry's ``data``: ``{"source": "user", "fingerprint", "split"[, "dropped"]}``."""
        out: dict[str, Any] = {"source": "user", "fingerprint": self.fingerprint.to_json(), "split": dict(self.split)}
        if self.dropped is not None:
            out["dropped"] = sum(len(report.dropped) for report in self.dropped)
        return out

    def command_options(self) -> list[tuple[str, Any]]:
        """``--data <fingerprint id>`` (and ``--val <id>``) for the recorded command."""
        options: list[tuple[str, Any]] = [("--data", self.fingerprint.id)]
        if self.val_fingerprint is not None:
            options.append(("--val", self.val_fingerprint.id))
        return options


def problem_lines(problems: Sequence[DatasetProblem]) -> list[str]:
    """One line per problem, as ``medlim data check`` prints them."""
    lines = []
    for problem in (p.shown() for p in problems):  # inside a job: no file names (DatasetProblem.shown)
        where = [f"row {problem.row}"] if problem.row is not None else []
        if problem.item is not None:
            where.append(problem.item)
        place = f" [{', '.join(where)}]" if where else ""
        lines.append(f"  {problem.kind}{place}: {escape_control(problem.message)}")
    return lines


def _counting(progress: Progress | None, what: str) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` for :func:`check_dataset` that writes about ten lines."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            progress(f"checking the {what}: {done}/{total} images")

    return report


def check_folder(
    directory: str | Path,
    *,
    task: str,
    what: str = "dataset",
    val_fraction: float | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    ignore: Sequence[str] = (),
    progress: Progress | None = None,
) -> tuple[Dataset, DatasetCheck, DropReport | None]:
    """Open and check one folder as ``medlim data check`` does; refuse its problems unless ``skip_bad`` drops them.

    Args:
        directory: the folder.
        task: the task whose layouts are accepted.
        what: the folder's role, for messages (``"training folder"``).
        val_fraction: the validation share whose parts must be large enough, or
            ``None`` to check the folder as one part.
        seed: the split's seed.
        skip_bad: leave out the rows and files with problems (reported through ``progress``).
        ignore: problem kinds that do not matter to the caller (e.g. an evaluator
            ignores ``too_few_images``).
        progress: callback for progress lines.

    Returns:
        ``(dataset, check, drop report or None)``; the dataset is the one to use.

    Raises:
        DatasetProblemsError: problems, all listed (or problems ``skip_bad`` cannot fix).
    """
    directory = Path(directory)

    def problems_of(check: DatasetCheck) -> tuple[DatasetProblem, ...]:
        return tuple(problem for problem in check.problems if problem.kind not in ignore)

    dataset = open_dataset(directory, task=task)
    check = check_dataset(dataset, task=task, val_fraction=val_fraction, seed=seed,
                          progress=_counting(progress, what))
    if not problems_of(check):
        return dataset, check, None
    if not skip_bad:
        problems = problems_of(check)
        raise DatasetProblemsError(
            f"the {what} ({escape_control(directory)}) has {len(problems)} problem(s); fix them, or give "
            "--skip-bad to leave out the bad rows:\n" + "\n".join(problem_lines(problems)),
            problems,
        )
    kept, report = drop_bad_items(dataset, check)
    remaining = tuple(problem for problem in report.remaining if problem.kind not in ignore)
    if remaining:
        raise DatasetProblemsError(
            f"the {what} ({escape_control(directory)}) has problem(s) that --skip-bad cannot fix by leaving out "
            "rows:\n" + "\n".join(problem_lines(remaining)),
            remaining,
        )
    if progress is not None:
        count = len(report.dropped)
        progress(f"--skip-bad: left out {count} bad entr{'y' if count == 1 else 'ies'} of the {what}, "
                 f"{report.kept} images kept:")
        for line in problem_lines(report.dropped):
            progress(line)
    check = check_dataset(kept, task=task, val_fraction=val_fraction, seed=seed)
    if problems_of(check):
        raise DatasetProblemsError(
            f"the {what} ({escape_control(directory)}) still has problem(s) after leaving out the bad rows:\n"
            + "\n".join(problem_lines(problems_of(check))),
            problems_of(check),
        )
    return kept, check, report


def prepare_training_data(
    directory: str | Path,
    task: str,
    *,
    val_dir: str | Path | None = None,
    skip_bad: bool = False,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    progress: Progress | None = None,
) -> TrainingData:
    """Check a training folder (and a validation folder) the way ``medlim data check`` does, and split it.

    Args:
        directory: the training folder (any layout :func:`medlim.core.datasets.open_dataset` reads).
        task: the task whose layouts the trainer accepts (``"ood"``, ``"bac"``, ...).
        val_dir: a separate validation folder; ``None`` holds out ``val_fraction``
            of ``directory`` (by patient when a ``patient`` column exists, else by image).
        skip_bad: leave out the rows and files with problems (reported through ``progress``)
            instead of refusing the dataset.
        seed: seed of the split.
        val_fraction: share held out when ``val_dir`` is ``None``.
        progress: callback for progress lines.

    Returns:
        A :class:`TrainingData`.

    Raises:
        DatasetProblemsError: a folder has problems (every one listed), or
            problems ``skip_bad`` cannot fix (too few images, an empty class, a wrong layout).
        InputError: a folder does not exist.
    """
    directory = Path(directory)
    separate = val_dir is not None
    dataset, check, dropped = check_folder(directory, task=task, what="training folder",
                                       val_fraction=None if separate else val_fraction, seed=seed,
                                       skip_bad=skip_bad, progress=progress)
    fingerprint = dataset_fingerprint(dataset, check=check)
    reports = [dropped] if dropped is not None else []
    if val_dir is None:
        split = check.split
        assert split is not None  # a checked dataset without problems holds images
        return TrainingData(dataset=dataset, train=split.train, val_dataset=dataset, val=split.val, check=check,
                            fingerprint=fingerprint, val_fingerprint=None, split=split.to_json(),
                            dropped=tuple(reports) if skip_bad else None)
    val_dataset, val_check, val_dropped = check_folder(Path(val_dir), task=task, what="validation folder",
                                                   val_fraction=None, seed=seed, skip_bad=skip_bad,
                                                   progress=progress)
    if val_dropped is not None:
        reports.append(val_dropped)
    val_fingerprint = dataset_fingerprint(val_dataset, check=val_check)
    if val_fingerprint.sha256 == fingerprint.sha256:
        raise ParameterError("the validation folder (--val) holds the same images as the training folder; "
                             "give a validation folder with other images, or leave out --val.")
    folder_split = {"by": "folder", "seed": seed, "train_images": len(dataset), "val_images": len(val_dataset),
                    "val_fingerprint": val_fingerprint.to_json()}
    return TrainingData(dataset=dataset, train=tuple(range(len(dataset))), val_dataset=val_dataset,
                        val=tuple(range(len(val_dataset))), check=check, fingerprint=fingerprint,
                        val_fingerprint=val_fingerprint, split=folder_split,
                        dropped=tuple(reports) if skip_bad else None)


# -------------------------------------------------------------------------------------------------
# plans, commands and results


@dataclass(frozen=True)
class TrainingPlan:
    """Settings a trainer derived from the data, with a reason for each (recorded as the entry's ``plan``).

    Attributes:
        task: the trainer (``"tend"``, ``"cvad"``, ``"scunet"``, ...).
        settings: the values used, JSON-ready.
        reasons: setting → why it has that value (e.g. ``"median image side 512 px, capped at 128"``).
        overridden: settings given on the command line instead of planned.
    """

    task: str
    settings: Mapping[str, Any]
    reasons: Mapping[str, str] = field(default_factory=dict)
    overridden: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "settings": json_safe(dict(self.settings)), "reasons": dict(self.reasons),
                "overridden": list(self.overridden)}


def recorded_command(program: str, options: Sequence[tuple[str, Any]]) -> str:
    """A command line to record in a manifest: ``program`` and its options, each value shell-quoted.

    Args:
        program: e.g. ``"medlim train tend"``.
        options: ``(flag, value)`` in order; ``None`` and ``False`` are left out,
            ``True`` writes the flag alone. Name data by its fingerprint id
            (:meth:`TrainingData.command_options`), never by its path.
    """
    words = [program]
    for flag, value in options:
        if value is None or value is False:
            continue
        words.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training command reports as the last line of stdout.

    Attributes:
        registered: the entries written, in order.
        validation: registered model name → the best validation's metrics (and how the fit went).
        extra: further keys of the result (e.g. ``"data"``, ``"heldout"``).
    """

    registered: tuple[WeightsEntry, ...]
    validation: Mapping[str, Mapping[str, Any]]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"registered": [{"name", "version"}, ...], "validation": {...}, **extra}``."""
        return {
            "registered": [{"name": e.name, "version": e.version} for e in self.registered],
            "validation": json_safe({k: dict(v) for k, v in self.validation.items()}),
            **json_safe(dict(self.extra)),
        }

    def result_line(self) -> str:
        """The result as one line of strict JSON."""
        return json.dumps(self.to_json(), allow_nan=False, ensure_ascii=False)

    def emit(self) -> None:
        """What a ``medlim train …`` command ends with: the validation figures as a readable table on stderr (the
        Models page's table, :func:`medlim.core.validation_report.validation_table`), then :meth:`result_line`
        as the last line of stdout."""
        from medlim.core.validation_report import validation_table

        table = validation_table(self.to_json())
        if table.rows:
            print("\n".join(["", *table.lines()]), file=sys.stderr, flush=True)
        print(self.result_line(), flush=True)
