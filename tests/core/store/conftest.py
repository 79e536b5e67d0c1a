"""The store's tests run on both databases the store supports: an SQLite file and a real PostgreSQL server.

``store_url`` is an empty database of each kind (``-k sqlite`` or ``-k postgresql``
picks one); ``store`` is a store of each kind, migrated to head. The
PostgreSQL server starts once per session, only when a PostgreSQL case runs
(``tests/pg_server.py``, a plugin of ``tests/conftest.py``), and each case gets its own database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medlim.core.store import Store, open_store

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(params=DATABASES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty results store: an SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A results store migrated to head: an SQLite file, or a new database on the session's PostgreSQL
    server (a copy of one migrated once per session)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        url = str(request.getfixturevalue("postgres_migrated_url"))
    with open_store(url) as opened:
        yield opened
