"""The job queue is the results store's ``jobs`` table (issue 15; migration 0004).

Submitting inserts a ``queued`` row. A worker claims one with a compare-and-set
``UPDATE jobs SET state='running', worker=?, attempts=attempts+1 ... WHERE id=?
AND state='queued'`` and checks the row count, which is atomic on SQLite and on
PostgreSQL alike, so two workers racing for a job never both win. From then on
``(worker, attempts)`` is the job's :class:`Lease`: every write of a running job
is conditional on it, so a worker that lost the job (it was re-queued as stale
and claimed again) cannot touch it any more (:class:`~medlim.core.jobs.model.JobLost`).

Every function is one transaction. Log lines are kept per job up to
:data:`LOG_MAX_LINES` (the oldest go first) and have control characters escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.jobs.model import FINISHED_STATES, JOB_STATES, ORIGINS, Job, JobFailure, JobLost, JobProgress
from medlim.core.store.engine import transaction
from medlim.core.store.schema import JobLogRow, JobRow, as_utc, utc_now
from medlim.core.text import escape_control
from medlim.errors import JobError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store.engine import Store

__all__ = [
    "LOG_MAX_LINES",
    "JobLogLine",
    "Lease",
    "append_log",
    "cancel_job",
    "changed_rows",
    "claim_job",
    "claim_next_job",
    "finish_job",
    "get_job",
    "job_log",
    "list_jobs",
    "record_progress",
    "release_job",
    "requeue_stale_jobs",
    "save_checkpoint",
    "submit_job",
]

#: Log lines kept per job (older lines are dropped first).
LOG_MAX_LINES = 2000

#: Longest stored log line, stage and message (longer ones are cut with "…").
_LINE_CHARS, _STAGE_CHARS, _MESSAGE_CHARS = 1000, 128, 512

#: Claims of a job that lost its worker each time before it is failed instead of queued again.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Lease:
    """The right to write a running job: held by the worker that claimed it for that attempt."""

    job_id: int
    worker: str
    attempt: int


@dataclass(frozen=True)
class JobLogLine:
    """One line of a job's log: when, in which attempt, what."""

    at: dt.datetime
    attempt: int
    line: str


