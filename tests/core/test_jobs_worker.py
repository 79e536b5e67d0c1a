"""The worker loop (issue 15) with stand-in child processes: a job asked to stop is terminated and
ends cancelled, a child that dies without a word fails its job, a stopping worker puts its job back,
and a real child run records a refused job's error."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import medlim.core.jobs.worker as worker_module
from medlim.core.jobs import cancel_job, get_job, submit_job
from medlim.core.jobs.worker import WorkerOptions, run_worker
from medlim.core.store import open_store
from medlim.errors import ParameterError


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    monkeypatch.setenv("MEDLIM_DATABASE_URL", url)
    with open_store(url) as opened:
        yield opened


def _child(code: str):  # noqa: ANN202 - a test helper
    """A stand-in for the job's child process running ``code``."""
    return lambda _lease: subprocess.Popen([sys.executable, "-c", code])


OPTIONS = WorkerOptions(stale_s=0.4, poll_s=0.05, once=True)


def test_cancelled_job_is_terminated_after_the_grace_period(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "CANCEL_GRACE_S", 0.2)
    monkeypatch.setattr(worker_module, "_start_child", _child("import time; time.sleep(60)"))
    job = submit_job(store, "train", {"argv": ["train", "scunet"]})
    threading.Timer(0.5, lambda: cancel_job(store, job.id)).start()
    started = time.monotonic()
    assert run_worker(store, OPTIONS, say=lambda _line: None) == 1
    assert time.monotonic() - started < 30
    ended = get_job(store, job.id)
    assert ended.state == "cancelled" and ended.cancel_requested and ended.finished_at is not None


def test_child_dying_silently_fails_its_job(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "_start_child", _child("raise SystemExit(9)"))
    job = submit_job(store, "train", {"argv": ["train", "scunet"]})
    lines: list[str] = []
    assert run_worker(store, OPTIONS, say=lines.append) == 1
    ended = get_job(store, job.id)
    assert ended.state == "failed" and ended.error.error == "JobCrashed" and "exit status 9" in ended.error.message
    assert any(f"job {job.id}: failed" in line for line in lines)


def test_stopping_worker_puts_its_job_back_in_the_queue(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "_start_child", _child("import time; time.sleep(60)"))
    job = submit_job(store, "train", {"argv": ["train", "scunet"]})
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert run_worker(store, WorkerOptions(stale_s=5, poll_s=0.05), stop=stop, say=lambda _line: None) == 0
    again = get_job(store, job.id)
    assert (again.state, again.worker, again.attempts) == ("queued", None, 1)


def test_real_child_records_a_refused_job(store) -> None:
    job = submit_job(store, "train", {"argv": ["train", "scunet", "--no-such-option"]})
    assert run_worker(store, OPTIONS, say=lambda _line: None) == 1
    ended = get_job(store, job.id)
    assert ended.state == "failed" and ended.error.error == "JobError"
    assert "not valid for `medlim train scunet`" in ended.error.message and ended.attempts == 1


def test_worker_options_are_checked() -> None:
    with pytest.raises(ParameterError):
        WorkerOptions(stale_s=0)
    with pytest.raises(ParameterError):
        WorkerOptions(max_jobs=0)
    assert WorkerOptions(stale_s=60, poll_s=2).beat_s == 2 and WorkerOptions(stale_s=2, poll_s=2).beat_s == 0.5
