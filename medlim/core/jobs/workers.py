"""Who is running jobs: one ``workers`` row per worker, kept fresh by its heartbeat.

A worker is alive while its heartbeat is younger than ``MEDLIM_JOB_STALE_S``;
``medlim bac quantify --background`` uses :func:`live_workers` to tell a person
that the job waits queued until ``medlim worker`` runs.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from medlim.core.jobs.queue import changed_rows
from medlim.core.store.engine import transaction
from medlim.core.store.schema import WorkerRow, as_utc, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store.engine import Store

__all__ = ["WorkerInfo", "beat_worker", "live_workers", "new_worker_id", "register_worker", "remove_worker"]


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as recorded: id, host, process id, the job it runs (``None`` when idle), last heartbeat."""

    id: str
    host: str
    pid: int
    job_id: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime


def new_worker_id() -> str:
    """A unique worker id: ``host:pid:random`` (readable in ``medlim jobs show``)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def register_worker(store: Store, worker: str) -> None:
    """Record a starting worker (replacing a row of the same id)."""
    now = utc_now()
    with transaction(store) as session:
        session.execute(sa.delete(WorkerRow).where(WorkerRow.id == worker))
        session.add(WorkerRow(id=worker, host=socket.gethostname()[:256], pid=os.getpid(), started_at=now,
                              heartbeat_at=now, job_id=None))


def beat_worker(store: Store, worker: str, *, job_id: int | None) -> None:
    """Refresh the worker's heartbeat and the job it runs (registers it again if its row was removed)."""
    with transaction(store) as session:
        changed = changed_rows(session, sa.update(WorkerRow).where(WorkerRow.id == worker)
                               .values(heartbeat_at=utc_now(), job_id=job_id))
    if changed != 1:
        register_worker(store, worker)


def remove_worker(store: Store, worker: str) -> None:
    """Forget a worker that stops."""
    with transaction(store) as session:
        session.execute(sa.delete(WorkerRow).where(WorkerRow.id == worker))


def live_workers(store: Store, *, stale_s: float, now: dt.datetime | None = None) -> list[WorkerInfo]:
    """Workers with a heartbeat in the last ``stale_s`` seconds; rows older than ten stale periods are deleted."""
    now = utc_now() if now is None else now
    cutoff = now - dt.timedelta(seconds=float(stale_s))
    with transaction(store) as session:
        session.execute(sa.delete(WorkerRow).where(WorkerRow.heartbeat_at < now - dt.timedelta(seconds=10 * stale_s)))
        rows = list(session.scalars(sa.select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
                                    .order_by(WorkerRow.started_at)))
    return [WorkerInfo(row.id, row.host, row.pid, row.job_id, as_utc(row.started_at), as_utc(row.heartbeat_at))
            for row in rows]
