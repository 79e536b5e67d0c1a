"""Alembic environment: runs on the connection handed in by ``medlim.core.store``.

Not imported by medlim itself; alembic executes it during an upgrade/downgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from medlim.core.store.schema import Base

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
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as new_connection:
        _run(new_connection)
    engine.dispose()
