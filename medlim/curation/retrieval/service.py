"""Collections: build, query and evaluate retrieval indexes with a shipped model (thesis ch. 6 workflow).

The command line (``medlim retrieval``) and the page (``pages/retrieval.py``)
both call these functions:

* :func:`load_retrieval_model` — a registered OSCARS/baseline embedding or PMS model;
* :func:`read_collection` — a data folder: ``manifest.csv`` (``file`` plus
  ``class`` for single-label data, or ``labels`` joined by ``|`` for
  multi-label data; optional ``site`` and ``anomaly_score``) or ``<class>/``
  sub-folders, or just images;
* :func:`build_collection` — encode every image, save the index file
  (embedding models: exact cosine index; PMS: the class-similarity vectors,
  searched exactly by DS) and record the items in the results store;
* :func:`query_collection` — the top K of query images, with files, labels,
  scores and anomaly scores, optionally restricted to items carrying a label;
* :func:`evaluation_tables` — the comparison tables of the shipped models
  (Tables 6.1–6.3 style), from their manifest metrics or recomputed.

Scores: cosine similarity (higher = closer) for embedding models, DS (lower =
closer) for PMS; ``QueryHit.score_name`` says which.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError, WeightsError

__all__ = [
    "RetrievalModel",
    "Collection",
    "BuiltCollection",
    "QueryHit",
    "load_retrieval_model",
    "list_retrieval_models",
    "read_collection",
    "build_collection",
    "open_collection",
    "query_collection",
    "evaluation_tables",
]

_ARCHITECTURES = ("retrieval-resnet18", "pms-resnet18")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RetrievalModel:
    """A loaded retrieval model.

    Attributes:
        label: the weights label (``name@version``); name, version: the registry key;
        kind: ``"embedding"`` or ``"pms"``;
        net: the network (eval mode); classes: its class names;
        input_size: square input side.
    """

    label: str
    name: str
    version: str
    kind: str
    net: Any
    classes: tuple[str, ...]
    input_size: int

    def encode(self, images: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(vectors, probabilities)``: embeddings ``[N, D]`` (probabilities ``None``) or PMS ``(s [N, k], p [N, k])``.

        Args:
            images: grey or RGB float images in [0, 1] of any size (resized by the preset).
        """
        from medlim.curation.ood.data import stack_inputs
        from medlim.curation.retrieval.train import embed, pms_outputs

        inputs = stack_inputs(images, self.input_size)
        if self.kind == "pms":
            similarity, probability = pms_outputs(self.net, inputs)
            return similarity.astype(np.float32), probability
        return embed(self.net, inputs), None


def list_retrieval_models(registry: Any = None) -> list[Any]:
    """Registry entries that are retrieval models, by name."""
    from medlim.core.weights import Registry

    registry = registry if registry is not None else Registry.load()
    return [e for e in registry.list() if e.architecture in _ARCHITECTURES]


def load_retrieval_model(name: str, *, version: str | None = None, registry: Any = None) -> RetrievalModel:
    """Load the retrieval model registered as ``name`` (checksum verified, strict load, CPU)."""
    from medlim.core.weights import Registry, build_model

    registry = registry if registry is not None else Registry.load()
    entry = registry.get(name, version)
    if entry.architecture not in _ARCHITECTURES:
        raise WeightsError(f"weights {entry.label} ({entry.architecture}) are not a retrieval model.")
    net = build_model(entry, device="cpu").eval()
    return RetrievalModel(label=entry.label, name=entry.name, version=entry.version, kind="pms" if entry.architecture == "pms-resnet18" else "embedding",
                          net=net, classes=tuple(entry.params.get("classes", ())),
                          input_size=int(entry.params["input_size"]))


@dataclass(frozen=True)
class Collection:
    """Image files of a data folder with their labels.

    Attributes:
        root: the folder; files: absolute paths; labels: label names per file;
        sites: site per file (``None`` unknown); anomaly: scores from the manifest (``None`` where absent).
    """

    root: Path
    files: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    sites: tuple[str | None, ...]
    anomaly: tuple[float | None, ...]

    def __len__(self) -> int:
        return len(self.files)


