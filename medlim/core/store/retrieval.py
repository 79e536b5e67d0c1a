"""Repository functions for retrieval indexes: index metadata and per-item records (thesis ch. 6).

The vectors live in the index file (``medlim.curation.retrieval.index``); the
store keeps, per index name, the file path, model, dimension and item count,
and per item its FAISS id, file, labels, anomaly score and site. Item ids are
the index's ids, so a search result maps to its metadata by ``(index, item_id)``
after adds and reloads alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import RetrievalIndexRow, RetrievalItemRow, as_utc, utc_now
from medlim.errors import StoreError

__all__ = [
    "StoredIndex",
    "RetrievalItem",
    "create_index",
    "add_items",
    "get_index",
    "list_indexes",
    "get_items",
    "delete_index",
]

_CHUNK = 5000


@dataclass(frozen=True)
class StoredIndex:
    """Metadata of one saved index."""

    name: str
    path: str
    model: str
    dim: int
    count: int
    created_at: dt.datetime


@dataclass(frozen=True)
class RetrievalItem:
    """One indexed item.

    Attributes:
        item_id: the id in the index; file: source file (relative to the data
        folder or absolute); labels: label names; anomaly_score: scaled score or
        ``None``; site: acquisition site or ``None``.
    """

    item_id: int
    file: str
    labels: tuple[str, ...] = ()
    anomaly_score: float | None = None
    site: str | None = None


def _stored(row: RetrievalIndexRow) -> StoredIndex:
    return StoredIndex(name=row.name, path=row.path, model=row.model, dim=row.dim, count=row.count,
                       created_at=as_utc(row.created_at))


def _row(session: Session, name: str) -> RetrievalIndexRow | None:
    return session.scalar(sa.select(RetrievalIndexRow).where(RetrievalIndexRow.name == name))


def create_index(target: Store | Session, *, name: str, path: str, model: str, dim: int,
                 replace: bool = False) -> StoredIndex:
    """Record a new index (no items yet).

    Raises:
        StoreError: empty name, bad dimension, or the name exists and ``replace`` is false.
    """
    if not name:
        raise StoreError("an index needs a name; an empty name is given.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise StoreError(f"index dimension must be a positive integer, {dim!r} is given.")
    with transaction(target) as session:
        existing = _row(session, name)
        if existing is not None:
            if not replace:
                raise StoreError(f"an index named {name!r} exists already.")
            session.delete(existing)
            session.flush()
        row = RetrievalIndexRow(name=name, path=str(path), model=model, dim=dim, count=0, created_at=utc_now())
        session.add(row)
        session.flush()
        return _stored(row)


def add_items(target: Store | Session, name: str, items: Sequence[RetrievalItem]) -> StoredIndex:
    """Add item records to index ``name`` (ids must be new); updates its count.

    Raises:
        StoreError: unknown index or an id already recorded (nothing is written).
    """
    with transaction(target) as session:
        row = _row(session, name)
        if row is None:
            raise StoreError(f"no index named {name!r}.")
        ids = [int(item.item_id) for item in items]
        if len(set(ids)) != len(ids):
            raise StoreError(f"item ids repeat within the batch for index {name!r}.")
        for start in range(0, len(ids), _CHUNK):
            clash = session.scalars(sa.select(RetrievalItemRow.item_id).where(
                RetrievalItemRow.index_id == row.id, RetrievalItemRow.item_id.in_(ids[start : start + _CHUNK]))).first()
            if clash is not None:
                raise StoreError(f"item id {clash} is already recorded for index {name!r}.")
        if items:
            session.execute(sa.insert(RetrievalItemRow), [
                {"index_id": row.id, "item_id": int(item.item_id), "file": item.file,
                 "labels": {"labels": list(item.labels)},
                 "anomaly_score": None if item.anomaly_score is None else float(item.anomaly_score),
                 "site": item.site} for item in items])
        row.count = int(session.scalar(sa.select(sa.func.count()).where(RetrievalItemRow.index_id == row.id)))
        session.flush()
        return _stored(row)


def get_index(target: Store | Session, name: str) -> StoredIndex | None:
    """Metadata of index ``name`` (``None`` when unknown)."""
    with transaction(target) as session:
        row = _row(session, name)
        return None if row is None else _stored(row)


def list_indexes(target: Store | Session) -> tuple[StoredIndex, ...]:
    """Every recorded index, by name."""
    with transaction(target) as session:
        return tuple(_stored(r) for r in session.scalars(sa.select(RetrievalIndexRow).order_by(RetrievalIndexRow.name)))


def get_items(target: Store | Session, name: str, item_ids: Iterable[int] | None = None) -> dict[int, RetrievalItem]:
    """Item records of index ``name`` keyed by item id (all, or only ``item_ids``).

    Raises:
        StoreError: unknown index.
    """
    with transaction(target) as session:
        row = _row(session, name)
        if row is None:
            raise StoreError(f"no index named {name!r}.")
        query = sa.select(RetrievalItemRow).where(RetrievalItemRow.index_id == row.id)
        wanted = None if item_ids is None else sorted({int(i) for i in item_ids})
        rows: list[RetrievalItemRow] = []
        if wanted is None:
            rows = list(session.scalars(query.order_by(RetrievalItemRow.item_id)))
        else:
            for start in range(0, len(wanted), _CHUNK):
                rows.extend(session.scalars(query.where(RetrievalItemRow.item_id.in_(wanted[start : start + _CHUNK]))))
        return {r.item_id: RetrievalItem(item_id=r.item_id, file=r.file, labels=tuple(r.labels.get("labels", ())),
                                         anomaly_score=r.anomaly_score, site=r.site) for r in rows}


def delete_index(target: Store | Session, name: str) -> bool:
    """Forget index ``name`` and its items (the index file is left alone); ``True`` when it existed."""
    with transaction(target) as session:
        row = _row(session, name)
        if row is None:
            return False
        session.execute(sa.delete(RetrievalItemRow).where(RetrievalItemRow.index_id == row.id))
        session.delete(row)
        return True
