"""Jobs: long work that survives a closed tab, recorded in the results store (issue 15).

What lives here: the typed :class:`Job` record and its states (``model``), the
queue on the store's ``jobs`` table with atomic claims, leases and stale-job
re-queueing (``queue``), the :class:`JobContext` a job's work reports through
(``context``), the table of kinds read lazily by name (``kinds``), running one
job in a child process (``runner``), the worker loop (``worker``), the worker
registry (``workers``) and starting a worker beside the app (``launch``).

What does not: any room's work. Kinds map to runner functions named
``"module:function"`` in ``medlim/cli/job_kinds.py`` (each calls the same service
as the foreground command); the core never imports them.

Using it (a page or the command line)::

    from medlim.core.jobs import submit_job, get_job, list_jobs, cancel_job, job_log
    from medlim.core.store import open_store

    with open_store() as store:
        job = submit_job(store, "bac.quantify", {"argv": ["bac", "quantify", *paths]}, origin="page")
    # later (a page polls, e.g. in an st.fragment(run_every=2)):
        job = get_job(store, job.id)
        job.state                # queued | running | done | failed | cancelled
        job.progress.done, job.progress.total, job.progress.stage, job.progress.message
        job.result               # the runner's JSON once done; job.error (class, message) once failed
        cancel_job(store, job.id)
        [line.line for line in job_log(store, job.id)]

Every kind takes ``{"argv": [...]}``: the foreground command's arguments
(without ``medlim`` and ``--background``), parsed again when the job runs; an
optional ``"cwd"`` resolves relative paths; a page's paths (origin ``"page"``)
are confined to ``MEDLIM_DATA_ROOTS`` when it runs.

Without login, every user of an app sees every job.
"""

from __future__ import annotations

from medlim.core.jobs.context import JobContext
from medlim.core.jobs.kinds import job_kinds, register_kind, resolve_runner
from medlim.core.jobs.model import FINISHED_STATES, JOB_STATES, Job, JobCancelled, JobFailure, JobLost, JobProgress
from medlim.core.jobs.queue import (
    JobLogLine,
    Lease,
    cancel_job,
    claim_job,
    claim_next_job,
    get_job,
    job_log,
    list_jobs,
    requeue_stale_jobs,
    submit_job,
)
from medlim.core.jobs.workers import WorkerInfo, live_workers

__all__ = [
    "FINISHED_STATES",
    "JOB_STATES",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailure",
    "JobLogLine",
    "JobLost",
    "JobProgress",
    "Lease",
    "WorkerInfo",
    "cancel_job",
    "claim_job",
    "claim_next_job",
    "get_job",
    "job_kinds",
    "job_log",
    "list_jobs",
    "live_workers",
    "register_kind",
    "requeue_stale_jobs",
    "resolve_runner",
    "submit_job",
]
