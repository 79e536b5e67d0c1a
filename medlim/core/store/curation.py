"""Repository functions for dataset curation: keep/drop tags per file (thesis ch. 4–5).

A curator reviews a dataset's files (ordered by anomaly score or shift group)
and tags each one ``keep`` or ``drop``. Datasets are created on first use.
Scores and groups (``curation_scores``) get their functions from the curation
room.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import CurationTagRow, DatasetRow, as_utc, utc_now
from medlim.errors import StoreError

__all__ = ["TAGS", "CurationTag", "dataset_id", "get_tags", "set_tags"]

#: The tags a curator can give a file.
TAGS: tuple[str, ...] = ("keep", "drop")


@dataclass(frozen=True)
class CurationTag:
    """A curator's decision on one file of a dataset."""

    dataset: str
    file: str
    tag: str
    updated_at: dt.datetime


def dataset_id(session: Session, name: str, *, create: bool = True) -> int | None:
    """Row id of the dataset ``name``; created when missing (unless ``create`` is false)."""
    if not name:
        raise StoreError("a dataset needs a name; an empty name is given.")
    found = session.scalar(sa.select(DatasetRow.id).where(DatasetRow.name == name))
    if found is not None or not create:
        return found
    row = DatasetRow(name=name, created_at=utc_now())
    session.add(row)
    session.flush()
    return row.id


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
        raise StoreError(f"tags must be one of {TAGS} or None; {bad} is given.")
    with transaction(target) as session:
        owner = dataset_id(session, dataset)
        existing = {
            row.file: row
            for row in session.scalars(
                sa.select(CurationTagRow).where(
                    CurationTagRow.dataset_id == owner, CurationTagRow.file.in_(list(tags))
                )
            )
        }
        now = utc_now()
        changed = 0
        for file, tag in tags.items():
            row = existing.get(file)
            if tag is None:
                if row is not None:
                    session.delete(row)
                    changed += 1
            elif row is None:
                session.add(CurationTagRow(dataset_id=owner, file=file, tag=tag, updated_at=now))
                changed += 1
            elif row.tag != tag:
                row.tag = tag
                row.updated_at = now
                changed += 1
        session.flush()
        return changed


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