def changed_rows(session: Session, statement: sa.Executable) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed (the compare-and-set check)."""
    return int(cast("sa.CursorResult[Any]", session.execute(statement)).rowcount)


def _short(text: str, limit: int) -> str:
    text = escape_control(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def _job(row: JobRow) -> Job:
    failure = None if row.error_class is None else JobFailure(row.error_class, row.error_message or "")
    return Job(
        id=row.id, kind=row.kind, parameters=dict(row.parameters or {}), origin=row.origin, state=row.state,
        progress=JobProgress(row.progress_done, row.progress_total, row.stage or "", row.message or ""),
        result=row.result, error=failure, dataset_fingerprint=row.dataset_fingerprint,
        cancel_requested=bool(row.cancel_requested), created_at=_aware(row.created_at),
        started_at=_aware(row.started_at), finished_at=_aware(row.finished_at),
        heartbeat_at=_aware(row.heartbeat_at), worker=row.worker, attempts=row.attempts, checkpoint=row.checkpoint,
    )


def submit_job(
    store: Store,
    kind: str,
    parameters: dict[str, Any],
    *,
    origin: str = "cli",
    dataset_fingerprint: str | None = None,
) -> Job:
    """Queue a job; a worker picks it up (``medlim worker``, or the one the app starts).

    Args:
        store: the results store (every process that sees it sees the job).
        kind: a registered kind (:func:`medlim.core.jobs.kinds.job_kinds`), e.g. ``"bac.quantify"``.
        parameters: the request as JSON (checked again when the job runs).
        origin: ``"cli"`` or ``"page"`` (a page's paths are confined to the data roots when it runs).
        dataset_fingerprint: an identifier of the input data, when known.

    Returns:
        The queued job.

    Raises:
        JobError: unknown kind or origin, or parameters that are not a JSON object.
    """
    from medlim.core.jobs.kinds import job_kinds

    if kind not in job_kinds():
        raise JobError(f"there is no job kind {kind!r}; known kinds: {', '.join(sorted(job_kinds()))}.")
    if origin not in ORIGINS:
        raise JobError(f"a job's origin must be one of {', '.join(ORIGINS)}; {origin!r} is given.")
    if not isinstance(parameters, dict):
        raise JobError(f"a job's parameters must be a JSON object; {type(parameters).__name__} is given.")
    row = JobRow(kind=kind, parameters=parameters, origin=origin, dataset_fingerprint=dataset_fingerprint,
                 state="queued", cancel_requested=False, progress_done=0, stage="", message="", attempts=0,
                 created_at=utc_now())
    with transaction(store) as session:
        session.add(row)
        session.flush()
        return _job(row)


def get_job(store: Store, job_id: int) -> Job:
    """The job's current record.

    Raises:
        JobError: there is no job with that id.
    """
    with transaction(store) as session:
        row = session.get(JobRow, int(job_id))
        if row is None:
            raise JobError(f"there is no job {job_id}; `medlim jobs list` shows the recent ones.")
        return _job(row)


def list_jobs(
    store: Store, *, states: Iterable[str] | None = None, kind: str | None = None, limit: int = 50
) -> list[Job]:
    """Recent jobs, newest first (every user of an app sees every job: there is no login).

    Args:
        states: only these states (default all).
        kind: only this kind.
        limit: at most this many.
    """
    query = sa.select(JobRow).order_by(JobRow.id.desc()).limit(max(int(limit), 1))
    if states is not None:
        wanted = [state for state in states]
        unknown = [state for state in wanted if state not in JOB_STATES]
        if unknown:
            raise JobError(f"unknown job state {unknown[0]!r}; states are {', '.join(JOB_STATES)}.")
        query = query.where(JobRow.state.in_(wanted))
    if kind is not None:
        query = query.where(JobRow.kind == kind)
    with transaction(store) as session:
        return [_job(row) for row in session.scalars(query)]


def cancel_job(store: Store, job_id: int) -> Job:
    """Stop a job: a queued one is cancelled at once; a running one is asked to stop (its
    runner sees it at its next progress call, its worker within a heartbeat) and ends
    ``cancelled``; a finished job is left as it is.

    Returns:
        The job after the request.
    """
    now = utc_now()
    with transaction(store) as session:
        session.execute(sa.update(JobRow).where(JobRow.id == int(job_id), JobRow.state == "queued")
                        .values(state="cancelled", finished_at=now, worker=None))
        session.execute(sa.update(JobRow).where(JobRow.id == int(job_id), JobRow.state == "running")
                        .values(cancel_requested=True))
    return get_job(store, job_id)


def job_log(store: Store, job_id: int, *, limit: int | None = None) -> list[JobLogLine]:
    """The job's log lines, oldest first (the last ``limit`` when given)."""
    get_job(store, job_id)  # an unknown id is an error, not an empty log
    query = sa.select(JobLogRow).where(JobLogRow.job_id == int(job_id)).order_by(JobLogRow.id.desc())
    if limit is not None:
        query = query.limit(max(int(limit), 1))
    with transaction(store) as session:
        rows = list(session.scalars(query))
    return [JobLogLine(as_utc(row.at), row.attempt, row.line) for row in reversed(rows)]


def claim_job(store: Store, job_id: int, worker: str) -> Lease | None:
    """Take a queued job for ``worker`` (compare-and-set on its state).

    Returns:
        The lease when this call won the job, ``None`` when it was not queued any more.
    """
    now = utc_now()
    with transaction(store) as session:
        claimed = changed_rows(session, (
            sa.update(JobRow)
            .where(JobRow.id == int(job_id), JobRow.state == "queued")
            .values(state="running", worker=worker, heartbeat_at=now, attempts=JobRow.attempts + 1,
                    started_at=sa.func.coalesce(JobRow.started_at, now))
        ))
        if claimed != 1:
            return None
        attempt = session.scalar(sa.select(JobRow.attempts).where(JobRow.id == int(job_id)))
    return Lease(int(job_id), worker, int(attempt or 0))


def claim_next_job(store: Store, worker: str, *, kinds: Iterable[str] | None = None) -> Lease | None:
    """Claim the oldest queued job (of ``kinds`` when given); ``None`` when there is none to win."""
    query = sa.select(JobRow.id).where(JobRow.state == "queued").order_by(JobRow.id).limit(8)
    if kinds is not None:
        query = query.where(JobRow.kind.in_(list(kinds)))
    with transaction(store) as session:
        candidates = list(session.scalars(query))
    for job_id in candidates:  # another worker may win one; try the next
        lease = claim_job(store, job_id, worker)
        if lease is not None:
            return lease
    return None


def requeue_stale_jobs(store: Store, *, stale_s: float, now: dt.datetime | None = None) -> list[int]:
    """Queue again the running jobs whose heartbeat is older than ``stale_s`` (their worker died).

    A stale job that was asked to stop ends ``cancelled``; one that lost its worker
    :data:`MAX_ATTEMPTS` times ends ``failed`` (it probably kills its worker).

    Returns:
        The ids of the jobs queued again.
    """
    now = utc_now() if now is None else now
    cutoff = now - dt.timedelta(seconds=float(stale_s))
    stale = sa.and_(JobRow.state == "running", sa.or_(JobRow.heartbeat_at.is_(None), JobRow.heartbeat_at < cutoff))
    with transaction(store) as session:
        session.execute(sa.update(JobRow).where(stale, JobRow.cancel_requested.is_(True))
                        .values(state="cancelled", finished_at=now, worker=None))
        session.execute(sa.update(JobRow).where(stale, JobRow.attempts >= MAX_ATTEMPTS).values(
            state="failed", finished_at=now, worker=None, error_class="WorkerLost",
            error_message=f"the job's worker stopped {MAX_ATTEMPTS} times while running it; it is not tried again."))
        ids = list(session.scalars(sa.select(JobRow.id).where(stale)))
        if ids:
            session.execute(sa.update(JobRow).where(JobRow.id.in_(ids), stale).values(state="queued", worker=None))
    return ids


def _leased(lease: Lease) -> sa.ColumnElement[bool]:
    return sa.and_(JobRow.id == lease.job_id, JobRow.state == "running", JobRow.worker == lease.worker,
                   JobRow.attempts == lease.attempt)


def _write(store: Store, lease: Lease, values: dict[str, Any]) -> bool:
    """Write a leased job's columns (and its heartbeat); whether a stop was asked.

    Raises:
        JobLost: the lease is gone.
    """
    with transaction(store) as session:
        changed = changed_rows(session, sa.update(JobRow).where(_leased(lease)).values(heartbeat_at=utc_now(), **values))
        if changed != 1:
            raise JobLost(f"job {lease.job_id} is no longer held by {lease.worker} (attempt {lease.attempt}).")
        return bool(session.scalar(sa.select(JobRow.cancel_requested).where(JobRow.id == lease.job_id)))


def record_progress(store: Store, lease: Lease, progress: JobProgress | None = None) -> bool:
    """Heartbeat the job, with its progress when given.

    Returns:
        Whether a stop was asked (:func:`cancel_job`).

    Raises:
        JobLost: the lease is gone.
    """
    values: dict[str, Any] = {}
    if progress is not None:
        values = {"progress_done": max(int(progress.done), 0),
                  "progress_total": None if progress.total is None else max(int(progress.total), 0),
                  "stage": _short(progress.stage, _STAGE_CHARS), "message": _short(progress.message, _MESSAGE_CHARS)}
    return _write(store, lease, values)


def save_checkpoint(store: Store, lease: Lease, checkpoint: dict[str, Any]) -> None:
    """Keep what the job needs to resume (JSON), atomically with its heartbeat."""
    _write(store, lease, {"checkpoint": checkpoint})


def append_log(store: Store, lease: Lease, text: str) -> None:
    """Add lines to the job's log (one row per line; the oldest beyond :data:`LOG_MAX_LINES` dropped)."""
    lines = [_short(line, _LINE_CHARS) for line in str(text).splitlines() if line.strip()]
    if not lines:
        return
    now = utc_now()
    with transaction(store) as session:
        session.add_all(JobLogRow(job_id=lease.job_id, attempt=lease.attempt, at=now, line=line) for line in lines)
        session.flush()
        keep_from = (sa.select(JobLogRow.id).where(JobLogRow.job_id == lease.job_id)
                     .order_by(JobLogRow.id.desc()).offset(LOG_MAX_LINES - 1).limit(1).scalar_subquery())
        session.execute(sa.delete(JobLogRow).where(JobLogRow.job_id == lease.job_id, JobLogRow.id < keep_from))


def finish_job(
    store: Store,
    lease: Lease,
    state: str,
    *,
    result: dict[str, Any] | None = None,
    failure: JobFailure | None = None,
) -> None:
    """End a leased job ``done`` (with its result), ``failed`` (with the failure) or ``cancelled``.

    Raises:
        JobLost: the lease is gone (the outcome is not written).
    """
    if state not in FINISHED_STATES:
        raise JobError(f"a job finishes done, failed or cancelled; {state!r} is given.")
    values: dict[str, Any] = {"state": state, "finished_at": utc_now()}
    if result is not None:
        values["result"] = result
    if failure is not None:
        values.update(error_class=_short(failure.error, 128), error_message=_short(failure.message, 4000))
    _write(store, lease, values)


def release_job(store: Store, lease: Lease) -> bool:
    """Put a leased job back in the queue (its worker is stopping); it resumes from its checkpoint.

    Returns:
        True when it was released, False when the lease was already gone.
    """
    with transaction(store) as session:
        return changed_rows(session, sa.update(JobRow).where(_leased(lease)).values(state="queued", worker=None)) == 1
