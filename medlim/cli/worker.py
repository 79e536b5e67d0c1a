"""``medlim worker``: run queued jobs until stopped (issue 15; :mod:`medlim.core.jobs.worker`).

SIGTERM or SIGINT stops it: the job in hand is put back in the queue and any
worker resumes it from its checkpoint. The app starts one beside itself unless
``MEDLIM_WORKER=external``; run more (another terminal, another machine sharing a
PostgreSQL store) to work on several jobs at once.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="run background jobs (queued with --background or by the app)")
    parser.add_argument("--once", action="store_true", help="run at most one job; stop when the queue is empty")
    parser.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between looks at an empty queue (default 2)")
    parser.add_argument("--max-jobs", type=int, default=None, metavar="N", help="stop after N jobs")
    parser.set_defaults(func=_worker)


def _worker(args: argparse.Namespace) -> int:
    from medlim.core.jobs.worker import WorkerOptions, run_worker
    from medlim.core.store import open_store
    from medlim.settings import get_settings

    options = WorkerOptions(stale_s=float(get_settings().job_stale_s), poll_s=args.poll, once=args.once,
                            max_jobs=args.max_jobs)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_store() as store:
            run_worker(store, options, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
