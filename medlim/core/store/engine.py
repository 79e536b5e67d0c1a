"""Opening the results store: engine, schema migration to head, transactions.

``open_store()`` connects to ``Settings.database_url`` (an SQLite file in
``Settings.home`` by default; any SQLAlchemy URL by setting), creates the
SQLite folder if needed and upgrades the schema with the alembic migrations
shipped in ``medlim/core/store/migrations``. Every write goes through
``with store.session() as s:``, which commits on success and rolls back on any
error.

Issue 14 ("Results store"): a database error names its class and, at most, the
database's own one-line reason when that reason is known to carry no values
(:func:`describe_database_error`); the statement and its parameters (file
labels, patient keys, dates) never reach a message, and the engine is created
with ``hide_parameters=True`` so logs do not carry them either. An in-memory
SQLite URL is refused unless a caller opts in (tests): it would discard every
result when the command ends.

Issue 15 ("PostgreSQL for real"): a ``postgresql+psycopg://`` URL (or a
driverless ``postgresql://``/``postgres://`` one, read as psycopg 3) runs the same
migrations; processes opening a new store together take turns on a lock (a
PostgreSQL advisory lock, SQLite's write lock) so its tables are created once;
pooled PostgreSQL connections are pinged before use (a restarted server); and an
unreachable server is reported as such, naming host, port and PostgreSQL's
reason, never a password.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from medlim.errors import StoreError

if TYPE_CHECKING:
    import alembic.config

__all__ = [
    "HEAD",
    "MIGRATIONS_DIR",
    "Store",
    "describe_database_error",
    "downgrade_store",
    "is_memory_url",
    "open_store",
    "transaction",
    "upgrade_store",
]

#: Folder of the alembic environment and its ``versions/``.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Alias of the newest schema revision.
HEAD = "head"

# Reasons SQLite and PostgreSQL give that name only constraints, tables and
# columns (never a value), so a message may quote them. Anything else a
# database says (e.g. PostgreSQL's "invalid input syntax for type date: ...")
# may quote the data and is left out.
_SAFE_REASONS = tuple(
    re.compile(pattern)
    for pattern in (
        r"(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed(: [\w.]+(, [\w.]+)*)?",
        r"database is (locked|busy)|database or disk is full|disk I/O error|attempt to write a readonly database",
        r"unable to open database file|file is not a database|database disk image is malformed",
        r"no such (table|column|view): [\w.]+",
        r'duplicate key value violates unique constraint "\w+"',
        r'(insert or update|update or delete) on table "\w+" violates foreign key constraint "\w+"',
        r'null value in column "\w+"( of relation "\w+")? violates not-null constraint',
        r'new row for relation "\w+" violates check constraint "\w+"',
        r'relation "\w+" does not exist|could not serialize access due to \w+ update|deadlock detected',
        # psycopg's connection failures name the server, the port, the role or the database, never data
        r'connection (failed|is bad): connection to server (at "[\w.:-]+", port \d+|on socket "[\w./-]+") failed: '
        r'(Connection refused|No such file or directory|timeout expired|server closed the connection unexpectedly'
        r'|FATAL:  (role|database) "[\w-]+" does not exist|FATAL:  password authentication failed for user "[\w-]+"'
        r'|FATAL:  the database system is (starting up|shutting down|in recovery mode)'
        r'|FATAL:  sorry, too many clients already)',
        r"failed to resolve host '[\w.-]+': \[Errno -?\d+\] [\w ]+",
    )
)


def describe_database_error(exc: BaseException) -> str:
    """A database error in words that quote no statement, parameter or value.

    Returns:
        The error class, plus the database's one-line reason when it is one of the
        known value-free forms, e.g. ``"IntegrityError: UNIQUE constraint failed:
        images.content_sha256"``; otherwise ``"OperationalError (the database's
        details are not shown: they may quote the data)"``.
    """
    name = type(exc).__name__
    original = exc.orig if isinstance(exc, DBAPIError) else None
    lines = str(original).strip().splitlines() if original is not None else []
    reason = lines[0].strip() if lines else ""
    if reason and any(pattern.fullmatch(reason) for pattern in _SAFE_REASONS):
        return f"{name}: {reason}"
    return f"{name} (the database's details are not shown: they may quote the data)"


class Store:
    """A connected results store (owns a SQLAlchemy engine and its pool).

    Use :func:`open_store` to get one; ``with store.session() as s:`` for work;
    :meth:`close` (or ``with store:``) to release connections.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit when the block ends, roll back on any exception.

        Database errors (constraint violations, locked files, ...) become
        ``StoreError``; other exceptions propagate unchanged after the rollback.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(
                f"the results store ({self.url}) refused the change: {describe_database_error(exc)}."
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def revision(self) -> str | None:
        """Current schema revision (``None`` for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def table_names(self) -> tuple[str, ...]:
        """Tables present (not views), sorted."""
        return tuple(sorted(sa.inspect(self.engine).get_table_names()))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


@contextmanager
def transaction(target: Store | Session) -> Iterator[Session]:
    """A session for repository functions: a new transaction on a ``Store``, or the
    caller's own ``Session`` (so several writes can share one transaction)."""
    if isinstance(target, Session):
        yield target
        target.flush()
    elif isinstance(target, Store):
        with target.session() as session:
            yield session
    else:
        raise StoreError(f"expected a Store or a Session; {type(target).__name__} is given.")


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_memory_url(url: sa.URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``:memory:``, ``mode=memory``)."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory" or "mode=memory" in database


def _parse_url(url: str) -> sa.URL:
    """``url`` parsed; PostgreSQL URLs without a driver (``postgresql://``, ``postgres://``, as
    docker images and hosting services write them) use psycopg 3, the driver medlim ships."""
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url[len(bare) :]
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        shown = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)  # no password in the message
        raise StoreError(f"the results-store URL {shown!r} is not a valid SQLAlchemy URL: {exc}") from None


