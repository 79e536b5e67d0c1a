"""Caches of the retrieval page: the model, the index, the item records and thumbnails (thesis ch. 6).

What the page shows (neighbours, their captions, the labels to filter by, the
sample phantom collection) comes from :mod:`medlim.curation.retrieval.service`,
which ``medlim retrieval`` calls too; this module only keeps loaded things
between reruns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlim.ui.caching import bounded_cache_data, bounded_cache_resource

__all__ = [
    "THUMBNAIL_SIDE",
    "load_model_cached",
    "load_index_cached",
    "items_cached",
    "thumbnail_cached",
]

THUMBNAIL_SIDE = 112


@bounded_cache_resource(max_entries=4, show_spinner="Loading retrieval model…")
def load_model_cached(name: str, version: str, weights_dir: str) -> Any:
    """:func:`medlim.curation.retrieval.service.load_retrieval_model`, cached per process."""
    from medlim.core.weights import Registries
    from medlim.curation.retrieval.service import load_retrieval_model

    return load_retrieval_model(name, version=version, registry=Registries.load(weights_dir=weights_dir))


@bounded_cache_resource(max_entries=4, show_spinner="Loading index…")
def load_index_cached(path: str, modified: float) -> Any:
    """The index file at ``path`` (``modified`` = its mtime, so a rebuilt file is reloaded)."""
    from medlim.curation.retrieval.service import open_collection

    return open_collection(path)


@bounded_cache_data(max_entries=16, show_spinner=False)
def items_cached(database_url: str, name: str, count: int) -> dict[int, Any]:
    """Item records of collection ``name`` (``count`` keys the cache to the collection's size)."""
    from medlim.core.store.retrieval import get_items
    from medlim.ui.stores import open_store_cached

    return get_items(open_store_cached(database_url), name)


@bounded_cache_data(max_entries=512, show_spinner=False)
def thumbnail_cached(file: str, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A grey ``[side, side]`` float32 thumbnail of an image file (blank when unreadable)."""
    from medlim.core.io import read_image
    from medlim.curation.ood.data import to_model_input
    from medlim.errors import MedlimError

    try:
        return to_model_input(read_image(Path(file)).pixels, side)
    except MedlimError:
        return np.zeros((side, side), np.float32)
