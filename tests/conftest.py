"""Shared test fixtures: every test runs with its own MEDLIM_HOME (results store, keys)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The session's PostgreSQL server (``postgres_server``) and a fresh database per test
#: (``postgres_url``), for the store's tests on PostgreSQL (issue 15): one server per session.
pytest_plugins = ("tests.pg_server",)

#: Read-only reference material beside the checkout (thesis, published checkpoints).
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_medlim_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("medlim_home")
    monkeypatch.setenv("MEDLIM_HOME", str(home))
    monkeypatch.setenv("MEDLIM_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("MEDLIM_WORKER", "external")  # an app under test starts no job worker (issue 15)
    return home


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` (skips the test when the reference material is absent)."""
    if not SHARED.is_dir():
        pytest.skip("../shared reference material is not present")
    return SHARED
