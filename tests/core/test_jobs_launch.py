"""The app's worker (issue 15): started once beside the server, never a second one while the
first is alive, none with MEDLIM_WORKER=external."""

from __future__ import annotations

from pathlib import Path

import pytest

import medlim.core.jobs.launch as launch
from medlim.settings import Settings


@pytest.fixture
def alive(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Pids that count as live workers; spawning adds one (no real process is started)."""
    pids: set[int] = set()
    spawned = iter(range(4242, 4300))

    def spawn(_home: Path) -> int:
        pid = next(spawned)
        pids.add(pid)
        return pid

    monkeypatch.setattr(launch, "_spawn", spawn)
    monkeypatch.setattr(launch, "_is_worker", lambda pid: pid in pids)
    return pids


def _settings(home: Path, worker: str = "auto") -> Settings:
    return Settings.from_env({"MEDLIM_HOME": str(home), "MEDLIM_WORKER": worker})


def test_external_starts_nothing(tmp_path: Path, alive: set[int]) -> None:
    assert launch.start_worker_beside(_settings(tmp_path, "external")) == launch.WorkerLaunch("external")
    assert not (tmp_path / launch.LOCK_NAME).exists() and alive == set()


def test_one_worker_per_home_and_a_dead_one_is_replaced(tmp_path: Path, alive: set[int]) -> None:
    first = launch.start_worker_beside(_settings(tmp_path))
    assert (first.status, first.pid) == ("started", 4242)
    assert (tmp_path / launch.LOCK_NAME).read_text() == "4242"
    again = launch.start_worker_beside(_settings(tmp_path))
    assert (again.status, again.pid) == ("running", 4242) and alive == {4242}
    alive.discard(4242)  # the worker died
    replaced = launch.start_worker_beside(_settings(tmp_path))
    assert (replaced.status, replaced.pid) == ("started", 4243)
    assert launch.worker_pid(_settings(tmp_path)) == 4243


def test_a_lock_being_written_is_left_alone(tmp_path: Path, alive: set[int]) -> None:
    (tmp_path / launch.LOCK_NAME).write_text("")  # another app is between creating the lock and writing its pid
    assert launch.start_worker_beside(_settings(tmp_path)).status == "running" and alive == set()


def test_a_real_process_that_is_not_a_worker_does_not_hold_the_lock(tmp_path: Path) -> None:
    import os

    (tmp_path / launch.LOCK_NAME).write_text(str(os.getpid()))  # pytest: alive, but not `medlim worker`
    assert launch.worker_pid(_settings(tmp_path)) is None
