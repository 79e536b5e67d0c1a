"""TAM_100 beside the chosen X in every BAC result (issue 17).

A patient's history is Σ TAM_100 / breast area over each exam's views (thesis
§3.3.2), whatever X a person chose for an analysis; ``bac_results.tam_100``
keeps that number in the same row. Rows stored before are filled where it can
be known exactly: from their own ``tam_x`` when X = 100, else from the row of
the same image, weights, version and cut-off at X = 100 when there is one. The
rest keep ``NULL`` (saving the analysis again fills them).

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_results = sa.table(
    "bac_results",
    sa.column("id", sa.Integer),
    sa.column("image_id", sa.Integer),
    sa.column("weights_name", sa.String),
    sa.column("weights_version", sa.String),
    sa.column("threshold", sa.Float),
    sa.column("x", sa.Float),
    sa.column("tam_x", sa.BigInteger),
    sa.column("tam_100", sa.BigInteger),
)


def upgrade() -> None:
    op.add_column("bac_results", sa.Column("tam_100", sa.BigInteger(), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.update(_results).where(_results.c.x == 100.0).values(tam_100=_results.c.tam_x))
    sibling = _results.alias("at_100")
    at_100 = (
        sa.select(sibling.c.tam_x)
        .where(
            sibling.c.image_id == _results.c.image_id,
            sibling.c.weights_name == _results.c.weights_name,
            sibling.c.weights_version == _results.c.weights_version,
            sibling.c.threshold == _results.c.threshold,
            sibling.c.x == 100.0,
        )
        .limit(1)
        .scalar_subquery()
    )
    connection.execute(sa.update(_results).where(_results.c.tam_100.is_(None)).values(tam_100=at_100))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place, so the exams view over the table survives.
    op.drop_column("bac_results", "tam_100")
