"""Tables of the results store (SQLAlchemy 2.0 declarative ORM).

No identifying field exists anywhere: patients appear only as the pseudonymous
``patient_key`` (keyed hash, see ``medlim.core.io``). The schema changes only
through the alembic migrations in ``migrations/versions``; a test checks that
these models and the migrated database agree.

BAC quantities follow thesis §3.3 eq. 3.8–3.9 (PM, AM, SIM, TAM_X, TSIM_X)
and the per-exam readout of §3.3.2 (Σ TAM_100 / breast area over the views).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "BacResultRow",
    "CurationScoreRow",
    "CurationTagRow",
    "DatasetRow",
    "ImageRow",
    "JobLogRow",
    "JobRow",
    "PresetRow",
    "RetrievalIndexRow",
    "RetrievalItemRow",
    "WorkerRow",
    "exams_view",
    "as_utc",
    "utc_now",
]


def utc_now() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A stored timestamp as aware UTC (SQLite returns naive values; they were written in UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base; ``type_annotation_map`` keeps JSON and timestamps portable."""

    type_annotation_map = {
        dict[str, Any]: sa.JSON,
        dt.datetime: sa.DateTime(timezone=True),
        float: sa.Double,  # 64-bit everywhere (SQLAlchemy 2.0 would pick Float)
    }


