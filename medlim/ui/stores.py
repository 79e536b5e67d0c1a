"""The results store, opened once per database URL for every page (issue 17: one copy, not one per room).

Opening runs the migrations; pages share the open store (a connection pool)
through :func:`open_store_cached`, a bounded resource cache like every cache of
the pages (:mod:`medlim.ui.caching`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlim.ui.caching import bounded_cache_resource

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store import Store

__all__ = ["open_store_cached"]


@bounded_cache_resource(max_entries=2, show_spinner=False)
def open_store_cached(database_url: str) -> Store:
    """:func:`medlim.core.store.open_store` once per database URL (migrations run on first open)."""
    from medlim.core.store import open_store

    return open_store(database_url)
