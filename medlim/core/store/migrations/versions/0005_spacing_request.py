"""The pixel spacing asked for beside every BAC result (issue 13, "Pixel spacing").

Since BAC inference resamples a view to the model's spacing, the same file,
weights, cut-off and X give other readouts when a person states another pixel
spacing (``--pixel-spacing``, the page field) than the file's own.
``bac_results.spacing_request`` records what was asked for: ``"file"`` (the
file's own spacing, the model's when the file has none) or ``"user R×C"``
(the stated spacing in mm). ``--resume`` reuses a stored result only when it
was asked for the same way. Rows stored before have ``NULL``: they may come
from before resampling existed, so they are never reused (the file is analysed
again and its row replaced).

Revision ID: 0005
Revises: 0004
Create Date: 2027-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bac_results", sa.Column("spacing_request", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("bac_results", "spacing_request")
