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
  searched exactly by DS) and record the items in the results store; the
  images are read (:func:`read_retrieval_input`) and encoded
  (:func:`encode_inputs`) on a :mod:`medlim.core.engines` engine: this
  process, or Ray tasks and model actors (issue 15);
* :func:`query_collection` — the top K of query images as typed
  :class:`RetrievalResult` lists of neighbours (files, labels, scores and
  anomaly scores), optionally restricted to items carrying a label; the page
  renders them and ``medlim retrieval query`` prints the same numbers (PMS:
  DS weighted as ``ds`` says, :data:`~medlim.curation.retrieval.pms.DS_WEIGHTINGS`);
* :func:`evaluation_tables` — the comparison tables of the shipped models
  (Tables 6.1–6.3 style), from their manifest metrics or recomputed.

Scores: cosine similarity (higher = closer) for embedding models, DS (lower =
closer) for PMS; ``RetrievalResult.score_name`` says which. A PMS collection
keeps each item's class probabilities beside its similarities (the index
attribute ``probability``), which the symmetric DS needs; collections built
before that can still be searched with the thesis and unweighted DS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ParameterError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.engines import Engine

__all__ = [
    "encode_inputs",
    "read_retrieval_input",
    "RetrievalModel",
    "Collection",
    "BuiltCollection",
    "QueryHit",
    "RetrievalResult",
    "score_text",
    "anomaly_text",
    "load_retrieval_model",
    "list_retrieval_models",
    "read_collection",
    "build_collection",
    "open_collection",
    "query_collection",
    "evaluation_tables",
    "item_caption",
    "collection_labels",
    "write_phantom_collection",
    "manifest_anomaly_scores",
    "PROBABILITY_ATTRIBUTE",
]

_ARCHITECTURES = ("retrieval-resnet18", "pms-resnet18")
#: The index attribute holding a PMS collection's class probabilities ``p^t`` (``[N, k]``).
PROBABILITY_ATTRIBUTE = "probability"
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
    """Registry entries that are retrieval models, by name (default: the shipped and the user registry)."""
    from medlim.core.weights import Registries

    registry = registry if registry is not None else Registries.load()
    return [e for e in registry.list() if e.architecture in _ARCHITECTURES]


