"""What an analysis said beside its numbers, kept with every BAC result (issues 12 and 13).

A readout carries more than its five numbers: the plain-language warnings about the image,
the weights' training-data check (``unlike_training``), what their region filter dropped
(``region_filter``) and the weights' spacing when the view was resampled for inference
(``model_spacing_mm``). ``bac_results.context`` keeps them as one JSON object, so a result
taken from the store (``medlim bac batch --resume``, the page's folder batch) says what the
analysis said. Rows stored before have ``NULL``: ``--resume`` analyses those files again
rather than give numbers without what was said about them.

Revision ID: 0006
Revises: 0005
Create Date: 2027-02-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bac_results", sa.Column("context", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("bac_results", "context")
