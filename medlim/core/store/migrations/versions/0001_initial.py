"""Initial schema: images, BAC results and the exams view, presets, curation, retrieval.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# Per-exam BAC readout (thesis §3.3.2); see medlim.core.store.schema.exams_view.
_EXAMS_VIEW = """
CREATE VIEW exams AS
SELECT
    i.patient_key AS patient_key,
    i.study_date AS study_date,
    r.weights_name AS weights_name,
    r.weights_version AS weights_version,
    r.threshold AS threshold,
    r.x AS x,
    SUM(CASE WHEN r.breast_area > 0 THEN CAST(r.tam_x AS FLOAT) / r.breast_area ELSE 0 END)
        AS tam_x_per_area_sum,
    COUNT(*) AS views_counted
FROM bac_results AS r
JOIN images AS i ON i.id = r.image_id
WHERE i.patient_key IS NOT NULL AND i.study_date IS NOT NULL
GROUP BY i.patient_key, i.study_date, r.weights_name, r.weights_version, r.threshold, r.x
"""


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("modality", sa.String(16)),
        sa.Column("view", sa.String(16)),
        sa.Column("laterality", sa.String(1)),
        sa.Column("study_date", sa.Date),
        sa.Column("patient_key", sa.String(64)),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("cols", sa.Integer, nullable=False),
        sa.Column("pixel_spacing_row_mm", sa.Double),
        sa.Column("pixel_spacing_col_mm", sa.Double),
        sa.Column("pixel_spacing_source", sa.String(96)),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("content_sha256"),
    )
    op.create_index("ix_images_patient_key", "images", ["patient_key"])

    op.create_table(
        "bac_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("weights_name", sa.String(128), nullable=False),
        sa.Column("weights_version", sa.String(128), nullable=False),
        sa.Column("preset", sa.String(128), nullable=False),
        sa.Column("threshold", sa.Double, nullable=False),
        sa.Column("x", sa.Double, nullable=False),
        sa.Column("pm", sa.Double, nullable=False),
        sa.Column("am", sa.BigInteger, nullable=False),
        sa.Column("sim", sa.Double, nullable=False),
        sa.Column("tam_x", sa.BigInteger, nullable=False),
        sa.Column("tsim_x", sa.Double, nullable=False),
        sa.Column("breast_area", sa.BigInteger, nullable=False),
        sa.Column("am_mm2", sa.Double),
        sa.Column("tam_x_mm2", sa.Double),
        sa.Column("spacing_source", sa.String(96)),
        sa.Column("seconds", sa.Double),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("image_id", "weights_name", "weights_version", "threshold", "x", name="uq_bac_results_run"),
    )
    op.create_index("ix_bac_results_image_id", "bac_results", ["image_id"])
    op.execute(_EXAMS_VIEW)

    op.create_table(
        "presets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("kind", "name", name="uq_presets_kind_name"),
    )

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "curation_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("class_name", sa.String(128)),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("score_group", sa.Integer),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("dataset_id", "file", "method", name="uq_curation_scores_file_method"),
    )
    op.create_index("ix_curation_scores_dataset_id", "curation_scores", ["dataset_id"])
    op.create_table(
        "curation_tags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("tag", sa.String(8), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("dataset_id", "file", name="uq_curation_tags_file"),
        sa.CheckConstraint("tag IN ('keep', 'drop')", name="ck_curation_tags_tag"),
    )
    op.create_index("ix_curation_tags_dataset_id", "curation_tags", ["dataset_id"])

    op.create_table(
        "retrieval_indexes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "retrieval_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("index_id", sa.Integer, sa.ForeignKey("retrieval_indexes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("anomaly_score", sa.Double),
        sa.Column("site", sa.String(128)),
        sa.UniqueConstraint("index_id", "item_id", name="uq_retrieval_items_item"),
    )
    op.create_index("ix_retrieval_items_index_id", "retrieval_items", ["index_id"])


def downgrade() -> None:
    op.drop_table("retrieval_items")
    op.drop_table("retrieval_indexes")
    op.drop_table("curation_tags")
    op.drop_table("curation_scores")
    op.drop_table("datasets")
    op.drop_table("presets")
    op.execute("DROP VIEW exams")
    op.drop_table("bac_results")
    op.drop_table("images")

