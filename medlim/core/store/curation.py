"""Repository functions for dataset curation: keep/drop tags per file (thesis ch. 4–5).

A curator reviews a dataset's files (ordered by anomaly score or shift group)
and tags each one ``keep`` or ``drop``. Datasets are created on first use.
Scores and groups (``curation_scores``) get their functions from the curation
room. A MedShift run is stored under its dataset name: saving a new run under a
name that holds scores already is refused (:class:`RunExistsError`) unless the
caller replaces it, and replacing deletes the old run's scores and tags in the
same transaction (issue 17), so no stale decision survives on a new run.

A file is recorded as its path relative to the dataset's folder (what the
gallery needs to re-open it and what a curated manifest lists), never as a
server path: an absolute path or one climbing out with ``..`` is refused
(issue 14). Every write is an atomic upsert, so two sessions tagging or scoring
the same files at once never collide on the unique keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import (
    CurationScoreRow,
    CurationTagRow,
    DatasetRow,
    as_utc,
    utc_now,
)
from medlim.core.store.upsert import upsert
from medlim.errors import StoreError

__all__ = [
    "TAGS",
    "RunExistsError",
    "CurationTag",
    "StoredScore",
    "dataset_file",
    "dataset_id",
    "get_tags",
    "set_tags",
    "tag_map",
    "save_scores",
    "save_run_scores",
    "run_exists",
    "get_scores",
    "list_datasets",
    "tag_group",
]

#: The tags a curator can give a file.
TAGS: tuple[str, ...] = ("keep", "drop")


class RunExistsError(StoreError):
    """A run is saved under this dataset name already and replacing it was not asked for."""


@dataclass(frozen=True)
class CurationTag:
    """A curator's decision on one file of a dataset."""

    dataset: str
    file: str
    tag: str
    updated_at: dt.datetime


def dataset_file(file: object) -> str:
    """``file`` as the store records it: a path relative to the dataset folder, with ``/`` separators.

    Raises:
        StoreError: an empty or absolute path, one with ``..`` or a NUL byte: the
            store keeps no server paths, only paths inside a dataset. The message
            does not repeat the path (it may carry a patient's name).
    """
    text = str(file).replace("\\", "/")
    parts = text.split("/")
    if not text.strip() or "\x00" in text:
        problem = "an empty path"
    elif text.startswith("/") or (len(parts[0]) >= 2 and parts[0][1] == ":"):
        problem = "an absolute path"
    elif ".." in parts:
        problem = "a path climbing out with '..'"
    else:
        return text
    raise StoreError(f"a curated file must be a path inside its dataset folder (e.g. 'hand/0001.png'); "
                     f"{problem} is given.")


def dataset_id(session: Session, name: str, *, create: bool = True) -> int | None:
    """Row id of the dataset ``name``; created when missing (unless ``create`` is false)."""
    if not name:
        raise StoreError("a dataset needs a name; an empty name is given.")
    if create:
        upsert(session, DatasetRow.__table__, {"name": name, "created_at": utc_now()}, keys=["name"])
    return session.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name))


def set_tags(target: Store | Session, dataset: str, tags: Mapping[str, str | None]) -> int:
    """Set (or, with ``None``, clear) the tags of files in ``dataset``, all in one transaction.

    Args:
        target: the store (one transaction) or a session (the caller's transaction).
        dataset: dataset name (created when missing).
        tags: file -> ``"keep"``, ``"drop"`` or ``None`` to remove the tag.

    Returns:
        Number of files changed.

    Raises:
        StoreError: a tag other than keep/drop (nothing is written).
    """
    bad = {file: tag for file, tag in tags.items() if tag is not None and tag not in TAGS}
    if bad:
        raise StoreError(f"tags must be one of {TAGS} or None; {len(bad)} other value(s) given, e.g. "
                         f"{next(iter(bad.values()))!r}.")
    wanted = {dataset_file(file): tag for file, tag in tags.items()}
    with transaction(target) as session:
        owner = dataset_id(session, dataset)
        stored = {file: tag for file, tag in session.execute(
            sa.select(CurationTagRow.file, CurationTagRow.tag).where(
                CurationTagRow.dataset_id == owner, CurationTagRow.file.in_(list(wanted))))}
        cleared = [file for file, tag in wanted.items() if tag is None and file in stored]
        if cleared:
            session.execute(sa.delete(CurationTagRow).where(CurationTagRow.dataset_id == owner,
                                                            CurationTagRow.file.in_(cleared)))
        now = utc_now()
        upsert(session, CurationTagRow.__table__,
               [{"dataset_id": owner, "file": file, "tag": tag, "updated_at": now}
                for file, tag in wanted.items() if tag is not None],
               keys=["dataset_id", "file"], update=["tag", "updated_at"], only_if_changed=["tag"])
        session.flush()
        return len(cleared) + sum(1 for file, tag in wanted.items() if tag is not None and stored.get(file) != tag)


