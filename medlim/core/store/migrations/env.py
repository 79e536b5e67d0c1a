"""Alembic environment: runs on the connection handed in by ``medlim.core.store``.

Not imported by medlim itself; alembic executes it during an upgrade/downgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from medlim.core.store.schema import Base
from medlim.errors import StoreError

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables in later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic` command line use with sqlalchemy.url set in the config
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise StoreError(
            "the migrations need a database: hand alembic a connection (as medlim.core.store.upgrade_store does) "
            "or set sqlalchemy.url in its configuration, e.g. sqlite:///medlim.db; neither is given."
        )
    engine = sa.create_engine(url)
    with engine.connect() as new_connection:
        _run(new_connection)
    engine.dispose()
