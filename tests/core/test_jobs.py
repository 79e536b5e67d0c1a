"""Jobs in the results store (issue 15): the state machine, atomic claims, cancellation,
stale jobs queued again and resumed from their checkpoint, bounded logs, live workers."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from medlim.core.jobs import (
    JobContext,
    JobLost,
    cancel_job,
    claim_job,
    claim_next_job,
    get_job,
    job_log,
    list_jobs,
    live_workers,
    register_kind,
    requeue_stale_jobs,
    submit_job,
)
from medlim.core.jobs.queue import record_progress, release_job
from medlim.core.jobs.runner import run_job
from medlim.core.jobs.workers import beat_worker, register_worker, remove_worker
from medlim.core.store import open_store
from medlim.core.store.schema import utc_now
from medlim.errors import JobError, ParameterError


class Crash(BaseException):
    """Stands for the process dying mid-job (not caught by the job machinery, like SIGKILL)."""


@pytest.fixture(params=("sqlite", "postgresql"))
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A migrated store on an SQLite file and on a real PostgreSQL server (``tests/pg_server.py``)."""
    register_kind("test.count", "tests.core.test_jobs:count_items")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    else:
        url = str(request.getfixturevalue("postgres_migrated_url"))
    with open_store(url) as opened:
        yield opened


def _url(store) -> str:  # noqa: ANN001 - a Store
    return store.engine.url.render_as_string(hide_password=False)


def count_items(context: JobContext, parameters: dict[str, Any]) -> dict[str, Any]:
    """Process ``items`` one by one, checkpointing each; ``crash_after`` simulates a dying process."""
    items = list(parameters["items"])
    start = int(context.checkpoint.get("done", 0))
    processed = []
    for index in range(start, len(items)):
        processed.append(items[index])
        context.log(f"processed {items[index]}")
        context.save_checkpoint({"done": index + 1})
        context.progress(index + 1, len(items), stage="counting", message=f"{index + 1} of {len(items)}")
        if parameters.get("crash_after") == index + 1 and context.attempt == 1:
            raise Crash()
    return {"processed": processed, "score": float("nan")}


def test_submit_claim_progress_done(store) -> None:
    job = submit_job(store, "test.count", {"items": ["a", "b", "c"]}, dataset_fingerprint="fp1")
    assert (job.state, job.attempts, job.progress.done, job.progress.total) == ("queued", 0, 0, None)
    assert job.created_at is not None and job.created_at.tzinfo is not None
    lease = claim_next_job(store, "w1")
    assert lease is not None and (lease.job_id, lease.worker, lease.attempt) == (job.id, "w1", 1)
    running = get_job(store, job.id)
    assert (running.state, running.worker, running.attempts) == ("running", "w1", 1)
    assert running.started_at is not None and running.heartbeat_at is not None
    ended = run_job(store, lease, runner=count_items)
    assert ended.state == "done" and ended.finished
    assert ended.progress.to_dict() == {"done": 3, "total": 3, "stage": "counting", "message": "3 of 3"}
    assert ended.result == {"processed": ["a", "b", "c"], "score": None}  # NaN stored as null
    assert ended.error is None and ended.checkpoint == {"done": 3} and ended.finished_at is not None
    assert [entry.line for entry in job_log(store, job.id)] == ["processed a", "processed b", "processed c"]
    shown = ended.to_dict()
    assert shown["progress"]["total"] == 3 and shown["dataset_fingerprint"] == "fp1" and shown["error"] is None
    assert claim_next_job(store, "w2") is None  # nothing left


def test_cancel_queued_is_at_once_and_cannot_be_claimed(store) -> None:
    job = submit_job(store, "test.count", {"items": [1]})
    assert cancel_job(store, job.id).state == "cancelled"
    assert claim_job(store, job.id, "w1") is None
    assert cancel_job(store, job.id).state == "cancelled"  # a finished job is left as it is


def test_cancel_running_stops_at_the_next_progress_call(store) -> None:
    job = submit_job(store, "test.count", {"items": list(range(10))})
    lease = claim_job(store, job.id, "w1")
    seen = []

    def runner(context: JobContext, parameters: dict[str, Any]) -> dict[str, Any]:
        for index, item in enumerate(parameters["items"], start=1):
            seen.append(item)
            if index == 3:
                assert cancel_job(store, job.id).state == "running"  # asked; it stops at its next step
            context.progress(index, 10)
        return {}

    ended = run_job(store, lease, runner=runner)
    assert ended.state == "cancelled" and ended.cancel_requested and ended.result is None
    assert seen == [0, 1, 2] and ended.progress.done == 3  # the call that saw the stop still recorded its step


def test_two_claimers_race_for_one_job_and_exactly_one_wins(store) -> None:
    job = submit_job(store, "test.count", {"items": [1]})
    barrier = threading.Barrier(4)
    leases = []

    def claim(name: str) -> None:
        with open_store(_url(store)) as own:  # its own connection pool
            barrier.wait()
            leases.append(claim_job(own, job.id, name))

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [lease for lease in leases if lease is not None]
    assert len(leases) == 4 and len(winners) == 1
    assert get_job(store, job.id).worker == winners[0].worker and get_job(store, job.id).attempts == 1


