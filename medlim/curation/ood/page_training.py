"""Training OOD detectors on a user's folder for the Models page — the same runs as the command line.

Issue 12 ("Models page"): :func:`train_detectors` trains each chosen detector
kind with :func:`medlim.curation.ood.folder.train_on_folder`, the budget
shared evenly (what ``medlim train <kind> --data DIR --id-class C
--max-minutes M/len(kinds)`` does once per kind), and reports every progress
line with the training curve so far. It lives in the room, not in the UI
(issue 17: the UI keeps widgets, figures and caches only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medlim.core.model_catalogue import TrainingCurve
from medlim.errors import MedlimError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.training import TrainingOutcome
    from medlim.core.weights import Registries

__all__ = ["DETECTOR_KINDS", "PageTraining", "TrainingUpdate", "detector_names", "train_detectors"]

#: Detector kinds the page trains: label → :class:`~medlim.curation.ood.folder.FolderRun` kind.
DETECTOR_KINDS: dict[str, str] = {"TEND": "tend", "CVAD": "cvad"}


@dataclass(frozen=True)
class TrainingUpdate:
    """What a page shows while training: the last progress line, the curve so far, the budget spent.

    Attributes:
        line: the last progress line.
        curve: loss and validation points so far (all detectors of the run).
        fraction: share of the whole time budget spent, in [0, 1].
        kind: the detector being trained (``"tend"`` or ``"cvad"``).
    """

    line: str
    curve: TrainingCurve
    fraction: float
    kind: str


@dataclass(frozen=True)
class PageTraining:
    """What a training run from the page produced.

    Attributes:
        outcomes: one :class:`~medlim.core.training.TrainingOutcome` per detector kind, in order.
        kinds: the detector kinds trained and registered.
        curve: loss and validation points of every stage.
        failures: ``(kind, message)`` of each kind that registered nothing
            (e.g. never validated within its share of the budget) while another kind did.
        registry_task: the task of the registered models.
    """

    outcomes: tuple[TrainingOutcome, ...]
    kinds: tuple[str, ...]
    curve: TrainingCurve
    failures: tuple[tuple[str, str], ...] = ()
    registry_task: str = "ood-detection"

    @property
    def registered(self) -> tuple[str, ...]:
        """``name@version`` of every model registered (an AE baseline before its TEND)."""
        return tuple(entry.label for outcome in self.outcomes for entry in outcome.registered)

    @property
    def detectors(self) -> tuple[str, ...]:
        """``name@version`` of the detectors asked for (without the AE baselines)."""
        return tuple(outcome.registered[-1].label for outcome in self.outcomes if outcome.registered)


def detector_names(kinds: Sequence[str], name: str) -> dict[str, str | None]:
    """Registry name per kind: ``name`` for one kind, ``name-<kind>`` for several, ``None`` (the default) when empty.

    Raises:
        ParameterError: no kind, or an unknown kind.
    """
    if not kinds:
        raise ParameterError("choose at least one detector kind (TEND or CVAD).")
    unknown = [kind for kind in kinds if kind not in DETECTOR_KINDS.values()]
    if unknown:
        raise ParameterError(f"unknown detector kind(s) {unknown}; known: {', '.join(DETECTOR_KINDS.values())}.")
    name = name.strip()
    if not name:
        return {kind: None for kind in kinds}
    return {kind: name if len(kinds) == 1 else f"{name}-{kind}" for kind in kinds}


def train_detectors(
    folder: str | Path,
    *,
    id_class: str,
    kinds: Sequence[str],
    minutes: float,
    name: str = "",
    skip_bad: bool = False,
    registries: Registries,
    on_update: Callable[[TrainingUpdate], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PageTraining:
    """Train each detector kind on a class-folder dataset, the time budget shared evenly, and register them.

    Each kind is one :func:`medlim.curation.ood.folder.train_on_folder` run
    (``medlim train <kind> --data DIR --id-class C --max-minutes minutes/len(kinds)``).

    Args:
        folder: the dataset folder.
        id_class: the in-distribution class (``"C"``, ``"A,B"`` or ``"!C"``).
        kinds: ``"tend"`` and/or ``"cvad"``.
        minutes: the whole budget in minutes (> 0).
        name: registry name (empty: ``<kind>-<class>``; with two kinds ``<name>-<kind>``).
        skip_bad: leave out images with problems instead of refusing the dataset.
        registries: where names are looked up and the models written.
        on_update: called with every progress line.
        clock: seconds from an arbitrary origin (tests pass a fake one).

    Returns:
        What was registered; a kind that failed after another one had been
        tried is listed in :attr:`PageTraining.failures` instead of raised.

    Raises:
        ParameterError: no kind, or a budget that is not a positive number of minutes.
        DatasetProblemsError, NotValidatedError, WeightsError: from the trainer, when no kind registered anything.
    """
    from medlim.core.training import Deadline
    from medlim.curation.ood.folder import FolderRun, train_on_folder

    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        raise ParameterError(f"the time budget must be a positive number of minutes; {minutes!r} is given.")
    names = detector_names(kinds, name)
    import medlim.curation.ood.train  # noqa: F401 - load torch and the trainers before the budget starts
    share = float(minutes) / len(names)
    curve = TrainingCurve()
    outcomes: list[TrainingOutcome] = []
    failures: list[tuple[str, str]] = []
    for index, kind in enumerate(names):
        deadline = Deadline(share, clock=clock)

        def progress(line: str, kind: str = kind, index: int = index, deadline: Deadline = deadline) -> None:
            nonlocal curve
            curve = curve.with_line(line)
            if on_update is not None:
                spent = min(1.0, deadline.elapsed() / (60.0 * share))
                on_update(TrainingUpdate(line=line, curve=curve, fraction=(index + spent) / len(names), kind=kind))

        run = FolderRun(kind=kind, data_dir=Path(folder), id_classes=id_class, name=names[kind], skip_bad=skip_bad,
                        command_options=(("--max-minutes", f"{share:g}"),))
        try:
            outcomes.append(train_on_folder(run, registries=registries, deadline=deadline, progress=progress))
        except MedlimError as error:
            if not outcomes and index == len(names) - 1:
                raise  # nothing was registered: the page shows the error alone
            failures.append((kind, error.message))
    return PageTraining(outcomes=tuple(outcomes), kinds=tuple(k for k in names if k not in dict(failures)),
                        curve=curve, failures=tuple(failures))
