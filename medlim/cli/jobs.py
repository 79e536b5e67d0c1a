"""``medlim jobs``: follow, stop and read the jobs in the results store; ``--background`` submission (issue 15).

``medlim jobs list|show|cancel|logs [--json]`` read the same records a page
shows (:mod:`medlim.core.jobs`); ``show ID --json`` prints one object with
``id``, ``kind``, ``state``, ``progress`` (``done``, ``total``, ``stage``,
``message``), ``created_at``, ``result`` and ``error``.

``--background`` on ``bac quantify``, ``shift run``, ``ood score``,
``retrieval build`` and every ``train`` command queues the command as a job
(:func:`submit_background`) and prints one JSON line ``{"job": ID, "state":
"queued", ...}``; with no live worker it says so on stderr, and how to start one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["add_background_option", "job_argv", "register", "submit_background"]


def job_argv(argv: Sequence[str]) -> list[str]:
    """A command line as a job's argv: ``--background`` taken out."""
    return [str(arg) for arg in argv if arg != "--background"]


def add_background_option(parser: argparse.ArgumentParser, *, kind: str) -> None:
    """Give a command ``--background``: queue it as a job of ``kind`` instead of running it here."""
    parser.add_argument("--background", action="store_true",
                        help="queue the work as a job for a worker (`medlim worker`) and print its id; "
                             "follow it with `medlim jobs show ID`")
    parser.set_defaults(job_kind=kind)


def submit_background(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Queue the parsed command as a job; print ``{"job": id, "state": "queued", "kind": ...}``."""
    from medlim.core.jobs import live_workers, submit_job
    from medlim.core.store import open_store
    from medlim.settings import get_settings

    settings = get_settings()
    with open_store() as store:
        job = submit_job(store, args.job_kind, {"argv": job_argv(argv), "cwd": os.getcwd()}, origin="cli")
        workers = live_workers(store, stale_s=settings.job_stale_s)
    print(json.dumps({"job": job.id, "state": job.state, "kind": job.kind}), flush=True)
    if not workers:
        print(f"medlim: no worker is running: job {job.id} waits queued until one starts; start one with "
              "`medlim worker` (or open the app, which starts one unless MEDLIM_WORKER=external)", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list, show, cancel and read the log of background jobs")
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION")
    listing = sub.add_parser("list", help="recent jobs, newest first")
    listing.add_argument("--state", action="append", default=None,
                         choices=("queued", "running", "done", "failed", "cancelled"), help="only this state (repeatable)")
    listing.add_argument("--kind", default=None, help="only this kind, e.g. bac.quantify")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(func=_list)
    for name, text, func in (("show", "one job's state, progress, result or error", _show),
                             ("cancel", "stop a job (queued: at once; running: at its next step)", _cancel)):
        action = sub.add_parser(name, help=text)
        action.add_argument("job_id", type=int, metavar="ID")
        action.add_argument("--json", action="store_true", help="one JSON object")
        action.set_defaults(func=func)
    logs = sub.add_parser("logs", help="a job's log lines")
    logs.add_argument("job_id", type=int, metavar="ID")
    logs.add_argument("--tail", type=int, default=None, help="only the last N lines")
    logs.add_argument("--json", action="store_true", help="JSON lines {at, attempt, line}")
    logs.set_defaults(func=_logs)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _summary(job) -> str:  # noqa: ANN001 - Job is imported lazily
    total = "?" if job.progress.total is None else job.progress.total
    text = f"{job.id}\t{job.kind}\t{job.state}\t{job.progress.done}/{total}"
    if job.progress.stage:
        text += f"\t{job.progress.stage}"
    if job.error is not None:
        text += f"\t{job.error.error}: {job.error.message}"
    return text


def _list(args: argparse.Namespace) -> int:
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store

    with open_store() as store:
        jobs = list_jobs(store, states=args.state, kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps([job.to_dict() for job in jobs]))
    else:
        for job in jobs:
            print(_summary(job))
    return 0


def _print_job(job, *, as_json: bool) -> None:  # noqa: ANN001 - Job is imported lazily
    if as_json:
        print(json.dumps(job.to_dict()))
        return
    print(_summary(job))
    if job.progress.message:
        print(f"message: {job.progress.message}")
    print(f"created {job.created_at:%Y-%m-%d %H:%M:%S} UTC, attempts {job.attempts}, worker {job.worker or '-'}")
    if job.result is not None:
        print(json.dumps(job.result, indent=2)[:4000])


def _show(args: argparse.Namespace) -> int:
    from medlim.core.jobs import get_job
    from medlim.core.store import open_store

    with open_store() as store:
        job = get_job(store, args.job_id)
    _print_job(job, as_json=args.json)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from medlim.core.jobs import cancel_job
    from medlim.core.store import open_store

    with open_store() as store:
        job = cancel_job(store, args.job_id)
    _print_job(job, as_json=args.json)
    if not args.json and job.state == "running":
        print("medlim: the job stops at its next step", file=sys.stderr)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from medlim.core.jobs import job_log
    from medlim.core.store import open_store

    with open_store() as store:
        lines = job_log(store, args.job_id, limit=args.tail)
    for entry in lines:
        if args.json:
            print(json.dumps({"at": entry.at.isoformat(), "attempt": entry.attempt, "line": entry.line}))
        else:
            print(f"{entry.at:%H:%M:%S} #{entry.attempt} {entry.line}")
    return 0
