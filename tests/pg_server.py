"""A real PostgreSQL server for the tests, started in a temporary folder (issue 15).

The store's tests run against SQLite and against this server. The server is
Debian's ``postgresql`` package (``.ci/run`` installs it): ``initdb`` and
``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin`` (the newest found), or
from the folder named by ``MEDLIM_TEST_PG_BINDIR``. ``initdb`` refuses to run
as root, so under root the server runs as the ``postgres`` user through
``runuser``, in a folder under the system temporary folder that user owns (the
pytest folders under ``/tmp/pytest-of-root`` are closed to other users).

One server serves the whole test session (:func:`postgres_server`, session
scope); each test gets its own empty database from :meth:`PostgresServer.new_database`.
``MEDLIM_TEST_POSTGRES_URL`` points the tests at a server that runs already
(e.g. a CI service container) instead; its user must be allowed to create
databases. Where no server can be had the PostgreSQL tests skip with the
reason, unless ``MEDLIM_TEST_POSTGRES=require`` (``.ci/run`` sets it), which
turns the skip into a failure so a broken install cannot pass silently.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_bindir", "postgres_migrated_url", "postgres_server", "postgres_url", "start_server"]

#: Settings that make a throw-away server fast: nothing is worth an fsync here.
_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=100", "-c", "shared_buffers=32MB")
_START_TIMEOUT_S = 60
#: Server folders are ``<tmp>/medlim-pg-*``, holding the owning test process's id in ``owner.pid``.
_PREFIX, _OWNER = "medlim-pg-", "owner.pid"


def find_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: ``MEDLIM_TEST_PG_BINDIR``, Debian's newest, or ``PATH``."""
    named = os.environ.get("MEDLIM_TEST_PG_BINDIR")
    if named:
        return Path(named) if (Path(named) / "initdb").is_file() else None
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: ``admin_url`` reaches its ``postgres`` database as a superuser."""

    admin_url: str
    stop: list = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _migrated_template: str | None = None

    def url_of(self, database: str) -> str:
        """The ``postgresql+psycopg://`` URL of ``database`` on this server."""
        import sqlalchemy as sa

        return sa.make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def new_database(self, prefix: str = "medlim_test", *, template: str | None = None) -> str:
        """Create a database (empty, or a copy of the database ``template``) and return its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._counter)}_{uuid.uuid4().hex[:6]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(_libpq_url(self.admin_url), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url_of(name)

    def new_migrated_database(self) -> str:
        """A database with the store's schema at head: a copy of one migrated once per session
        (a copy costs less than running the migrations again)."""
        import sqlalchemy as sa

        from medlim.core.store import open_store

        if self._migrated_template is None:
            url = self.new_database("medlim_head")
            open_store(url).close()  # closed: a template must have no connections when copied
            self._migrated_template = sa.make_url(url).database
        return self.new_database(template=self._migrated_template)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (its connections are ended first)."""
        import psycopg
        import sqlalchemy as sa

        name = sa.make_url(url).database
        with psycopg.connect(_libpq_url(self.admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], *, what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=_START_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")


def _wait_until_accepting(url: str) -> None:
    """Poll until the server takes a connection (``pg_ctl -w`` returns when it does; this guards the gap)."""
    import psycopg

    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            psycopg.connect(_libpq_url(url), connect_timeout=5).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_abandoned_servers(bindir: Path) -> None:
    """Stop the servers of earlier test sessions that were killed before their teardown (a timeout,
    ^C twice): each folder names the test process that owns it; a folder whose owner is gone is removed."""
    for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            owner = int((root / _OWNER).read_text().strip())
        except (OSError, ValueError):
            continue  # being set up, or not ours
        if _alive(owner):
            continue
        if (root / "data" / "postmaster.pid").is_file():
            subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate",
                                            "-w", "stop"]), capture_output=True, timeout=_START_TIMEOUT_S, check=False)
        shutil.rmtree(root, ignore_errors=True)


def start_server(bindir: Path) -> PostgresServer:
    """``initdb`` a cluster in a fresh temporary folder and ``pg_ctl -w start`` it on a free local port.

    Raises:
        RuntimeError: the server would not initialise or start (the tool's own message included).
    """
    root = Path(tempfile.mkdtemp(prefix=_PREFIX))
    data, log = root / "data", root / "server.log"
    (root / _OWNER).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres", group="postgres")
    try:
        _run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                              "-E", "UTF8", "--no-sync", "--no-instructions"]), what="initdb")
        port = _free_port()
        options = " ".join(["-p", str(port), "-c", "listen_addresses=127.0.0.1", "-k", str(root), *_FAST])
        _run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                              "-t", str(_START_TIMEOUT_S), "start"]), what="pg_ctl start")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise

    def stop() -> None:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=_START_TIMEOUT_S, check=False)
        shutil.rmtree(root, ignore_errors=True)

    server = PostgresServer(admin_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop=[stop])
    try:
        _wait_until_accepting(server.admin_url)
    except BaseException:
        stop()
        raise
    return server


def _unavailable(reason: str) -> None:
    if os.environ.get("MEDLIM_TEST_POSTGRES", "").lower() == "require":
        pytest.fail(f"PostgreSQL is required (MEDLIM_TEST_POSTGRES=require) but {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server for the tests: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session (skips with the reason when none can be had)."""
    given = os.environ.get("MEDLIM_TEST_POSTGRES_URL")
    if given:
        for bare in ("postgres://", "postgresql://"):
            given = given.replace(bare, "postgresql+psycopg://", 1) if given.startswith(bare) else given
        server = PostgresServer(admin_url=given)
        yield server
        if server._migrated_template is not None:  # the server outlives the session: leave nothing on it
            server.drop_database(server.url_of(server._migrated_template))
        return
    bindir = find_bindir()
    if bindir is None:
        _unavailable("initdb was not found under /usr/lib/postgresql/*/bin, MEDLIM_TEST_PG_BINDIR or PATH "
                     "(install Debian's postgresql package: apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root, initdb needs runuser to run as the postgres user, and runuser is missing")
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root, initdb must run as the 'postgres' user, and there is no such user")
    assert bindir is not None
    _stop_abandoned_servers(bindir)
    server = start_server(bindir)
    try:
        yield server
    finally:
        for stop in server.stop:
            stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server (dropped after the test)."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def postgres_migrated_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database holding the store's schema at head (dropped after the test)."""
    url = postgres_server.new_migrated_database()
    yield url
    postgres_server.drop_database(url)
