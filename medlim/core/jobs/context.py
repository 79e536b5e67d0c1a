"""What a running job's work sees: progress, log, checkpoint and cancellation (issue 15).

A runner gets a :class:`JobContext`. ``progress(done, total, stage=..., message=...)``
records how far it is, heartbeats the job and raises
:class:`~medlim.core.jobs.model.JobCancelled` when a stop was asked, so long work
stops at its next step; ``log(text)`` adds lines to the job's log; ``checkpoint``
and ``save_checkpoint(data)`` keep what a resumed attempt needs (per-file results
of a batch, the last finished epoch) so nothing is done twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medlim.core.jobs.model import Job, JobCancelled, JobProgress
from medlim.core.jobs.queue import Lease, append_log, record_progress, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store.engine import Store

__all__ = ["JobContext"]


class JobContext:
    """The running job's handle on its record (one per attempt).

    Args:
        store: the results store holding the job.
        job: the job as claimed.
        lease: this attempt's lease; every write is conditional on it (a lost lease
            raises :class:`~medlim.core.jobs.model.JobLost`).
    """

    def __init__(self, store: Store, job: Job, lease: Lease) -> None:
        self.store = store
        self.job = job
        self.lease = lease
        self._checkpoint: dict[str, Any] = dict(job.checkpoint or {})

    @property
    def parameters(self) -> dict[str, Any]:
        """The job's parameters (a copy)."""
        return dict(self.job.parameters)

    @property
    def attempt(self) -> int:
        """1 for the first run, more when the job resumes after its worker stopped."""
        return self.lease.attempt

    @property
    def resumed(self) -> bool:
        """True when an earlier attempt ran (read :attr:`checkpoint` to skip its work)."""
        return self.lease.attempt > 1

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What the last :meth:`save_checkpoint` kept (``{}`` when nothing was), a copy."""
        return dict(self._checkpoint)

    def save_checkpoint(self, data: dict[str, Any]) -> None:
        """Keep ``data`` (JSON) for a resumed attempt; written with a heartbeat, in one transaction."""
        save_checkpoint(self.store, self.lease, dict(data))
        self._checkpoint = dict(data)

    def progress(self, done: int, total: int | None = None, *, stage: str = "", message: str = "") -> None:
        """Record progress and heartbeat.

        Args:
            done: units finished so far (files, epochs).
            total: units planned (``None`` while unknown).
            stage: what runs now.
            message: a short line for a person (no file names unless pseudonymised).

        Raises:
            JobCancelled: a stop was asked (``medlim jobs cancel``, a page's Cancel).
            JobLost: the job is no longer this attempt's.
        """
        if record_progress(self.store, self.lease, JobProgress(int(done), total, stage, message)):
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def check_cancelled(self) -> None:
        """Heartbeat only; raises :class:`JobCancelled` when a stop was asked."""
        if record_progress(self.store, self.lease):
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def log(self, text: str) -> None:
        """Add a line (or several) to the job's log."""
        append_log(self.store, self.lease, text)