def get_tags(target: Store | Session, dataset: str) -> tuple[CurationTag, ...]:
    """All tags of ``dataset`` sorted by file (empty for an unknown dataset)."""
    with transaction(target) as session:
        owner = dataset_id(session, dataset, create=False)
        if owner is None:
            return ()
        rows = session.scalars(
            sa.select(CurationTagRow).where(CurationTagRow.dataset_id == owner).order_by(CurationTagRow.file)
        )
        return tuple(
            CurationTag(dataset=dataset, file=r.file, tag=r.tag, updated_at=as_utc(r.updated_at)) for r in rows
        )


# ---------------------------------------------------------------- anomaly scores and groups (MedShift, thesis ch. 5)
_INSERT_CHUNK = 5000


@dataclass(frozen=True)
class StoredScore:
    """One file's anomaly score by one method, with its score group (``None`` when ungrouped)."""

    dataset: str
    file: str
    class_name: str | None
    method: str
    score: float
    group: int | None
    updated_at: dt.datetime


def tag_map(target: Store | Session, dataset: str) -> dict[str, str]:
    """file → tag of ``dataset`` (empty for an unknown dataset)."""
    return {t.file: t.tag for t in get_tags(target, dataset)}


def _score_records(dataset: str, rows: Iterable[Mapping[str, object]], method: str) -> list[dict[str, object]]:
    """Checked ``curation_scores`` values of ``rows`` (without the dataset id).

    Raises:
        StoreError: an empty method, a row without ``file``/``score``, a non-finite
            score, or a file given twice.
    """
    import math

    if not method:
        raise StoreError("scores need a method name; an empty name is given.")
    records = []
    now = utc_now()
    for position, row in enumerate(rows):
        if "file" not in row or "score" not in row:
            raise StoreError(f"a score row needs 'file' and 'score'; row {position} has columns {sorted(row)}.")
        score = float(row["score"])  # type: ignore[arg-type]
        if not math.isfinite(score):
            raise StoreError(f"the score of row {position} must be finite, {score!r} is given.")
        group = row.get("group")
        class_name = row.get("class")
        records.append({
            "file": dataset_file(row["file"]),
            "class_name": None if class_name is None else str(class_name),
            "method": method,
            "score": score,
            "score_group": None if group is None else int(group),  # type: ignore[call-overload]
            "updated_at": now,
        })
    files = [r["file"] for r in records]
    if len(set(files)) != len(files):
        raise StoreError(f"score rows repeat files ({len(files) - len(set(files))} duplicates) in dataset {dataset!r}.")
    return records


def _write_scores(session: Session, owner: int | None, records: list[dict[str, object]]) -> None:
    # an upsert, not a plain insert: a second run saving at the same moment may have
    # written some of these rows after this transaction's delete
    for start in range(0, len(records), _INSERT_CHUNK):
        chunk = [{**r, "dataset_id": owner} for r in records[start : start + _INSERT_CHUNK]]
        upsert(session, CurationScoreRow.__table__, chunk, keys=["dataset_id", "file", "method"],
               update=["class_name", "score", "score_group", "updated_at"])


def save_scores(target: Store | Session, dataset: str, rows: Iterable[Mapping[str, object]], *, method: str) -> int:
    """Replace the scores of ``method`` in ``dataset`` by ``rows``, in one transaction.

    Args:
        target: the store or the caller's session.
        dataset: dataset name (created when missing).
        rows: mappings with ``file``, ``score`` and optionally ``class`` and ``group``.
        method: scoring method, e.g. ``"medshift-cvad"``.

    Returns:
        Number of rows written. Tags are left untouched (a saved run is
        replaced with :func:`save_run_scores`, which deletes them).

    Raises:
        StoreError: a row without ``file``/``score``, a non-finite score, or an empty method.
    """
    records = _score_records(dataset, rows, method)
    with transaction(target) as session:
        owner = dataset_id(session, dataset)
        session.execute(sa.delete(CurationScoreRow).where(CurationScoreRow.dataset_id == owner,
                                                          CurationScoreRow.method == method))
        _write_scores(session, owner, records)
        session.flush()
    return len(records)