def read_collection(directory: str | Path) -> Collection:
    """Describe the images under ``directory`` (see the module docstring for the layouts).

    Every file must lie inside the folder once links are resolved (a manifest row
    such as ``../../etc/hosts`` or a link leading out is refused): the results
    store records the files relative to the folder (issue 14).

    Raises:
        ParameterError: no such folder, no images, a manifest without ``file``, or
            a file outside the folder.
    """
    from medlim.curation.ood.data import list_image_files

    root = Path(directory)
    if not root.is_dir():
        raise ParameterError(f"data folder {str(root)!r} does not exist.")
    base = root.resolve()
    manifest = root / "manifest.csv"
    files, labels, sites, anomaly = [], [], [], []
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                if not row.get("file"):
                    raise ParameterError(f"{manifest} needs a 'file' column.")
                files.append(_inside(base, root / row["file"], f"{manifest.name} line {number}"))
                if row.get("labels"):
                    labels.append(tuple(x for x in row["labels"].split("|") if x))
                else:
                    labels.append((row["class"],) if row.get("class") else ())
                sites.append(row.get("site") or None)
                score = row.get("anomaly_score")
                anomaly.append(float(score) if score not in (None, "") else None)
    else:
        for number, path in enumerate(list_image_files([root]), start=1):
            files.append(_inside(base, path, f"image {number} of the folder"))
            parent = path.parent
            labels.append((parent.name,) if parent != root else ())
            sites.append(None)
            anomaly.append(None)
    if not files:
        raise ParameterError(f"no images found under {str(root)!r}.")
    return Collection(root=root, files=tuple(files), labels=tuple(labels), sites=tuple(sites), anomaly=tuple(anomaly))


def _inside(base: Path, path: Path, where: str) -> str:
    """``path`` resolved, as text, when it lies inside ``base`` (already resolved)."""
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ParameterError(f"{where} leads outside the data folder {str(base)!r}; "
                             "a collection may hold only files inside its folder.")
    return str(resolved)


@dataclass(frozen=True)
class BuiltCollection:
    """A built index: its name, file, model and size."""

    name: str
    path: Path
    model: str
    count: int
    dim: int


def _read_images(files: Sequence[str], size: int, progress: Progress | None, offset: int, total: int) -> np.ndarray:
    from medlim.core.io import read_image
    from medlim.curation.ood.data import to_model_input

    out = np.zeros((len(files), size, size), np.float32)
    for i, file in enumerate(files):
        out[i] = to_model_input(read_image(Path(file)).pixels, size)
        if progress is not None:
            progress(offset + i + 1, total)
    return out


def build_collection(
    data: str | Path,
    model_name: str,
    index_path: str | Path,
    *,
    name: str | None = None,
    store: Any = None,
    registry: Any = None,
    kind: str = "flat",
    append: bool = False,
    progress: Progress | None = None,
) -> BuiltCollection:
    """Encode every image of ``data`` with ``model_name``, save the index and record the items.

    With ``append=True`` and an existing index file, only the images whose
    files are not in the collection yet are encoded and added; their ids
    continue after the existing ones (``next_id``), so earlier ids and their
    store records stay valid.

    Args:
        data: data folder (see :func:`read_collection`).
        model_name: registered retrieval model.
        index_path: where to write the index (``.npz``).
        name: collection name in the store (default: the index file stem).
        store: results store (default :func:`medlim.core.store.open_store`).
        registry: weights registry (default the settings' one).
        kind: ``"flat"`` (exact) or ``"hnsw"`` for embedding models; PMS is always exact.
        progress: ``progress(done, total)`` over the images.
    """
    from medlim.core.store import open_store

    if kind not in ("flat", "hnsw"):
        raise ParameterError(f"`kind` must be 'flat' or 'hnsw' for a collection, {kind!r} is given.")
    from medlim.core.store.retrieval import get_items

    collection = read_collection(data)
    model = load_retrieval_model(model_name, registry=registry)
    label = name or Path(index_path).name.removesuffix(".npz")
    existing = None
    own = store is None
    store = store if store is not None else open_store()
    try:
        if append and Path(index_path).is_file():
            existing = open_collection(index_path)
            if existing.metadata.get("model") != model.label:
                raise ParameterError(f"{str(index_path)!r} holds {existing.metadata.get('model')} vectors; "
                                     f"cannot append {model.label} vectors.")
            label = existing.metadata["name"]
            recorded = existing.metadata.get("data")
            if recorded is not None and Path(recorded) != collection.root.resolve():
                raise ParameterError(f"{str(index_path)!r} indexes the folder {recorded!r}; append images from "
                                     "that folder, or build a new collection for another one.")
            known = {item.file for item in get_items(store, label).values()}
            keep = [i for i, f in enumerate(collection.files) if f not in known]
            collection = Collection(root=collection.root, files=tuple(collection.files[i] for i in keep),
                                    labels=tuple(collection.labels[i] for i in keep),
                                    sites=tuple(collection.sites[i] for i in keep),
                                    anomaly=tuple(collection.anomaly[i] for i in keep))
        return _encode_and_save(collection, model, index_path, label, existing, store, kind, progress)
    finally:
        if own:
            store.close()


