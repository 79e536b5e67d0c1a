"""The worker loop: claim queued jobs and run each in a child process (``medlim worker``).

Each job runs in its own child (``python -m medlim.core.jobs.runner``), so a job
that crashes (or runs out of memory) does not take the worker with it, and a
cancelled job can be stopped even inside a long step. While the child runs, the
worker heartbeats the job and itself every ``stale_s / 4`` seconds (at most
every ``poll_s``); a job asked to stop gets :data:`CANCEL_GRACE_S` to stop at its
next progress call, then is terminated. Before each claim, running jobs whose
heartbeat is older than ``stale_s`` (their worker died) are queued again, so
any worker resumes them from their checkpoint.

Stopping a worker (:class:`threading.Event` ``stop``, set by SIGTERM/SIGINT in
``medlim worker``) terminates the current child and puts its job back in the
queue, resumable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medlim.core.jobs.model import JobFailure, JobLost
from medlim.core.jobs.queue import (
    Lease,
    claim_next_job,
    finish_job,
    get_job,
    record_progress,
    release_job,
    requeue_stale_jobs,
)
from medlim.core.jobs.workers import beat_worker, new_worker_id, register_worker, remove_worker
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store.engine import Store

__all__ = ["CANCEL_GRACE_S", "WorkerOptions", "run_worker"]

#: Seconds a job asked to stop gets to stop by itself before its process is terminated.
CANCEL_GRACE_S = 5.0

#: Seconds a terminated child gets before it is killed.
_TERMINATE_WAIT_S = 10.0


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs.

    Attributes:
        stale_s: heartbeat age after which a running job is queued again (``MEDLIM_JOB_STALE_S``).
        poll_s: seconds between looks at an empty queue.
        once: run at most one job, and stop when the queue is empty.
        max_jobs: stop after this many jobs (``None``: no limit).
    """

    stale_s: float = 60.0
    poll_s: float = 2.0
    once: bool = False
    max_jobs: int | None = None

    def __post_init__(self) -> None:
        if not self.stale_s > 0 or not self.poll_s > 0:
            raise ParameterError(f"the stale period and the poll interval must be positive; "
                                 f"{self.stale_s} and {self.poll_s} are given.")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ParameterError(f"--max-jobs must be a positive number; {self.max_jobs} is given.")

    @property
    def beat_s(self) -> float:
        """Seconds between heartbeats: four per stale period, and no slower than the poll."""
        return max(min(self.stale_s / 4.0, self.poll_s), 0.05)


def run_worker(
    store: Store,
    options: WorkerOptions,
    *,
    stop: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Run queued jobs until ``stop`` is set (or the ``once`` / ``max_jobs`` limits).

    Args:
        store: the results store holding the queue.
        options: intervals and limits.
        stop: set it to stop (the current job is put back in the queue, resumable).
        say: receives one line per event (claimed, finished, re-queued); default stderr.

    Returns:
        The number of jobs this worker ran to an end (done, failed or cancelled).
    """
    stop = stop or threading.Event()
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    worker = new_worker_id()
    register_worker(store, worker)
    say(f"worker {worker} started (stale after {options.stale_s:g} s)")
    finished = 0
    try:
        while not stop.is_set():
            for job_id in requeue_stale_jobs(store, stale_s=options.stale_s):
                say(f"job {job_id}: its worker stopped answering; queued again to resume")
            lease = claim_next_job(store, worker)
            if lease is None:
                if options.once:
                    break
                beat_worker(store, worker, job_id=None)
                stop.wait(options.poll_s)
                continue
            say(f"job {lease.job_id}: claimed (attempt {lease.attempt})")
            state = _run_in_child(store, lease, options, stop)
            say(f"job {lease.job_id}: {state}")
            finished += state in ("done", "failed", "cancelled")
            if options.once or (options.max_jobs is not None and finished >= options.max_jobs):
                break
    finally:
        remove_worker(store, worker)
        say(f"worker {worker} stopped after {finished} job(s)")
    return finished


def _start_child(lease: Lease) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "medlim.core.jobs.runner", str(lease.job_id), lease.worker,
               str(lease.attempt), str(os.getpid())]
    # Its own session: a Ctrl-C at the worker's terminal reaches the worker, which then stops the child.
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(_TERMINATE_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _watch(store: Store, lease: Lease, options: WorkerOptions, stop: threading.Event,
           child: subprocess.Popen[bytes]) -> str:
    """Heartbeat while the child runs; ``"exited"``, ``"stopping"``, ``"cancelled"`` or ``"lost"``."""
    cancel_seen_at: float | None = None
    clock = threading.Event()
    while child.poll() is None:
        if stop.is_set():
            return "stopping"
        try:
            cancel = record_progress(store, lease)
        except JobLost:
            return "lost"
        beat_worker(store, lease.worker, job_id=lease.job_id)
        if cancel:
            cancel_seen_at = cancel_seen_at or time.monotonic()
            if time.monotonic() - cancel_seen_at > CANCEL_GRACE_S:
                return "cancelled"
        clock.wait(options.beat_s)
    return "exited"


def _ended_by_child(store: Store, lease: Lease) -> bool:
    """Whether this attempt's child recorded the job's end (done, failed or cancelled, by this worker's attempt)."""
    job = get_job(store, lease.job_id)
    return job.finished and job.attempts == lease.attempt and (job.worker == lease.worker or job.worker is None)


def _run_in_child(store: Store, lease: Lease, options: WorkerOptions, stop: threading.Event) -> str:
    """Run the job in a child process and make sure its end is recorded; the job's state after."""
    child = _start_child(lease)
    try:
        outcome = _watch(store, lease, options, stop, child)
        if outcome == "lost" and _ended_by_child(store, lease):
            child.wait(_TERMINATE_WAIT_S)  # it recorded the end and is exiting: let it
    except subprocess.TimeoutExpired:
        pass
    finally:
        _stop_child(child)
    beat_worker(store, lease.worker, job_id=None)
    job = get_job(store, lease.job_id)
    if _ended_by_child(store, lease):
        return job.state  # the child recorded the end
    if job.state != "running" or job.worker != lease.worker or job.attempts != lease.attempt:
        return "lost (another worker holds it now)"
    try:
        if outcome == "stopping" and not job.cancel_requested:
            release_job(store, lease)
            return "queued again (the worker is stopping; it resumes from its checkpoint)"
        if outcome == "cancelled" or job.cancel_requested:
            finish_job(store, lease, "cancelled")
            return "cancelled"
        finish_job(store, lease, "failed", failure=JobFailure(
            "JobCrashed", f"the job's process ended (exit status {child.returncode}) before it finished; "
                          "submit it again, or run the command in the foreground to see why."))
    except JobLost:
        return "lost (another worker holds it now)"
    return "failed"
