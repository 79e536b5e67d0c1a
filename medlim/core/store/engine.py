"""Opening the results store: engine, schema migration to head, transactions.

``open_store()`` connects to ``Settings.database_url`` (an SQLite file in
``Settings.home`` by default; any SQLAlchemy URL by setting), creates the
SQLite folder if needed and upgrades the schema with the alembic migrations
shipped in ``medlim/core/store/migrations``. Every write goes through
``with store.session() as s:``, which commits on success and rolls back on any
error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from medlim.errors import StoreError

__all__ = ["HEAD", "MIGRATIONS_DIR", "Store", "downgrade_store", "open_store", "transaction", "upgrade_store"]

#: Folder of the alembic environment and its ``versions/``.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Alias of the newest schema revision.
HEAD = "head"


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
                f"the results store ({self.url}) refused the change: {exc.__class__.__name__}: {exc}"
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


def _create_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"the results-store URL {url!r} is not a valid SQLAlchemy URL: {exc}") from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
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


def _alembic_config(connection: sa.Connection) -> "alembic.config.Config":  # noqa: F821
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _migrate(store: Store, action: str, revision: str) -> None:
    from alembic import command

    try:
        with store.engine.begin() as connection:
            getattr(command, action)(_alembic_config(connection), revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the results store ({store.url}) to {revision} failed: {exc}") from exc


def upgrade_store(store: Store, revision: str = HEAD) -> None:
    """Apply migrations up to ``revision`` (default: the newest)."""
    _migrate(store, "upgrade", revision)


def downgrade_store(store: Store, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: empty database). Destroys data."""
    _migrate(store, "downgrade", revision)


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Connect to the results store and bring its schema to the newest version.

    Args:
        url: SQLAlchemy URL; ``None`` uses ``Settings.database_url`` (an SQLite
            file in ``Settings.home`` unless ``MEDLIM_DATABASE_URL`` is set).
        upgrade: run the migrations to head (keep ``True`` except in tests).

    Raises:
        StoreError: invalid URL, unreachable database, or a failed migration.
    """
    if url is None:
        from medlim.settings import get_settings

        url = get_settings().database_url
    store = Store(_create_engine(url))
    if upgrade:
        try:
            upgrade_store(store)
        except BaseException:
            store.close()
            raise
    return store
