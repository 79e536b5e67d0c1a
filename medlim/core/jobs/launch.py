"""Starting a job worker beside the app (issue 15): a detached ``python -m medlim worker``.

The app calls :func:`start_worker_beside` when its server starts (through
``medlim.ui.worker_launcher``, once per server process), so jobs outlive a
closed tab, a page refresh or a second user. A lock file ``worker.pid`` in
``MEDLIM_HOME`` (created exclusively, holding the worker's process id) keeps a
second app on the same home from starting a second worker while the first is
alive. With ``MEDLIM_WORKER=external`` nothing is started: workers are run by
hand or by compose (``medlim worker``), possibly on other machines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medlim.errors import JobError
from medlim.settings import Settings, get_settings

__all__ = ["LOCK_NAME", "WorkerLaunch", "start_worker_beside", "worker_pid"]

#: The lock file in ``MEDLIM_HOME`` holding the pid of the worker the app started.
LOCK_NAME = "worker.pid"

#: The worker's output (job tracebacks of bugs, claims and ends), beside the lock.
LOG_NAME = "worker.log"


@dataclass(frozen=True)
class WorkerLaunch:
    """What the app did about a worker.

    Attributes:
        status: ``"started"``, ``"running"`` (one was alive already) or ``"external"`` (``MEDLIM_WORKER=external``).
        pid: the worker's process id (``None`` when external).
        log: where its output goes (``None`` when external).
    """

    status: str
    pid: int | None = None
    log: Path | None = None


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` is a live process, and (where ``/proc`` tells) a medlim worker rather than a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's: leave it
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        parts = cmdline.read_bytes().split(b"\x00")
    except OSError:
        return True  # no /proc here: trust the pid
    return b"medlim" in b" ".join(parts) and b"worker" in parts


def worker_pid(settings: Settings | None = None) -> int | None:
    """The pid in the lock file when that process is a live worker, else ``None``."""
    lock = Path((settings or get_settings()).home) / LOCK_NAME
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _is_worker(pid) else None


def _being_written(lock: Path) -> bool:
    """An empty lock younger than a few seconds: another app is starting a worker right now."""
    try:
        stat = lock.stat()
    except OSError:
        return False
    return stat.st_size == 0 and time.time() - stat.st_mtime < 10.0


def _spawn(home: Path) -> int:
    log = open(home / LOG_NAME, "ab")  # noqa: SIM115 - handed to the child, closed here once it has it
    try:
        child = subprocess.Popen([sys.executable, "-m", "medlim", "worker"], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise JobError(f"the app could not start a job worker ({exc.strerror or type(exc).__name__}); "
                       "start one with `medlim worker`.") from exc
    finally:
        log.close()
    return child.pid


def start_worker_beside(settings: Settings | None = None) -> WorkerLaunch:
    """Start a detached worker unless one the lock names is alive (or ``MEDLIM_WORKER=external``).

    Raises:
        JobError: ``MEDLIM_HOME`` cannot hold the lock, or the worker cannot be started.
    """
    settings = settings or get_settings()
    if settings.worker == "external":
        return WorkerLaunch("external")
    home = Path(settings.home)
    lock = home / LOCK_NAME
    for _ in range(2):
        running = worker_pid(settings)
        if running is not None or _being_written(lock):
            return WorkerLaunch("running", running, home / LOG_NAME)
        try:
            home.mkdir(parents=True, exist_ok=True)
            lock.unlink(missing_ok=True)  # a dead worker's lock
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue  # another app is starting one right now: look again
        except OSError as exc:
            raise JobError(f"cannot write the worker lock in {home} ({exc.strerror}).") from exc
        try:
            pid = _spawn(home)
            os.write(descriptor, str(pid).encode())
        finally:
            os.close(descriptor)
        return WorkerLaunch("started", pid, home / LOG_NAME)
    return WorkerLaunch("running", worker_pid(settings), home / LOG_NAME)
