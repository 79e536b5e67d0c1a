"""Results store: what medlim remembers between sessions, in one SQL database.

What lives here: the SQLAlchemy schema (``schema``), its alembic migrations
shipped in ``migrations/`` and applied on :func:`open_store`, the
:class:`Store` with one transaction per ``with store.session():`` block, and
typed repository functions returning frozen dataclasses — BAC results per
image and exam (``bac``), named presets (``presets``), curation tags
(``curation``). Rooms add their repository modules here on the same tables
(curation scores, retrieval index metadata).

What does not: identifying data (only pseudonymous patient keys and file
labels are stored; curated and indexed files as paths relative to their
dataset folder), pixels, model weights or retrieval vectors (files referenced
by path), and any analysis logic.

Every write of a row with a unique key is an atomic upsert (``upsert``), so
concurrent sessions never collide; errors never quote SQL or its values.

The store is an embedded SQLite file in ``Settings.home`` by default; an
SQLite file or PostgreSQL URL works through ``MEDLIM_DATABASE_URL`` (an
in-memory SQLite URL is refused: it would discard every result).
"""

from __future__ import annotations

from medlim.core.store.bac import (
    StoredBacResult,
    StoredExam,
    StoredImage,
    image_label,
    list_bac_results,
    list_exams,
    save_image,
    save_image_record,
    upsert_bac_result,
)
from medlim.core.store.curation import TAGS, CurationTag, get_tags, set_tags
from medlim.core.store.engine import HEAD, Store, downgrade_store, open_store, transaction, upgrade_store
from medlim.core.store.presets import StoredPreset, get_preset, list_presets, save_preset

__all__ = [
    "HEAD",
    "TAGS",
    "CurationTag",
    "Store",
    "StoredBacResult",
    "StoredExam",
    "StoredImage",
    "StoredPreset",
    "downgrade_store",
    "get_preset",
    "get_tags",
    "image_label",
    "list_bac_results",
    "list_exams",
    "list_presets",
    "open_store",
    "save_image",
    "save_image_record",
    "save_preset",
    "set_tags",
    "transaction",
    "upgrade_store",
    "upsert_bac_result",
]
