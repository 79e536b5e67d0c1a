"""Repository functions for retrieval indexes: index metadata and per-item records (thesis ch. 6).

The vectors live in the index file (``medlim.curation.retrieval.index``); the
store keeps, per index name, the file path, model, dimension and item count,
and per item its FAISS id, file, labels, anomaly score and site. Item ids are
the index's ids, so a search result maps to its metadata by ``(index, item_id)``
after adds and reloads alike.

Issue 14: an index recorded with a ``data_root`` keeps each item's file as a
path relative to that folder (the root is stored once, per index), and hands
it back joined to the root so a page can re-open the image. Writes are atomic
upserts: two builders recording the same index or items at once never collide
on the unique keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import RetrievalIndexRow, RetrievalItemRow, as_utc, utc_now
from medlim.core.store.upsert import upsert
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
    "relative_to_root",
]

_CHUNK = 5000


@dataclass(frozen=True)
class StoredIndex:
    """Metadata of one saved index (``data_root``: the folder its items' files lie in, or ``None``)."""

    name: str
    path: str
    model: str
    dim: int
    count: int
    created_at: dt.datetime
    data_root: str | None = None


@dataclass(frozen=True)
class RetrievalItem:
    """One indexed item.

    Attributes:
        item_id: the id in the index; file: source file (as read back: the
        index's data root joined with the stored relative path; for an index
        without a data root, as given); labels: label names; anomaly_score:
        scaled score or ``None``; site: acquisition site or ``None``.
    """

    item_id: int
    file: str
    labels: tuple[str, ...] = ()
    anomaly_score: float | None = None
    site: str | None = None


def _stored(row: RetrievalIndexRow) -> StoredIndex:
    return StoredIndex(name=row.name, path=row.path, model=row.model, dim=row.dim, count=row.count,
                       created_at=as_utc(row.created_at), data_root=row.data_root)


def _path_type(root: str) -> type[PurePosixPath] | type[PureWindowsPath]:
    return PureWindowsPath if PureWindowsPath(root).drive else PurePosixPath


def relative_to_root(file: str, root: str | None) -> str:
    """``file`` as stored for an index whose data root is ``root``: relative, ``/``-separated.

    Raises:
        StoreError: ``file`` does not lie inside ``root``.
    """
    if root is None:
        return str(file)
    kind = _path_type(root)
    path, base = kind(file), kind(root)
    if not path.is_absolute():
        path = base / path
    if ".." in path.parts or (path != base and base not in path.parents):
        raise StoreError("an indexed file must lie inside the collection's data folder; "
                         f"a file outside {root} is given.")
    return path.relative_to(base).as_posix()


def _joined(file: str, root: str | None) -> str:
    return file if root is None else str(_path_type(root)(root) / file)


def _row(session: Session, name: str) -> RetrievalIndexRow | None:
    return session.scalar(sa.select(RetrievalIndexRow).where(RetrievalIndexRow.name == name))


def create_index(target: Store | Session, *, name: str, path: str, model: str, dim: int,
                 replace: bool = False, data_root: str | None = None) -> StoredIndex:
    """Record a new index (no items yet).

    Args:
        name, path, model, dim: the index's name, file, model label and vector dimension.
        replace: forget an index of the same name (and its items) instead of refusing.
        data_root: absolute folder the items' files lie in; they are then stored
            relative to it.

    Raises:
        StoreError: empty name, bad dimension, a relative data root, or the name
            exists and ``replace`` is false.
    """
    if not name:
        raise StoreError("an index needs a name; an empty name is given.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise StoreError(f"index dimension must be a positive integer, {dim!r} is given.")
    if data_root is not None and not _path_type(str(data_root))(str(data_root)).is_absolute():
        raise StoreError(f"an index's data root must be an absolute folder; {str(data_root)!r} is given.")
    values = {"name": name, "path": str(path), "model": model, "dim": dim, "count": 0, "created_at": utc_now(),
              "data_root": None if data_root is None else str(data_root)}
    with transaction(target) as session:
        if replace:
            upsert(session, RetrievalIndexRow.__table__, values, keys=["name"],
                   update=["path", "model", "dim", "count", "created_at", "data_root"])
        elif upsert(session, RetrievalIndexRow.__table__, values, keys=["name"]) == 0:
            raise StoreError(f"an index named {name!r} exists already.")
        row = session.scalars(sa.select(RetrievalIndexRow).where(RetrievalIndexRow.name == name)
                              .execution_options(populate_existing=True)).one()
        if replace:
            session.execute(sa.delete(RetrievalItemRow).where(RetrievalItemRow.index_id == row.id))
        return _stored(row)


def add_items(target: Store | Session, name: str, items: Sequence[RetrievalItem]) -> StoredIndex:
    """Add item records to index ``name`` (ids must be new); updates its count.

    Files are stored relative to the index's data root when it has one.

    Raises:
        StoreError: unknown index, an id already recorded, or a file outside the
            data root (nothing is written).
    """
    with transaction(target) as session:
        row = _row(session, name)
        if row is None:
            raise StoreError(f"no index named {name!r}.")
        ids = [int(item.item_id) for item in items]
        if len(set(ids)) != len(ids):
            raise StoreError(f"item ids repeat within the batch for index {name!r}.")
        files = [relative_to_root(item.file, row.data_root) for item in items]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            inserted = upsert(session, RetrievalItemRow.__table__, [
                {"index_id": row.id, "item_id": item_id, "file": file, "labels": {"labels": list(item.labels)},
                 "anomaly_score": None if item.anomaly_score is None else float(item.anomaly_score),
                 "site": item.site}
                for item_id, file, item in zip(chunk, files[start : start + _CHUNK], items[start : start + _CHUNK])
            ], keys=["index_id", "item_id"])
            if inserted != len(chunk):  # DO NOTHING kept rows recorded before (or by another writer just now)
                clash = session.scalars(sa.select(RetrievalItemRow.item_id).where(
                    RetrievalItemRow.index_id == row.id, RetrievalItemRow.item_id.in_(chunk))).first()
                raise StoreError(f"item id {clash} is already recorded for index {name!r}.")
        row.count = int(
            session.execute(sa.select(sa.func.count()).where(RetrievalItemRow.index_id == row.id)).scalar_one()
        )
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
        return {r.item_id: RetrievalItem(item_id=r.item_id, file=_joined(r.file, row.data_root),
                                         labels=tuple(r.labels.get("labels", ())), anomaly_score=r.anomaly_score,
                                         site=r.site) for r in rows}


def delete_index(target: Store | Session, name: str) -> bool:
    """Forget index ``name`` and its items (the index file is left alone); ``True`` when it existed."""
    with transaction(target) as session:
        row = _row(session, name)
        if row is None:
            return False
        session.execute(sa.delete(RetrievalItemRow).where(RetrievalItemRow.index_id == row.id))
        session.delete(row)
        return True