def _encode_and_save(collection: Collection, model: RetrievalModel, index_path: str | Path, label: str,
                     existing: Any, store: Any, kind: str, progress: Progress | None) -> BuiltCollection:
    from medlim.core.store.retrieval import RetrievalItem, add_items, create_index
    from medlim.curation.retrieval.index import IndexConfig, RetrievalIndex

    chunk = 256
    vectors, probabilities = [], []
    for start in range(0, len(collection), chunk):
        images = _read_images(collection.files[start : start + chunk], model.input_size, progress, start,
                              len(collection))
        v, p = model.encode(images)
        vectors.append(v)
        if p is not None:
            probabilities.append(p)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)
    if existing is None:
        # PMS keeps raw similarity vectors (DS is an L1 distance on them); embeddings are searched by cosine
        config = IndexConfig(kind="flat", normalise=False) if model.kind == "pms" else IndexConfig(kind=kind)
        index = RetrievalIndex.build(matrix, config=config)
        new_ids = index.ids
        index.metadata = {"name": label, "model": model.label, "model_name": model.name,
                          "model_version": model.version, "model_kind": model.kind, "data": str(collection.root.resolve())}
    else:
        index = existing
        new_ids = index.add(matrix) if len(collection) else np.zeros(0, np.int64)
    saved = index.save(index_path)
    items = [RetrievalItem(item_id=int(i), file=f, labels=lab, anomaly_score=a, site=s)
             for i, f, lab, a, s in zip(new_ids, collection.files, collection.labels, collection.anomaly,
                                        collection.sites)]
    if existing is None:  # items are stored relative to the data folder (issue 14)
        create_index(store, name=label, path=str(saved.resolve()), model=model.label, dim=index.dim, replace=True,
                     data_root=str(collection.root.resolve()))
    stored = add_items(store, label, items)
    return BuiltCollection(name=label, path=saved, model=model.label, count=stored.count, dim=index.dim)


def open_collection(index_path: str | Path) -> Any:
    """Load an index file written by :func:`build_collection`."""
    from medlim.curation.retrieval.index import RetrievalIndex

    index = RetrievalIndex.load(index_path)
    if "model" not in index.metadata:
        raise ParameterError(f"{str(index_path)!r} was not built by `medlim retrieval build` (no model recorded).")
    return index


@dataclass(frozen=True)
class QueryHit:
    """One result row.

    Attributes:
        query: query name; rank: 1-based; item_id: id in the index; file; labels;
        score: cosine similarity (embedding) or DS (PMS); score_name: ``"cosine"`` or ``"ds"``;
        anomaly_score: the item's stored anomaly score (``None`` unknown); site.
    """

    query: str
    rank: int
    item_id: int
    file: str
    labels: tuple[str, ...]
    score: float
    score_name: str
    anomaly_score: float | None
    site: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "rank": self.rank, "file": self.file, "labels": list(self.labels),
                "score": self.score, "score_name": self.score_name, "item_id": self.item_id,
                "anomaly_score": self.anomaly_score, "site": self.site}