def _create_engine(url: str, *, allow_memory: bool = False) -> sa.Engine:
    parsed = _parse_url(url)
    options: dict[str, Any] = {"hide_parameters": True}  # logs and exception texts never carry values
    if parsed.get_backend_name() == "postgresql":
        # A server restarted under a running app or worker (compose, a failover) leaves dead
        # pooled connections; a ping before use replaces them instead of failing one request.
        options["pool_pre_ping"] = True
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if is_memory_url(parsed) and not allow_memory:
            raise StoreError(
                f"MEDLIM_DATABASE_URL is {parsed.render_as_string(hide_password=True)!r}: an in-memory SQLite "
                "database would discard every result when the command ends; give a file, e.g. "
                "sqlite:////data/medlim.sqlite."
            )
        # Streamlit serves sessions from several threads; each pooled connection is
        # used by one thread at a time, so the same-thread check is not needed.
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if database in ("", ":memory:"):
            options["poolclass"] = sa.pool.StaticPool  # one shared in-memory database
        elif not database.startswith("file:"):
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for the results store {database}: {exc}") from None
    try:
        engine = sa.create_engine(parsed, **options)
    except (SQLAlchemyError, ImportError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"cannot use the results-store URL {shown}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _alembic_config(connection: sa.Connection) -> alembic.config.Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


#: Key of the PostgreSQL advisory lock held while migrating (any constant shared by all medlim versions).
_MIGRATION_LOCK_KEY = 0x6D65646C696D  # "medlim"


def _lock_for_migration(connection: sa.Connection) -> None:
    """Make concurrent migrations of one database take turns, inside the migration's transaction.

    An app and its worker (or two batch commands) opening a new store at the same
    moment would otherwise both create the tables, and one would fail. PostgreSQL:
    a transaction-scoped advisory lock. SQLite: ``BEGIN IMMEDIATE`` takes the
    write lock before alembic reads the schema version (pysqlite would begin only
    at the first INSERT); a waiting opener retries for the connection's timeout.
    Either way the second opener then finds the schema at head and changes nothing.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    elif dialect == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _migrate(store: Store, action: str, revision: str) -> None:
    from alembic import command

    try:
        with store.engine.begin() as connection:
            _lock_for_migration(connection)
            getattr(command, action)(_alembic_config(connection), revision)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"migrating the results store ({store.url}) to {revision} failed: {describe_database_error(exc)}."
        ) from exc


@functools.lru_cache(maxsize=1)
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def upgrade_store(store: Store, revision: str = HEAD) -> None:
    """Apply migrations up to ``revision`` (default: the newest).

    A store already at the newest revision is left alone without taking the
    migration lock (a read), so opening a store never waits for another
    process's long write.
    """
    if revision == HEAD:
        try:
            if store.revision() == _head_revision():
                return
        except SQLAlchemyError:
            pass  # the migration below reports it
    _migrate(store, "upgrade", revision)


def downgrade_store(store: Store, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: empty database). Destroys data."""
    _migrate(store, "downgrade", revision)


def open_store(url: str | None = None, *, upgrade: bool = True, allow_memory: bool = False) -> Store:
    """Connect to the results store and bring its schema to the newest version.

    Args:
        url: SQLAlchemy URL; ``None`` uses ``Settings.database_url`` (an SQLite
            file in ``Settings.home`` unless ``MEDLIM_DATABASE_URL`` is set).
        upgrade: run the migrations to head (keep ``True`` except in tests).
        allow_memory: accept an in-memory SQLite URL (``sqlite://``), whose data
            vanishes with the process (tests only).

    Raises:
        StoreError: invalid or in-memory URL, unreachable database (server down, unknown
            role or database, wrong password), or a failed migration.
    """
    if url is None:
        from medlim.settings import get_settings

        url = get_settings().database_url
    store = Store(_create_engine(url, allow_memory=allow_memory))
    try:
        _check_reachable(store)
        if upgrade:
            upgrade_store(store)
    except BaseException:
        store.close()
        raise
    return store


def _check_reachable(store: Store) -> None:
    """Connect once (the connection goes back to the pool), so an unreachable server is named as such."""
    try:
        with store.engine.connect():
            pass
    except SQLAlchemyError as exc:
        hint = ("Can this user read and write that file and its folder?" if store.engine.dialect.name == "sqlite"
                else "Is the database server running, and is MEDLIM_DATABASE_URL right?")
        raise StoreError(
            f"cannot connect to the results store ({store.url}): {describe_database_error(exc)}. {hint}"
        ) from exc
