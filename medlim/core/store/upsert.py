"""Atomic insert-or-update: the one way the store writes rows that carry a unique key.

Issue 14 ("Concurrent writers"): reading whether a row exists and then
inserting it lets two writers (two browser sessions, two batch commands) both
see "absent" and both insert, and the second fails on the unique constraint.
``INSERT … ON CONFLICT`` decides inside the database instead. SQLite (3.24+)
and PostgreSQL spell it the same way but SQLAlchemy builds it per dialect, so
:func:`upsert` picks ``sqlalchemy.dialects.sqlite.insert`` or
``sqlalchemy.dialects.postgresql.insert`` from the session's connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["UPSERT_DIALECTS", "upsert", "upsert_statement"]

#: Database dialects whose ``INSERT … ON CONFLICT`` the store uses.
UPSERT_DIALECTS: tuple[str, ...] = ("sqlite", "postgresql")


def upsert_statement(
    table: sa.FromClause,
    dialect: str,
    *,
    keys: Sequence[str],
    update: Sequence[str] = (),
    only_if_changed: Sequence[str] = (),
) -> sa.Insert:
    """``INSERT INTO table … ON CONFLICT (keys) DO UPDATE SET update = excluded.update`` (or ``DO NOTHING``).

    Args:
        table: the table (``Row.__table__``, a :class:`sqlalchemy.Table`).
        dialect: ``"sqlite"`` or ``"postgresql"``.
        keys: the columns of the unique constraint the conflict is on.
        update: columns overwritten by the new values on conflict; empty: keep the
            stored row (``DO NOTHING``).
        only_if_changed: update only when one of these columns differs from the
            stored value (so a timestamp in ``update`` stays when nothing changed).

    Raises:
        StoreError: a database other than SQLite or PostgreSQL.
    """
    if not isinstance(table, sa.Table):
        raise TypeError(f"upsert needs a table (Row.__table__), not {type(table).__name__}")
    statement: sqlite.Insert | postgresql.Insert
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(table)
    else:
        raise StoreError(
            f"the results store supports SQLite and PostgreSQL; a {dialect!r} database is given. "
            "Set MEDLIM_DATABASE_URL to an sqlite:/// or postgresql+psycopg:// URL."
        )
    if not update:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    changed = None
    if only_if_changed:
        changed = sa.or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in only_if_changed))
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update}, where=changed
    )


def upsert(
    session: Session,
    table: sa.FromClause,
    rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str] = (),
    only_if_changed: Sequence[str] = (),
) -> int:
    """Insert ``rows`` into ``table``, updating (or keeping) rows whose ``keys`` exist already.

    Args:
        session: the transaction to write in.
        table: the table (``Row.__table__``, a :class:`sqlalchemy.Table`).
        rows: one row or several, as column → value mappings.
        keys, update, only_if_changed: see :func:`upsert_statement`.

    Returns:
        Rows inserted or updated as the database counts them (for one row: 1, or 0
        when ``DO NOTHING`` kept the stored row), on SQLite and PostgreSQL alike.
    """
    parameters: dict[str, Any] | list[Mapping[str, Any]]
    if isinstance(rows, Mapping):
        parameters = dict(rows)
    else:
        if not rows:
            return 0
        parameters = list(rows)
    statement = upsert_statement(
        table, session.get_bind().dialect.name, keys=keys, update=update, only_if_changed=only_if_changed
    )
    # The rows written are counted from RETURNING, which both databases fill with exactly
    # the rows inserted or updated (DO NOTHING and an unmet DO UPDATE ... WHERE return
    # none): psycopg's row count of an INSERT is -1 once SQLAlchemy has closed its cursor,
    # and of a batch of rows is never kept.
    returned: list[Any] = list(session.execute(statement.returning(sa.literal_column("1")), parameters))
    return len(returned)
