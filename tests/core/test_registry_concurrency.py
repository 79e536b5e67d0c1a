"""Two writers of one weights folder: the manifest is merged under the folder's lock, so no entry is lost.

Found on 2026-12-06: two ``medlim train oscars`` runs into one user registry ended together; the later one
wrote back the manifest it had read before the other registered, and ``NAME-triplet`` of the first vanished
(its file stayed, its entry was gone, and its familiarity check failed on "no weights named").
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import medlim.core.weights as w
from medlim.core.weights.registries import Registries
from medlim.core.weights.registry import LOCK_NAME, manifest_lock
from tests.core.test_weights import tiny_fields, tiny_registered, tiny_state  # noqa: F401 - tiny_registered is used by pytestmark

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("tiny_registered")


def test_a_stale_registry_object_keeps_the_entries_another_writer_added(tmp_path: Path) -> None:
    first = w.Registry.load(tmp_path)
    second = w.Registry.load(tmp_path)  # read before the first one writes: the race of the two jobs
    w.save_weights(first, tiny_fields(name="job-a", version="1"), tiny_state())
    w.save_weights(second, tiny_fields(name="job-b", version="1"), tiny_state(1))
    assert [e.label for e in w.Registry.load(tmp_path).list()] == ["job-a@1", "job-b@1"]
    assert [e.label for e in second.list()] == ["job-a@1", "job-b@1"]  # the writer now holds the merged list


def test_a_removal_stays_removed_and_a_replacement_wins(tmp_path: Path) -> None:
    setup = w.Registry.load(tmp_path)
    w.save_weights(setup, tiny_fields(name="kept", version="1"), tiny_state())
    w.save_weights(setup, tiny_fields(name="gone", version="1"), tiny_state())
    remover, other = w.Registry.load(tmp_path), w.Registry.load(tmp_path)
    remover.remove("gone", "1")
    remover.save_manifest()
    w.save_weights(other, tiny_fields(name="kept", version="1", metrics={"dice": 0.9}), tiny_state(2))
    on_disk = w.Registry.load(tmp_path)
    assert [e.label for e in on_disk.list()] == ["kept@1"]  # "gone" is not brought back by the stale reader
    assert on_disk.get("kept", "1").metrics == {"dice": 0.9}


def test_an_unreadable_manifest_is_written_over_as_before(tmp_path: Path) -> None:
    registry = w.Registry.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{ not json", encoding="utf-8")
    w.save_weights(registry, tiny_fields(), tiny_state())
    assert [e.label for e in w.Registry.load(tmp_path).list()] == ["tiny-seg@1"]


def test_the_lock_nests_in_one_process_and_blocks_another(tmp_path: Path) -> None:
    with manifest_lock(tmp_path):
        with manifest_lock(tmp_path):  # nested: no deadlock
            pass
        assert (tmp_path / LOCK_NAME).exists()
        code = ("import fcntl, sys; h = open(sys.argv[1], 'a'); "
                "fcntl.flock(h.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)")
        held = subprocess.run([sys.executable, "-c", code, str(tmp_path / LOCK_NAME)], capture_output=True)
        assert held.returncode != 0 and b"BlockingIOError" in held.stderr  # another process cannot take it
    free = subprocess.run([sys.executable, "-c", code, str(tmp_path / LOCK_NAME)], capture_output=True)
    assert free.returncode == 0  # released at the end of the block


def test_a_writer_waits_for_the_lock(tmp_path: Path) -> None:
    registry = w.Registry.load(tmp_path)
    entered, finished = threading.Event(), threading.Event()

    def write() -> None:
        entered.set()
        w.save_weights(registry, tiny_fields(), tiny_state())
        finished.set()

    code = ("import fcntl, sys, time; h = open(sys.argv[1], 'a'); fcntl.flock(h.fileno(), fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.readline()")
    (tmp_path / LOCK_NAME).touch()
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / LOCK_NAME)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        assert entered.wait(30)
        assert not finished.wait(1.0)  # blocked while the other process holds the lock
        assert not (tmp_path / "manifest.json").exists()
    finally:
        holder.communicate("go\n", timeout=30)
    thread.join(60)
    assert finished.is_set() and [e.label for e in w.Registry.load(tmp_path).list()] == ["tiny-seg@1"]


def test_two_registrations_of_one_name_get_two_versions(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir()
    early = Registries(w.Registry.load(shipped), w.Registry.load(user))
    late = Registries(w.Registry.load(shipped), w.Registry.load(user))  # both read an empty user registry
    # called one after the other this also held before the lock (register read the folder again first); the lock
    # makes it hold when the two calls overlap, which the tests above exercise at the manifest level
    first = early.register(tiny_fields(name="site-model", version=None), tiny_state())
    second = late.register(tiny_fields(name="site-model", version=None), tiny_state(1))
    assert (first.version, second.version) == ("1", "2")
    assert [e.label for e in w.Registry.load(user).list()] == ["site-model@1", "site-model@2"]


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    inside, finished = threading.Event(), threading.Event()

    def other() -> None:
        with manifest_lock(tmp_path):
            inside.set()
        finished.set()

    with manifest_lock(tmp_path):
        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        assert not inside.wait(1.0)  # the other thread waits while this one holds the folder
    thread.join(30)
    assert inside.is_set() and finished.is_set()
