"""Repository functions for named parameter presets (preprocessing, inference, cut-offs).

A preset is unique by (kind, name), e.g. ("bac-preprocessing", "published");
saving one again replaces its parameters (an atomic upsert: two sessions saving
the same preset at once leave one row, the later parameters). Parameters are
stored as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import PresetRow, as_utc, utc_now
from medlim.core.store.upsert import upsert
from medlim.errors import StoreError

__all__ = ["StoredPreset", "get_preset", "list_presets", "save_preset"]


@dataclass(frozen=True)
class StoredPreset:
    """A named parameter set.

    Attributes:
        id: row id.
        kind: what the parameters configure, e.g. ``"bac-preprocessing"``.
        name: unique within ``kind``.
        params: JSON-able parameters.
        created_at, updated_at: UTC timestamps.
    """

    id: int
    kind: str
    name: str
    params: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: PresetRow) -> "StoredPreset":
        return cls(
            id=row.id,
            kind=row.kind,
            name=row.name,
            params=dict(row.params),
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )


def save_preset(target: Store | Session, *, kind: str, name: str, params: Mapping[str, Any]) -> StoredPreset:
    """Create or replace the preset (kind, name).

    Raises:
        StoreError: empty kind or name, or parameters that are not JSON-able.
    """
    if not kind or not name:
        raise StoreError(f"a preset needs a kind and a name; kind={kind!r}, name={name!r} is given.")
    try:
        plain = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"preset {kind}/{name} parameters must be JSON numbers, text, lists or objects: {exc}"
        ) from None
    now = utc_now()
    with transaction(target) as session:
        upsert(
            session,
            PresetRow.__table__,
            {"kind": kind, "name": name, "params": plain, "created_at": now, "updated_at": now},
            keys=["kind", "name"],
            update=["params", "updated_at"],
        )
        row = session.scalars(
            sa.select(PresetRow).filter_by(kind=kind, name=name).execution_options(populate_existing=True)
        ).one()
        return StoredPreset.from_row(row)


def list_presets(target: Store | Session, kind: str | None = None) -> tuple[StoredPreset, ...]:
    """Presets (of one kind, or all), sorted by kind then name."""
    query = sa.select(PresetRow).order_by(PresetRow.kind, PresetRow.name)
    if kind is not None:
        query = query.where(PresetRow.kind == kind)
    with transaction(target) as session:
        return tuple(StoredPreset.from_row(row) for row in session.scalars(query))


def get_preset(target: Store | Session, kind: str, name: str) -> StoredPreset | None:
    """The preset (kind, name), or ``None`` when there is none."""
    with transaction(target) as session:
        row = session.scalar(sa.select(PresetRow).filter_by(kind=kind, name=name))
        return None if row is None else StoredPreset.from_row(row)