def query_collection(
    index_path: str | Path,
    images: Sequence[np.ndarray],
    *,
    k: int = 10,
    names: Sequence[str] | None = None,
    require_labels: Sequence[str] = (),
    weighted: bool = True,
    exclude_ids: Sequence[int] | None = None,
    store: Any = None,
    registry: Any = None,
    model: RetrievalModel | None = None,
    index: Any = None,
) -> list[list[QueryHit]]:
    """The top ``k`` items for each query image.

    Args:
        index_path: an index written by :func:`build_collection`.
        images: query images (float in [0, 1], any size).
        k: results per query.
        names: query names for the output (default ``query-<i>``).
        require_labels: keep only items carrying all of these labels (exact:
            the whole collection is ranked before filtering).
        weighted: PMS only — weighted (eq. 6.5) or unweighted DS.
        exclude_ids: per query, an item id to leave out (``-1`` none), e.g. the
            item itself for "more like this".
        store, registry: defaults from the settings.
        model, index: already loaded ones (the page caches them).

    Returns:
        One list of :class:`QueryHit` per query, best first.
    """
    from medlim.core.store import open_store
    from medlim.core.store.retrieval import get_items
    from medlim.curation.retrieval.pms import PmsCollection

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"`k` must be a positive integer, {k!r} is given.")
    index = index if index is not None else open_collection(index_path)
    if model is None:
        model = load_retrieval_model(index.metadata["model_name"], version=index.metadata["model_version"],
                                     registry=registry)
    if model.label != index.metadata["model"]:
        raise ParameterError(f"index {str(index_path)!r} was built with {index.metadata['model']}, not {model.label}.")
    own = store is None
    store = store if store is not None else open_store()
    try:
        items = get_items(store, index.metadata["name"])
    finally:
        if own:
            store.close()
    names = list(names) if names is not None else [f"query-{i}" for i in range(len(images))]
    excluded = list(exclude_ids) if exclude_ids is not None else [-1] * len(images)
    vectors, probabilities = model.encode(images)
    wanted = set(require_labels)
    allowed = None
    if wanted:
        allowed = {i for i, item in items.items() if wanted <= set(item.labels)}
    results: list[list[QueryHit]] = []
    ids, stored = index.vectors() if model.kind == "pms" else (None, None)
    for q in range(len(vectors)):
        if model.kind == "pms":
            keep = np.ones(len(ids), bool)
            if allowed is not None:
                keep &= np.isin(ids, list(allowed))
            keep &= ids != excluded[q]
            collection = PmsCollection(stored[keep], ids=ids[keep]) if keep.any() else None
            if collection is None:
                results.append([])
                continue
            found = collection.search(vectors[q : q + 1], probabilities[q : q + 1] if weighted else None, k)
            pairs = list(zip(found.ids[0].tolist(), found.distances[0].tolist()))
            score_name = "ds"
        else:
            # a label filter ranks the whole collection, so no allowed item is missed; an excluded
            # item can take at most one of the first k + 1 places
            fetch = len(index) if allowed is not None else min(k + (excluded[q] >= 0), len(index))
            found = index.search(vectors[q : q + 1], max(fetch, 1))
            pairs = [(i, s) for i, s in zip(found.ids[0].tolist(), found.scores[0].tolist())
                     if i >= 0 and i != excluded[q] and (allowed is None or i in allowed)][:k]
            score_name = "cosine"
        hits = []
        for rank, (item_id, score) in enumerate(pairs, start=1):
            item = items.get(int(item_id))
            hits.append(QueryHit(query=names[q], rank=rank, item_id=int(item_id), file=item.file if item else "",
                                 labels=item.labels if item else (), score=float(score), score_name=score_name,
                                 anomaly_score=item.anomaly_score if item else None, site=item.site if item else None))
        results.append(hits)
    return results


def evaluation_tables(*, registry: Any = None) -> list[Any]:
    """Tables of the shipped models' held-out metrics (Tables 6.1–6.3 style), from their manifest entries.

    Returns:
        A list of :class:`~medlim.curation.retrieval.evaluate.RetrievalTable` (empty when none is shipped).
    """
    from medlim.curation.retrieval.evaluate import comparison_tables

    entries = {e.params.get("method"): e for e in list_retrieval_models(registry)}
    single = {m: dict(entries[m].metrics.get("heldout", {})) for m in ("triplet", "classification", "oscars")
              if m in entries}
    pms = dict(entries["pms"].metrics.get("heldout", {})) if "pms" in entries else {}
    classes = tuple(entries["pms"].params.get("classes", ())) if "pms" in entries else ()
    return comparison_tables(single, pms, classes=classes)
