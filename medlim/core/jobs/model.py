"""What a job is: the typed record a page or the command line reads back (issue 15).

A job is a recorded request for long work (its ``kind`` and JSON ``parameters``,
where it came from, the fingerprint of the dataset it reads) and where it stands:
its state, progress, result or error, timestamps, and the lease of the worker
running it. States move ``queued → running → done | failed | cancelled``; a
running job whose worker died goes back to ``queued`` and resumes from its
``checkpoint``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FINISHED_STATES",
    "JOB_STATES",
    "ORIGINS",
    "Job",
    "JobCancelled",
    "JobFailure",
    "JobLost",
    "JobProgress",
]

#: Every state a job can be in.
JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")

#: States a job never leaves.
FINISHED_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})

#: Where a job may come from: the command line (paths as given) or a page (paths confined to the data roots).
ORIGINS: tuple[str, ...] = ("cli", "page")


class JobCancelled(Exception):  # noqa: N818 - a signal, not an error a person made
    """Raised inside a runner by :meth:`JobContext.progress` when the job was asked to stop.

    Not a :class:`~medlim.errors.MedlimError`: it is control flow that the job
    machinery catches (the job ends ``cancelled``), never shown as a failure.
    """


class JobLost(Exception):  # noqa: N818 - a signal, not an error a person made
    """Raised when this process no longer holds the job's lease (it was re-queued and
    claimed again, or cancelled while queued): the process must stop writing and exit."""


@dataclass(frozen=True)
class JobProgress:
    """How far a job has come.

    Attributes:
        done: units finished (files, epochs, steps), ``>= 0``.
        total: units planned; ``None`` while unknown.
        stage: what is running now ("detectors", "scoring", "epoch"), ``""`` when none.
        message: a short line for a person (no file names unless pseudonymised).
    """

    done: int = 0
    total: int | None = None
    stage: str = ""
    message: str = ""

    @property
    def fraction(self) -> float | None:
        """``done / total`` clipped to [0, 1], ``None`` while the total is unknown or zero."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "stage": self.stage, "message": self.message}


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed: the error's class and its message (never a traceback or a file path of the code).

    Attributes:
        error: class name, e.g. ``"CorruptFileError"`` or ``"JobCrashed"``.
        message: what a person can act on.
    """

    error: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"class": self.error, "message": self.message}


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class Job:
    """One job as stored (a snapshot: read it again with :func:`~medlim.core.jobs.get_job` to follow it).

    Attributes:
        id: the job's number (``medlim jobs show ID``).
        kind: what runs, e.g. ``"bac.quantify"`` (see :mod:`medlim.core.jobs.kinds`).
        parameters: the request, JSON (for the command kinds ``{"argv": [...], "cwd": ...}``).
        origin: ``"cli"`` or ``"page"``.
        dataset_fingerprint: an identifier of the input data when the submitter knows one.
        state: one of :data:`JOB_STATES`.
        progress: done / total, stage, message.
        result: what the runner returned (JSON) once ``done``.
        error: why it failed, when ``failed``.
        cancel_requested: a stop was asked while it ran.
        created_at, started_at, finished_at, heartbeat_at: UTC timestamps (``None`` until known).
        worker: the id of the worker holding it while running.
        attempts: how many times a worker claimed it (a resumed job has ``attempts > 1``).
        checkpoint: JSON a runner saved to resume from.
    """

    id: int
    kind: str
    parameters: dict[str, Any]
    origin: str
    state: str
    progress: JobProgress = field(default_factory=JobProgress)
    result: dict[str, Any] | None = None
    error: JobFailure | None = None
    dataset_fingerprint: str | None = None
    cancel_requested: bool = False
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    worker: str | None = None
    attempts: int = 0
    checkpoint: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled (it will not change again)."""
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``medlim jobs show ID --json`` prints."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress.to_dict(),
            "origin": self.origin,
            "parameters": self.parameters,
            "dataset_fingerprint": self.dataset_fingerprint,
            "cancel_requested": self.cancel_requested,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "heartbeat_at": _iso(self.heartbeat_at),
            "worker": self.worker,
            "attempts": self.attempts,
            "checkpoint": self.checkpoint,
            "result": self.result,
            "error": None if self.error is None else self.error.to_dict(),
        }