def run_exists(target: Store | Session, dataset: str) -> bool:
    """Whether a run is saved under ``dataset`` (the dataset holds scores of any method)."""
    with transaction(target) as session:
        owner = dataset_id(session, dataset, create=False)
        return owner is not None and session.scalar(
            sa.select(CurationScoreRow.id).where(CurationScoreRow.dataset_id == owner).limit(1)) is not None


def save_run_scores(target: Store | Session, dataset: str, rows: Iterable[Mapping[str, object]], *, method: str,
                    replace: bool = False) -> int:
    """Store a new run's scores under ``dataset``: refused when a run is saved there, unless ``replace``.

    Replacing deletes every score (of every method) and every tag of the dataset
    before the new rows are written, all in one transaction: the old run's
    keep/drop decisions belong to the old run. The dataset row is written
    first, so on SQLite the transaction holds the write lock before it looks
    for an existing run (and on PostgreSQL the row is locked), and two sessions
    saving a new run under the same name at once cannot both see it free.

    Args:
        target: the store or the caller's session.
        dataset: dataset name (created when missing).
        rows: mappings with ``file``, ``score`` and optionally ``class`` and ``group``.
        method: scoring method, e.g. ``"medshift-cvad"``.
        replace: replace a run saved under this name (its scores and tags are deleted).

    Returns:
        Number of rows written.

    Raises:
        RunExistsError: a run is saved under ``dataset`` and ``replace`` is false (nothing is written).
        StoreError: bad rows (see :func:`save_scores`).
    """
    records = _score_records(dataset, rows, method)
    with transaction(target) as session:
        upsert(session, DatasetRow.__table__, {"name": dataset, "created_at": utc_now()}, keys=["name"])
        owner = session.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == dataset).with_for_update())
        held = session.scalar(sa.select(CurationScoreRow.id).where(CurationScoreRow.dataset_id == owner).limit(1))
        if held is not None and not replace:
            raise RunExistsError(f"a run is saved as {dataset!r} already; replace it (its tags are deleted) "
                                 "or choose another name.")
        session.execute(sa.delete(CurationScoreRow).where(CurationScoreRow.dataset_id == owner))
        session.execute(sa.delete(CurationTagRow).where(CurationTagRow.dataset_id == owner))
        _write_scores(session, owner, records)
        session.flush()
    return len(records)


def get_scores(target: Store | Session, dataset: str, *, method: str | None = None) -> tuple[StoredScore, ...]:
    """Scores of ``dataset`` (of one ``method`` when given), sorted by method, class, score, file."""
    with transaction(target) as session:
        owner = dataset_id(session, dataset, create=False)
        if owner is None:
            return ()
        query = sa.select(CurationScoreRow).where(CurationScoreRow.dataset_id == owner)
        if method is not None:
            query = query.where(CurationScoreRow.method == method)
        query = query.order_by(CurationScoreRow.method, CurationScoreRow.class_name, CurationScoreRow.score,
                               CurationScoreRow.file)
        return tuple(StoredScore(dataset=dataset, file=r.file, class_name=r.class_name, method=r.method,
                                 score=float(r.score), group=r.score_group, updated_at=as_utc(r.updated_at))
                     for r in session.scalars(query))


def list_datasets(target: Store | Session, *, with_scores: bool = False) -> tuple[str, ...]:
    """Dataset names, sorted (only those holding scores when ``with_scores``)."""
    with transaction(target) as session:
        query = sa.select(DatasetRow.name)
        if with_scores:
            query = query.where(DatasetRow.id.in_(sa.select(CurationScoreRow.dataset_id)))
        return tuple(session.scalars(query.order_by(DatasetRow.name)))


def tag_group(target: Store | Session, dataset: str, *, method: str, class_name: str | None, group: int,
              tag: str | None) -> int:
    """Tag every file of one score group (of one class, or of all classes when ``class_name`` is ``None``).

    Returns:
        Number of files whose tag changed.
    """
    with transaction(target) as session:
        files = [s.file for s in get_scores(session, dataset, method=method)
                 if s.group == group and (class_name is None or s.class_name == class_name)]
        return set_tags(session, dataset, {f: tag for f in files}) if files else 0
