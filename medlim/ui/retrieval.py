"""Helpers of the retrieval page: cached model/index loading, thumbnails, result captions (thesis ch. 6).

Pure helpers (:func:`hit_caption`, :func:`collection_labels`,
:func:`phantom_collection`) are testable without Streamlit; the cached
loaders wrap :mod:`medlim.curation.retrieval.service`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medlim.ui.caching import bounded_cache_data, bounded_cache_resource

__all__ = [
    "THUMBNAIL_SIDE",
    "hit_caption",
    "item_caption",
    "collection_labels",
    "phantom_collection",
    "load_model_cached",
    "load_index_cached",
    "items_cached",
    "thumbnail_cached",
]

THUMBNAIL_SIDE = 112


def hit_caption(rank: int, labels: tuple[str, ...], score: float, score_name: str, anomaly: float | None) -> str:
    """One result's caption: ``#1 · hand · cos 0.981 · A 0.42`` (DS for PMS; ``A –`` when unknown)."""
    score_text = f"cos {score:.3f}" if score_name == "cosine" else f"DS {score:.3f}"
    anomaly_text = "A –" if anomaly is None else f"A {anomaly:.2f}"
    return f"#{rank} · {', '.join(labels) or 'unlabelled'} · {score_text} · {anomaly_text}"


def item_caption(labels: tuple[str, ...], anomaly: float | None) -> str:
    """A collection image's caption: ``hand · A 0.42``."""
    return f"{', '.join(labels) or 'unlabelled'} · " + ("A –" if anomaly is None else f"A {anomaly:.2f}")


def collection_labels(items: Mapping[int, Any]) -> list[str]:
    """Every label present in a collection's items, sorted."""
    return sorted({label for item in items.values() for label in item.labels})


def phantom_collection(kind: str, out_dir: Path, *, n: int, seed: int, size: int = 64,
                       label_set: str | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n`` phantoms (``"radiograph"``: mixed sites, or ``"chest"``) with a manifest into ``out_dir``.

    Radiograph rows carry ``anomaly_score`` = the ground-truth shift severity
    (0 for internal images), so the page can show an anomaly value without
    training detectors. ``label_set`` (chest only) is the PMS model's
    ``params["label_set"]`` (``None`` or ``"chest8"``: the default 8 findings;
    ``"mimic14"``: the 14 MIMIC-like classes), so the sample labels match the model's classes.
    """
    from medlim.phantoms.base import write_manifest
    from medlim.phantoms.registry import get_kind

    phantom_kind = get_kind(kind)
    params: dict[str, Any] = {"size": size, "site": "mixed"} if kind == "radiograph" else {"size": size}
    if kind == "chest" and label_set not in (None, "chest8"):
        params["label_set"] = label_set
    rows = []
    for index, phantom in enumerate(phantom_kind.iter_phantoms(n=n, seed=seed, **params)):
        for row in phantom_kind.write_one(phantom, out_dir, stem=f"{kind}-{seed}-{index:05d}"):
            if kind == "radiograph":
                row["anomaly_score"] = row["shift_severity"]
            rows.append(row)
        if progress is not None:
            progress(index + 1, n)
    write_manifest(rows, out_dir, kind=kind, seed=seed, params=params)
    return out_dir


@bounded_cache_resource(max_entries=4, show_spinner="Loading retrieval model…")
def load_model_cached(name: str, version: str, weights_dir: str) -> Any:
    """:func:`medlim.curation.retrieval.service.load_retrieval_model`, cached per process."""
    from medlim.core.weights import Registry
    from medlim.curation.retrieval.service import load_retrieval_model

    return load_retrieval_model(name, version=version, registry=Registry.load(weights_dir))


@bounded_cache_resource(max_entries=4, show_spinner="Loading index…")
def load_index_cached(path: str, modified: float) -> Any:
    """The index file at ``path`` (``modified`` = its mtime, so a rebuilt file is reloaded)."""
    from medlim.curation.retrieval.service import open_collection

    return open_collection(path)


@bounded_cache_data(max_entries=16, show_spinner=False)
def items_cached(database_url: str, name: str, count: int) -> dict[int, Any]:
    """Item records of collection ``name`` (``count`` keys the cache to the collection's size)."""
    from medlim.core.store import open_store
    from medlim.core.store.retrieval import get_items

    with open_store(database_url) as store:
        return get_items(store, name)


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