class ImageRow(Base):
    """One analysed image, identified by the sha256 of its file bytes.

    ``file_name`` holds a pseudonymous label (``img-<12 hex>.<suffix>``, keyed on
    the content), never the file's own name: archive names often carry the
    patient's name, record number and date (issue 14; migration 0002 relabels
    older rows).
    """

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    file_name: Mapped[str] = mapped_column(sa.String(512))
    modality: Mapped[str | None] = mapped_column(sa.String(16))
    view: Mapped[str | None] = mapped_column(sa.String(16))
    laterality: Mapped[str | None] = mapped_column(sa.String(1))
    study_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    patient_key: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    rows: Mapped[int]
    cols: Mapped[int]
    pixel_spacing_row_mm: Mapped[float | None]
    pixel_spacing_col_mm: Mapped[float | None]
    pixel_spacing_source: Mapped[str | None] = mapped_column(sa.String(96))
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class BacResultRow(Base):
    """BAC quantification of one image by one set of weights at (t, X)."""

    __tablename__ = "bac_results"
    __table_args__ = (
        sa.UniqueConstraint(
            "image_id", "weights_name", "weights_version", "threshold", "x", name="uq_bac_results_run"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    weights_name: Mapped[str] = mapped_column(sa.String(128))
    weights_version: Mapped[str] = mapped_column(sa.String(128))
    preset: Mapped[str] = mapped_column(sa.String(128))
    threshold: Mapped[float]
    x: Mapped[float]
    pm: Mapped[float]
    am: Mapped[int] = mapped_column(sa.BigInteger)
    sim: Mapped[float]
    tam_x: Mapped[int] = mapped_column(sa.BigInteger)
    tsim_x: Mapped[float]
    breast_area: Mapped[int] = mapped_column(sa.BigInteger)
    # TAM_X at X = 100 and the same cut-off, kept beside the chosen X so a patient's
    # history (Σ TAM_100 / breast area, thesis §3.3.2) never depends on X (issue 17, migration 0003).
    tam_100: Mapped[int | None] = mapped_column(sa.BigInteger)
    am_mm2: Mapped[float | None]
    tam_x_mm2: Mapped[float | None]
    spacing_source: Mapped[str | None] = mapped_column(sa.String(96))
    # The spacing asked for: "file" or "user R×C" (mm); NULL before migration 0005 (never reused).
    spacing_request: Mapped[str | None] = mapped_column(sa.String(64))
    # What the analysis said beside its numbers (warnings, unlike_training, region_filter,
    # model_spacing_mm); NULL before migration 0006 (never reused).
    context: Mapped[dict[str, Any] | None]
    seconds: Mapped[float | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class PresetRow(Base):
    """A named parameter set of some kind (e.g. kind "bac-preprocessing", name "published")."""

    __tablename__ = "presets"
    __table_args__ = (sa.UniqueConstraint("kind", "name", name="uq_presets_kind_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(128))
    params: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class DatasetRow(Base):
    """A dataset being curated (scored, grouped, tagged)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(256), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class CurationScoreRow(Base):
    """An anomaly score of one file by one method, and its score group (MedShift, ch. 5)."""

    __tablename__ = "curation_scores"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "file", "method", name="uq_curation_scores_file_method"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(sa.String(1024))
    class_name: Mapped[str | None] = mapped_column(sa.String(128))
    method: Mapped[str] = mapped_column(sa.String(64))
    score: Mapped[float]
    score_group: Mapped[int | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class CurationTagRow(Base):
    """A curator's decision on one file: keep or drop."""

    __tablename__ = "curation_tags"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "file", name="uq_curation_tags_file"),
        sa.CheckConstraint("tag IN ('keep', 'drop')", name="ck_curation_tags_tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(sa.String(1024))
    tag: Mapped[str] = mapped_column(sa.String(8))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utc_now)


class RetrievalIndexRow(Base):
    """Metadata of a saved retrieval (FAISS) index; the vectors live in the file at ``path``.

    ``data_root`` is the folder the items' files are relative to (migration 0002);
    ``None`` for an index recorded before, whose items hold the paths as given.
    """

    __tablename__ = "retrieval_indexes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(256), unique=True)
    path: Mapped[str] = mapped_column(sa.String(1024))
    model: Mapped[str] = mapped_column(sa.String(256))
    dim: Mapped[int]
    count: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    data_root: Mapped[str | None] = mapped_column(sa.String(1024))


class RetrievalItemRow(Base):
    """One indexed item: its position in the index, file (relative to the index's data root), labels and scores."""

    __tablename__ = "retrieval_items"
    __table_args__ = (sa.UniqueConstraint("index_id", "item_id", name="uq_retrieval_items_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(sa.ForeignKey("retrieval_indexes.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int]
    file: Mapped[str] = mapped_column(sa.String(1024))
    labels: Mapped[dict[str, Any]]
    anomaly_score: Mapped[float | None]
    site: Mapped[str | None] = mapped_column(sa.String(128))


class JobRow(Base):
    """A recorded request for long work and where it stands (issue 15; ``medlim.core.jobs``).

    ``parameters`` is what the job runs (e.g. the command's argv); ``worker`` and
    ``attempts`` together are the lease of the worker running it: every write of a
    running job is conditional on both, so a worker that lost the job cannot touch it.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_jobs_state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    parameters: Mapped[dict[str, Any]]
    origin: Mapped[str] = mapped_column(sa.String(16))
    dataset_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    stage: Mapped[str] = mapped_column(sa.String(128), default="")
    message: Mapped[str] = mapped_column(sa.String(512), default="")
    result: Mapped[dict[str, Any] | None]
    error_class: Mapped[str | None] = mapped_column(sa.String(128))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    checkpoint: Mapped[dict[str, Any] | None]
    worker: Mapped[str | None] = mapped_column(sa.String(128))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]


class JobLogRow(Base):
    """One line of a job's log (bounded per job by ``medlim.core.jobs``)."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    line: Mapped[str] = mapped_column(sa.String(1000))


class WorkerRow(Base):
    """A job worker that is (or was lately) alive: its heartbeat says which."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(256))
    pid: Mapped[int]
    started_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utc_now)
    job_id: Mapped[int | None]


#: The per-exam BAC readout (thesis §3.3.2), a view created by migration 0001:
#: Σ over an exam's images of TAM_X / breast area, per patient, study date,
#: weights and (t, X), with the number of images counted. As a view it can never
#: disagree with ``bac_results``. Images without a patient key or study date
#: belong to no exam. Kept out of ``Base.metadata`` (the migration creates it).
exams_view = sa.Table(
    "exams",
    sa.MetaData(),
    sa.Column("patient_key", sa.String(64)),
    sa.Column("study_date", sa.Date),
    sa.Column("weights_name", sa.String(128)),
    sa.Column("weights_version", sa.String(128)),
    sa.Column("threshold", sa.Float),
    sa.Column("x", sa.Float),
    sa.Column("tam_x_per_area_sum", sa.Float),
    sa.Column("views_counted", sa.Integer),
)