def test_stale_job_is_queued_again_and_resumes_from_its_checkpoint(store) -> None:
    job = submit_job(store, "test.count", {"items": ["a", "b", "c", "d", "e"], "crash_after": 2})
    first = claim_next_job(store, "w1")
    with pytest.raises(Crash):
        run_job(store, first, runner=count_items)
    assert get_job(store, job.id).state == "running"  # its worker is gone; nobody says so yet
    assert requeue_stale_jobs(store, stale_s=60) == []  # its heartbeat is fresh
    later = utc_now() + dt.timedelta(seconds=61)
    assert requeue_stale_jobs(store, stale_s=60, now=later) == [job.id]
    second = claim_next_job(store, "w2")
    assert second is not None and second.attempt == 2
    with pytest.raises(JobLost):  # the dead attempt's lease is fenced off
        record_progress(store, first)
    ended = run_job(store, second, runner=count_items)
    assert ended.state == "done" and ended.attempts == 2
    assert ended.result["processed"] == ["c", "d", "e"]  # nothing done twice
    lines = [(entry.attempt, entry.line) for entry in job_log(store, job.id)]
    assert lines == [(1, "processed a"), (1, "processed b"), (2, "processed c"), (2, "processed d"),
                     (2, "processed e")]


def test_stale_job_asked_to_stop_ends_cancelled(store) -> None:
    job = submit_job(store, "test.count", {"items": [1]})
    claim_job(store, job.id, "w1")
    cancel_job(store, job.id)
    requeue_stale_jobs(store, stale_s=1, now=utc_now() + dt.timedelta(seconds=5))
    assert get_job(store, job.id).state == "cancelled"


def test_released_job_is_queued_with_its_checkpoint(store) -> None:
    job = submit_job(store, "test.count", {"items": [1, 2]})
    lease = claim_job(store, job.id, "w1")
    JobContext(store, get_job(store, job.id), lease).save_checkpoint({"done": 1})
    assert release_job(store, lease) and not release_job(store, lease)
    again = get_job(store, job.id)
    assert (again.state, again.worker, again.checkpoint) == ("queued", None, {"done": 1})


def test_failures_keep_class_and_message_never_a_traceback(store) -> None:
    def refuses(_context: JobContext, _parameters: dict[str, Any]) -> None:
        raise ParameterError("--x must be positive; -1 is given.")

    def has_a_bug(_context: JobContext, _parameters: dict[str, Any]) -> None:
        raise ValueError("/home/someone/secret_patient_name.dcm broke")

    first = submit_job(store, "test.count", {})
    ended = run_job(store, claim_job(store, first.id, "w"), runner=refuses)
    assert ended.state == "failed" and ended.error.to_dict() == {
        "class": "ParameterError", "message": "--x must be positive; -1 is given."}
    second = submit_job(store, "test.count", {})
    ended = run_job(store, claim_job(store, second.id, "w"), runner=has_a_bug)
    assert ended.state == "failed" and ended.error.error == "ValueError"
    assert "secret" not in ended.error.message and "Traceback" not in ended.error.message


def test_unknown_kind_job_and_state_are_job_errors(store) -> None:
    with pytest.raises(JobError, match="no job kind 'nope'"):
        submit_job(store, "nope", {})
    with pytest.raises(JobError, match="origin"):
        submit_job(store, "test.count", {}, origin="browser")
    with pytest.raises(JobError, match="no job 999"):
        get_job(store, 999)
    with pytest.raises(JobError, match="unknown job state"):
        list_jobs(store, states=["sleeping"])
    assert {"bac.quantify", "shift.run", "ood.score", "retrieval.build", "train"} <= set(
        __import__("medlim.core.jobs", fromlist=["job_kinds"]).job_kinds())


def test_list_is_newest_first_and_filters(store) -> None:
    ids = [submit_job(store, "test.count", {"n": n}).id for n in range(3)]
    cancel_job(store, ids[1])
    assert [job.id for job in list_jobs(store)][:3] == ids[::-1]
    assert [job.id for job in list_jobs(store, states=["cancelled"])] == [ids[1]]
    assert [job.id for job in list_jobs(store, limit=1)] == [ids[2]]


def test_log_is_bounded_and_escaped(store, monkeypatch: pytest.MonkeyPatch) -> None:
    import medlim.core.jobs.queue as queue

    monkeypatch.setattr(queue, "LOG_MAX_LINES", 3)
    job = submit_job(store, "test.count", {})
    context = JobContext(store, job, claim_job(store, job.id, "w"))
    for n in range(5):
        context.log(f"line {n}")
    context.log("evil\x1b[2Jline")
    assert [entry.line for entry in job_log(store, job.id)] == ["line 3", "line 4", "evil\\x1b[2Jline"]
    assert [entry.line for entry in job_log(store, job.id, limit=1)] == ["evil\\x1b[2Jline"]


def test_live_workers_follow_their_heartbeat(store) -> None:
    register_worker(store, "host:1:a")
    beat_worker(store, "host:1:a", job_id=7)
    (alive,) = live_workers(store, stale_s=60)
    assert (alive.id, alive.job_id) == ("host:1:a", 7)
    assert live_workers(store, stale_s=60, now=utc_now() + dt.timedelta(seconds=61)) == []
    remove_worker(store, "host:1:a")
    assert live_workers(store, stale_s=60) == []


def test_settings_for_workers() -> None:
    from medlim.settings import Settings

    settings = Settings.from_env({"MEDLIM_HOME": "/tmp/x", "MEDLIM_WORKER": "External", "MEDLIM_JOB_STALE_S": "5"})
    assert (settings.worker, settings.job_stale_s) == ("external", 5)
    defaults = Settings.from_env({"MEDLIM_HOME": "/tmp/x"})
    assert (defaults.worker, defaults.job_stale_s) == ("auto", 60)
    with pytest.raises(ParameterError, match="MEDLIM_WORKER"):
        Settings.from_env({"MEDLIM_HOME": "/tmp/x", "MEDLIM_WORKER": "thread"})
    with pytest.raises(ParameterError, match="MEDLIM_JOB_STALE_S"):
        Settings.from_env({"MEDLIM_HOME": "/tmp/x", "MEDLIM_JOB_STALE_S": "0"})
