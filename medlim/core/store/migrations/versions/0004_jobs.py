"""Jobs: long work recorded in the store, its log, and the workers running it (issue 15).

The results store is the job queue (``medlim.core.jobs``): one source of truth
that works across machines when the store is PostgreSQL. A worker claims a
queued job with a compare-and-set UPDATE on ``state``; ``worker`` and
``attempts`` are its lease; ``heartbeat_at`` tells a live job from one whose
worker died (it is queued again and resumes from ``checkpoint``).

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("dataset_fingerprint", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("progress_done", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer),
        sa.Column("stage", sa.String(128), nullable=False),
        sa.Column("message", sa.String(512), nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error_class", sa.String(128)),
        sa.Column("error_message", sa.Text),
        sa.Column("checkpoint", sa.JSON),
        sa.Column("worker", sa.String(128)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.Column("heartbeat_at", _TS),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_jobs_state"),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_logs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("line", sa.String(1000), nullable=False),
    )
    op.create_index("ix_job_logs_job_id", "job_logs", ["job_id"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.Column("job_id", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_job_logs_job_id", table_name="job_logs")
    op.drop_table("job_logs")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_table("jobs")
