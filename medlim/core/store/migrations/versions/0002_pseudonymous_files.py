"""No file names or server paths: images relabelled, retrieval items relative to a data root (issue 14).

* ``images.file_name`` of rows stored before holds the file's own name, which
  in real archives often carries the patient's name, record number and date:
  it is replaced by the pseudonymous label the store now writes
  (:func:`medlim.core.store.bac.image_label`, keyed on the content digest).
  The names are gone for good: the downgrade cannot restore them.
* ``retrieval_indexes.data_root``: the folder an index's item files lie in, so
  items store paths relative to it. Indexes recorded before keep ``NULL`` and
  their items the paths as given, until rebuilt.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_images = sa.table(
    "images",
    sa.column("id", sa.Integer),
    sa.column("content_sha256", sa.String),
    sa.column("file_name", sa.String),
)


def upgrade() -> None:
    op.add_column("retrieval_indexes", sa.Column("data_root", sa.String(1024), nullable=True))
    _relabel_images()


def _relabel_images() -> None:
    from medlim.core.store.bac import image_label

    connection = op.get_bind()
    rows = connection.execute(sa.select(_images.c.id, _images.c.content_sha256, _images.c.file_name)).all()
    for row_id, content_sha256, file_name in rows:
        label = image_label(file_name, content_sha256)
        if label != file_name:
            connection.execute(sa.update(_images).where(_images.c.id == row_id).values(file_name=label))


def downgrade() -> None:
    with op.batch_alter_table("retrieval_indexes") as batch:
        batch.drop_column("data_root")