def load_retrieval_model(name: str, *, version: str | None = None, registry: Any = None) -> RetrievalModel:
    """Load the retrieval model registered as ``name`` (checksum verified, strict load, CPU).

    ``registry`` defaults to the shipped and the user registry together, so models trained on a
    user's folder (``medlim train oscars|pms --data``) load like the shipped ones.
    """
    from medlim.core.weights import Registries, build_model

    registry = registry if registry is not None else Registries.load()
    entry = registry.get(name, version)
    if entry.architecture not in _ARCHITECTURES:
        raise WeightsError(f"weights {entry.label} ({entry.architecture}) are not a retrieval model.")
    net = build_model(entry, device="cpu").eval()
    kind = "pms" if entry.architecture == "pms-resnet18" else "embedding"
    return RetrievalModel(label=entry.label, name=entry.name, version=entry.version, kind=kind,
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
    """Describe the images under ``directory`` through the dataset layer (layouts in the module docstring).

    :func:`medlim.core.datasets.open_dataset` lists the items: a manifest wins
    (its ``anomaly_score`` column is read beside it), else class folders (the
    label is the top folder under ``directory``), else a plain folder of
    images. Every file must lie inside the folder once links are resolved (a
    manifest row such as ``../../etc/hosts`` or a link leading out is refused):
    the results store records the files relative to the folder (issue 14).

    Raises:
        ParameterError: no such folder, no images, a manifest without ``file``,
            a row without a value, or a file outside the folder.
    """
    from medlim.core.datasets import MANIFEST_NAME, open_dataset
    from medlim.errors import InputError

    root = Path(directory)
    if not root.is_dir():
        raise ParameterError(f"data folder {str(root)!r} does not exist.")
    try:
        dataset = open_dataset(root)
    except InputError as exc:
        raise ParameterError(exc.message) from None
    refused = [p for p in dataset.problems if p.kind == "bad_manifest"]
    if refused:
        more = f" ({len(refused) - 1} more: `medlim data check` lists them)" if len(refused) > 1 else ""
        raise ParameterError(refused[0].message + more)
    if not dataset.items:
        raise ParameterError(f"no images found under {str(root)!r}.")
    base = root.resolve()
    manifest = (root / MANIFEST_NAME).exists()
    anomaly = _anomaly_scores(root, dataset.items) if manifest else (None,) * len(dataset.items)
    files = tuple(_inside(base, item.image, f"{MANIFEST_NAME} line {item.row}" if manifest
                          else f"image {number} of the folder") for number, item in enumerate(dataset.items, start=1))
    labels = tuple(item.labels or ((item.label,) if item.label else ()) for item in dataset.items)
    return Collection(root=root, files=files, labels=labels, sites=tuple(item.site for item in dataset.items),
                      anomaly=anomaly)


def manifest_anomaly_scores(dataset: Any) -> tuple[float | None, ...]:
    """The ``anomaly_score`` of each item of a dataset (:func:`medlim.core.datasets.open_dataset`):
    ``None`` where the manifest has no such cell, or the dataset no manifest."""
    from medlim.core.datasets import MANIFEST_NAME

    if not (Path(dataset.root) / MANIFEST_NAME).exists() or not dataset.items or dataset.items[0].row is None:
        return (None,) * len(dataset.items)
    return _anomaly_scores(Path(dataset.root), dataset.items)


def _anomaly_scores(root: Path, items: Sequence[Any]) -> tuple[float | None, ...]:
    """The manifest's ``anomaly_score`` of each item (``None`` where the cell is empty)."""
    from medlim.core.datasets import MANIFEST_NAME
    from medlim.core.manifest import read_manifest_columns

    cells = read_manifest_columns(root / MANIFEST_NAME, ("anomaly_score",))
    scores = []
    for item in items:
        text = cells.value(item.row, "anomaly_score")
        try:
            scores.append(float(text) if text else None)
        except ValueError:
            raise ParameterError(f"{MANIFEST_NAME} line {item.row} has anomaly_score {text!r}; give a number "
                                 "or leave the cell empty.") from None
    return tuple(scores)


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


def read_retrieval_input(name: str, source: Path, *, size: int) -> np.ndarray:
    """One image read and brought to the model input, ``np.ndarray[size, size]`` float32 in [0, 1] (no model)."""
    from medlim.core.io import read_image
    from medlim.curation.ood.data import to_model_input

    return to_model_input(read_image(source).pixels, size)


def encode_inputs(
    model: RetrievalModel, names: Sequence[str], inputs: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """:meth:`RetrievalModel.encode` of read images together: ``(vector, probabilities or None)`` per image."""
    vectors, probabilities = model.encode(np.stack(inputs))
    return [(vectors[i], None if probabilities is None else probabilities[i]) for i in range(len(inputs))]


def _encoded(files: Sequence[str], model: RetrievalModel, engine: Engine | None,
             progress: Progress | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The vectors ``[N, D]`` (and PMS probabilities) of ``files``, 256 encoded together; a bad file stops the build."""
    from medlim import errors
    from medlim.core.engines import FileWork, LocalEngine, given

    work = FileWork(read=partial(read_retrieval_input, size=model.input_size), infer=encode_inputs,
                    load_model=partial(given, model), batch=256)
    report = None if progress is None else lambda index, _name, _seconds: progress(index, len(files))
    encoded = []
    for attempt in (engine or LocalEngine()).attempts(work, ((f, Path(f)) for f in files), model=model,
                                                       progress=report):
        if attempt.failure is not None:
            raise getattr(errors, attempt.failure["error"], errors.MedlimError)(attempt.failure["message"])
        encoded.append(attempt.result)
    if not encoded:
        return np.zeros((0, 1), np.float32), None
    probabilities = None if encoded[0][1] is None else np.stack([p for _, p in encoded])
    return np.stack([v for v, _ in encoded]), probabilities


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
    engine: Engine | None = None,
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
        engine: where the images are read and encoded (None: this process).
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
        return _encode_and_save(collection, model, index_path, label, existing, store, kind, progress, engine)
    finally:
        if own:
            store.close()


def _encode_and_save(collection: Collection, model: RetrievalModel, index_path: str | Path, label: str,
                     existing: Any, store: Any, kind: str, progress: Progress | None,
                     engine: Engine | None = None) -> BuiltCollection:
    from medlim.core.store.retrieval import RetrievalItem, add_items, create_index
    from medlim.curation.retrieval.index import IndexConfig, RetrievalIndex

    matrix, probabilities = _encoded(collection.files, model, engine, progress)
    # PMS keeps each item's class probabilities beside its similarities (the symmetric DS needs them)
    attributes = {PROBABILITY_ATTRIBUTE: probabilities if probabilities is not None
                  else np.zeros((0, matrix.shape[1]), np.float32)} if model.kind == "pms" else None
    if existing is None:
        # PMS keeps raw similarity vectors (DS is an L1 distance on them); embeddings are searched by cosine
        config = IndexConfig(kind="flat", normalise=False) if model.kind == "pms" else IndexConfig(kind=kind)
        index = RetrievalIndex.build(matrix, config=config, attributes=attributes)
        new_ids = index.ids
        index.metadata = {"name": label, "model": model.label, "model_name": model.name,
                          "model_version": model.version, "model_kind": model.kind, "data": str(collection.root.resolve())}
    else:
        index = existing
        kept = attributes if attributes is not None and PROBABILITY_ATTRIBUTE in index.attribute_names else None
        new_ids = index.add(matrix, attributes=kept) if len(collection) else np.zeros(0, np.int64)
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
    """One neighbour of a query.

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

    @property
    def caption(self) -> str:
        """``#1 · hand · cos 0.9810 · A 0.423``: what the page writes under the image and the CLI prints."""
        return f"#{self.rank} · {', '.join(self.labels) or 'unlabelled'} · {score_text(self.score, self.score_name)} " \
               f"· {anomaly_text(self.anomaly_score)}"


def score_text(score: float, score_name: str) -> str:
    """A neighbour's score as shown: ``cos 0.9810`` (cosine, higher = closer) or ``DS 1.5000`` (PMS, lower = closer)."""
    return f"cos {score:.4f}" if score_name == "cosine" else f"DS {score:.4f}"


def anomaly_text(anomaly: float | None) -> str:
    """An item's anomaly score as shown: ``A 0.423``, or ``A –`` when unknown."""
    return "A –" if anomaly is None else f"A {anomaly:.3f}"


@dataclass(frozen=True)
class RetrievalResult:
    """The neighbours of one query image, best first (thesis ch. 6).

    Attributes:
        query: the query's name.
        score_name: ``"cosine"`` (embedding models, higher = closer) or ``"ds"`` (PMS, lower = closer).
        neighbours: the top items, best first (fewer than ``k`` when a label filter leaves fewer).
        k: neighbours asked for.
        required_labels: the label filter (items carry all of them).
        weighted: PMS: a weighted DS (not ``"unweighted"``); ``None`` for embedding models.
        excluded_id: the item left out ("more like this" on an item), ``-1`` for none.
        ds: PMS: the DS weighting (``"thesis"``, ``"symmetric"``, ``"unweighted"``); ``None`` for embedding models.
    """

    query: str
    score_name: str
    neighbours: tuple[QueryHit, ...]
    k: int
    required_labels: tuple[str, ...] = ()
    weighted: bool | None = None
    excluded_id: int = -1
    ds: str | None = None

    def __len__(self) -> int:
        return len(self.neighbours)

    @property
    def score_title(self) -> str:
        """The score's column title: ``cosine`` or ``DS``."""
        return "cosine" if self.score_name == "cosine" else "DS"

    def table(self) -> list[dict[str, Any]]:
        """One row per neighbour: ``rank, item_id, file`` (the name), ``labels``, the score
        under :attr:`score_title`, ``anomaly_score``, ``site`` (the page's table)."""
        return [{"rank": h.rank, "item_id": h.item_id, "file": Path(h.file).name, "labels": list(h.labels),
                 self.score_title: h.score, "anomaly_score": h.anomaly_score, "site": h.site} for h in self.neighbours]

    def to_json(self) -> dict[str, Any]:
        """The query, its settings (``ds`` for PMS results) and every neighbour (``QueryHit.to_dict``)."""
        out = {"query": self.query, "score_name": self.score_name, "k": self.k,
               "required_labels": list(self.required_labels), "weighted": self.weighted,
               "excluded_id": self.excluded_id, "neighbours": [h.to_dict() for h in self.neighbours]}
        return out if self.ds is None else {**out, "ds": self.ds}


def _loaded(index_path: str | Path, index: Any, model: RetrievalModel | None, registry: Any) -> tuple[Any, RetrievalModel]:
    """The index and its model (loaded unless given), checked to belong together."""
    index = index if index is not None else open_collection(index_path)
    if model is None:
        model = load_retrieval_model(index.metadata["model_name"], version=index.metadata["model_version"],
                                     registry=registry)
    if model.label != index.metadata["model"]:
        raise ParameterError(f"index {str(index_path)!r} was built with {index.metadata['model']}, not {model.label}.")
    return index, model


def _collection_items(name: str, store: Any) -> dict[int, Any]:
    from medlim.core.store import open_store
    from medlim.core.store.retrieval import get_items

    own = store is None
    store = store if store is not None else open_store()
    try:
        return get_items(store, name)
    finally:
        if own:
            store.close()


def _pms_pairs(index: Any, similarity: np.ndarray, probability: np.ndarray | None, k: int,
               allowed: set[int] | None, excluded: int, ds: str | None = None) -> list[tuple[int, float]]:
    """``(item_id, DS)`` of the k lowest-DS items among the allowed ones (exact)."""
    from medlim.curation.retrieval.pms import PmsCollection

    ids, stored = index.vectors()
    item_probability = index.attribute(PROBABILITY_ATTRIBUTE)
    keep = ids != excluded
    if allowed is not None:
        keep &= np.isin(ids, list(allowed))
    if not keep.any():
        return []
    collection = PmsCollection(stored[keep], ids=ids[keep],
                               probability=None if item_probability is None else item_probability[keep])
    found = collection.search(similarity, probability, k, ds=ds)
    return list(zip(found.ids[0].tolist(), found.distances[0].tolist()))


def _embedding_pairs(index: Any, vector: np.ndarray, k: int, allowed: set[int] | None,
                     excluded: int) -> list[tuple[int, float]]:
    """``(item_id, cosine)`` of the k most similar allowed items."""
    # a label filter ranks the whole collection, so no allowed item is missed; an excluded
    # item can take at most one of the first k + 1 places
    fetch = len(index) if allowed is not None else min(k + (excluded >= 0), len(index))
    found = index.search(vector, max(fetch, 1))
    return [(i, s) for i, s in zip(found.ids[0].tolist(), found.scores[0].tolist())
            if i >= 0 and i != excluded and (allowed is None or i in allowed)][:k]


def _hits(name: str, pairs: Sequence[tuple[int, float]], items: dict[int, Any], score_name: str) -> tuple[QueryHit, ...]:
    hits = []
    for rank, (item_id, score) in enumerate(pairs, start=1):
        item = items.get(int(item_id))
        hits.append(QueryHit(query=name, rank=rank, item_id=int(item_id), file=item.file if item else "",
                             labels=item.labels if item else (), score=float(score), score_name=score_name,
                             anomaly_score=item.anomaly_score if item else None, site=item.site if item else None))
    return tuple(hits)


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
    ds: str | None = None,
) -> list[RetrievalResult]:
    """The top ``k`` items for each query image.

    Args:
        index_path: an index written by :func:`build_collection`.
        images: query images (float in [0, 1], any size).
        k: results per query.
        names: query names for the output (default ``query-<i>``).
        require_labels: keep only items carrying all of these labels (exact:
            the whole collection is ranked before filtering).
        weighted: PMS only, when ``ds`` is ``None`` — the thesis's weighted DS (eq. 6.5) or the unweighted one.
        exclude_ids: per query, an item id to leave out (``-1`` none), e.g. the
            item itself for "more like this".
        store, registry: defaults from the settings.
        model, index: already loaded ones (the page caches them).
        ds: PMS only — ``"thesis"``, ``"symmetric"`` or ``"unweighted"`` (wins over ``weighted``).

    Returns:
        One :class:`RetrievalResult` per query, neighbours best first.
    """
    from medlim.curation.retrieval.weighting import resolve_ds

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"`k` must be a positive integer, {k!r} is given.")
    weighting = resolve_ds(ds if ds is not None else ("thesis" if weighted else "unweighted"))
    index, model = _loaded(index_path, index, model, registry)
    items = _collection_items(index.metadata["name"], store)
    names = list(names) if names is not None else [f"query-{i}" for i in range(len(images))]
    excluded = [int(i) for i in exclude_ids] if exclude_ids is not None else [-1] * len(images)
    vectors, probabilities = model.encode(images)
    wanted = tuple(dict.fromkeys(require_labels))
    allowed = {i for i, item in items.items() if set(wanted) <= set(item.labels)} if wanted else None
    score_name = "ds" if model.kind == "pms" else "cosine"
    results: list[RetrievalResult] = []
    for q in range(len(vectors)):
        pms = model.kind == "pms" and probabilities is not None
        if pms:
            assert probabilities is not None  # a PMS model returns them
            pairs = _pms_pairs(index, vectors[q : q + 1], probabilities[q : q + 1], int(k), allowed, excluded[q],
                               weighting)
        else:
            pairs = _embedding_pairs(index, vectors[q : q + 1], int(k), allowed, excluded[q])
        results.append(RetrievalResult(query=names[q], score_name=score_name,
                                       neighbours=_hits(names[q], pairs, items, score_name), k=int(k),
                                       required_labels=wanted, weighted=weighting != "unweighted" if pms else None,
                                       excluded_id=excluded[q], ds=weighting if pms else None))
    return results


def item_caption(labels: Sequence[str], anomaly: float | None) -> str:
    """A collection image's caption: ``hand · A 0.423`` (``unlabelled`` without labels)."""
    return f"{', '.join(labels) or 'unlabelled'} · {anomaly_text(anomaly)}"


def collection_labels(items: Mapping[int, Any]) -> list[str]:
    """Every label carried by a collection's items (:class:`~medlim.core.store.retrieval.RetrievalItem`), sorted."""
    return sorted({label for item in items.values() for label in item.labels})


def write_phantom_collection(kind: str, out_dir: Path, *, n: int, seed: int, size: int = 64,
                             label_set: str | None = None, progress: Progress | None = None) -> Path:
    """Write ``n`` phantoms (``"radiograph"``: mixed sites, or ``"chest"``) with a manifest into ``out_dir``.

    Radiograph rows carry ``anomaly_score`` = the ground-truth shift severity
    (0 for internal images), so a sample collection shows an anomaly value
    without training detectors. ``label_set`` (chest only) is the PMS model's
    ``params["label_set"]`` (``None`` or ``"chest8"``: the default 8 findings;
    ``"mimic14"``: the 14 MIMIC-like classes), so the labels match the model's classes.

    Returns:
        ``out_dir``, ready for :func:`build_collection`.
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


def evaluation_tables(*, registry: Any = None) -> list[Any]:
    """Tables of the shipped models' held-out metrics (Tables 6.1–6.3 style), from their manifest entries.

    Returns:
        A list of :class:`~medlim.curation.retrieval.evaluate.RetrievalTable` (empty when none is shipped).
    """
    from medlim.curation.retrieval.evaluate import comparison_tables

    # models a user trained on their own folder have their own evaluation (`--model NAME --data DIR`)
    entries = {e.params.get("method"): e for e in list_retrieval_models(registry) if e.data.get("source") != "user"}
    single = {m: dict(entries[m].metrics.get("heldout", {})) for m in ("triplet", "classification", "oscars")
              if m in entries}
    pms = dict(entries["pms"].metrics.get("heldout", {})) if "pms" in entries else {}
    classes = tuple(entries["pms"].params.get("classes", ())) if "pms" in entries else ()
    return comparison_tables(single, pms, classes=classes)
