"""Running one claimed job in this process: the child a worker starts for each job.

``python -m medlim.core.jobs.runner JOB_ID WORKER ATTEMPT PARENT_PID`` runs the
job's kind with a :class:`~medlim.core.jobs.context.JobContext` and writes its
end: ``done`` with the runner's result, ``failed`` with the error's class and
message (a :class:`~medlim.errors.MedlimError`'s own message; for a bug only its
class, the traceback going to the worker's stderr, never into the store), or
``cancelled``. On Linux the child asks to be killed with its worker
(``PR_SET_PDEATHSIG``), so a worker killed with SIGKILL leaves no orphan
writing to a job another worker resumes; the lease fences it anyway.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any

from medlim.core.jobs.context import JobContext
from medlim.core.jobs.kinds import Runner, resolve_runner
from medlim.core.jobs.model import Job, JobCancelled, JobFailure, JobLost
from medlim.core.jobs.queue import Lease, finish_job, get_job
from medlim.errors import MedlimError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store.engine import Store

__all__ = ["json_safe", "main", "run_job"]


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN and ±inf as ``None``, tuples as lists, other objects as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return str(value)


def _failure(exc: BaseException) -> JobFailure:
    if isinstance(exc, MedlimError):
        return JobFailure(type(exc).__name__, exc.message)
    if isinstance(exc, MemoryError):
        return JobFailure("MemoryError", "there was not enough memory to finish the job; run it on a larger machine.")
    return JobFailure(type(exc).__name__, "an internal error stopped the job; the worker's output holds the details.")


def run_job(store: Store, lease: Lease, *, runner: Runner | None = None) -> Job:
    """Run the leased job here and record how it ended.

    Args:
        store: the results store.
        lease: from :func:`~medlim.core.jobs.queue.claim_job`.
        runner: the work (default: the kind's registered runner).

    Returns:
        The job as it ended (unchanged when the lease was lost meanwhile).
    """
    job = get_job(store, lease.job_id)
    context = JobContext(store, job, lease)
    try:
        work = runner if runner is not None else resolve_runner(job.kind)
        result = work(context, dict(job.parameters))
        finish_job(store, lease, "done", result=json_safe(dict(result or {})))
    except JobCancelled:
        _finish_quietly(store, lease, "cancelled", None)
    except JobLost:
        pass  # another attempt owns the job now; write nothing
    except (MedlimError, MemoryError) as exc:
        _finish_quietly(store, lease, "failed", _failure(exc))
    except Exception as exc:  # a bug: record its class, show the traceback on the worker's stderr only
        traceback.print_exc(file=sys.stderr)
        _finish_quietly(store, lease, "failed", _failure(exc))
    return get_job(store, lease.job_id)


def _finish_quietly(store: Store, lease: Lease, state: str, failure: JobFailure | None) -> None:
    try:
        finish_job(store, lease, state, failure=failure)
    except JobLost:
        pass


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - exotic libc
            pass
    if parent_pid and os.getppid() != parent_pid:
        raise SystemExit(3)


def main(argv: list[str] | None = None) -> int:
    """The child's entry point: ``JOB_ID WORKER ATTEMPT PARENT_PID``; exit 0 when the job's end was recorded."""
    from medlim.core.store import open_store

    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 4:
        print("usage: python -m medlim.core.jobs.runner JOB_ID WORKER ATTEMPT PARENT_PID", file=sys.stderr)
        return 2
    _die_with_parent(int(args[3]))
    lease = Lease(int(args[0]), args[1], int(args[2]))
    try:
        with open_store() as store:
            job = run_job(store, lease)
    except MedlimError as exc:
        print(f"medlim job {lease.job_id}: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps({"job": job.id, "state": job.state}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
