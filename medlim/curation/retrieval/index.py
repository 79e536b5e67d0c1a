"""A vector index with a stable verb set (build, add, search, save, load) over FAISS (thesis §6.1 retrieval step).

OSCARS ranks a collection by the cosine similarity of embeddings, descending
(thesis §6.1.2). :class:`RetrievalIndex` keeps L2-normalised vectors and
searches by inner product, which is the cosine; ``normalise=False`` keeps raw
inner products.

Kinds (:class:`IndexConfig`):

* ``"flat"`` (default): exact search (``IndexFlatIP``); its ranking equals a
  brute-force numpy ranking up to ties and float rounding (tested).
* ``"ivf"``: inverted lists over ``nlist`` k-means cells, ``nprobe`` cells
  visited per query; approximate, trained on the vectors given to
  :meth:`RetrievalIndex.build`.
* ``"hnsw"``: a hierarchical small-world graph (``M`` links, ``efSearch``);
  approximate, no training.

The recall reached by the approximate kinds is measured by
``benchmarks/bench_retrieval.py`` and by :func:`recall_at_k`. Flat and IVF
indexes are copied to the GPU for search when FAISS sees a GPU (the GPU build
of FAISS); the CPU index stays the source of truth for adds and saves. (That
GPU path could not be exercised here: this project's machine has no GPU.)

Item ids are int64, given by the caller or assigned consecutively from
``next_id``; they survive adds, saves and loads, so the results store can key
item metadata by them. A saved index is one ``.npz`` file holding the
serialised FAISS index and a JSON header (no pickles).

An index may carry per-item *attributes*: named float arrays with one row per
item in insertion order (PMS keeps each item's class probabilities ``p^t``
there for the symmetric DS). They follow every add and are saved with the index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "INDEX_KINDS",
    "IndexConfig",
    "SearchResult",
    "RetrievalIndex",
    "exact_search",
    "recall_at_k",
    "l2_normalise",
]

INDEX_KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw")
_FORMAT = 1
_ATTRIBUTE_PREFIX = "attribute_"


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index.

    Attributes:
        kind: ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"``.
        normalise: L2-normalise vectors so the inner product is the cosine.
        nlist: IVF cells (reduced to ``n // 39`` when fewer training vectors are given).
        nprobe: IVF cells searched per query.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW build-time candidate list.
        ef_search: HNSW search-time candidate list.
        use_gpu: ``None`` = use a GPU when FAISS sees one; ``False`` = never.
    """

    kind: str = "flat"
    normalise: bool = True
    nlist: int = 1024
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    use_gpu: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ParameterError(f"index kind must be one of {INDEX_KINDS}, {self.kind!r} is given.")
        for name in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")


@dataclass(frozen=True)
class SearchResult:
    """Nearest items of each query, best first.

    Attributes:
        ids: ``np.ndarray[Q, k]`` int64 item ids (``-1`` where fewer than k items exist).
        scores: ``np.ndarray[Q, k]`` float32 similarities (cosine in [-1, 1] when
            normalised), descending along each row (``-inf`` for missing items).
    """

    ids: np.ndarray
    scores: np.ndarray


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero): ``[N, D]`` float32."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def _check_matrix(vectors: Any, *, dim: int | None, what: str) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim) or array.shape[1] < 1:
        want = f"[N, {dim}]" if dim is not None else "[N, D]"
        raise ParameterError(f"{what} must be a {want} matrix, shape {array.shape} is given.")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ParameterError(f"{what} must be finite numbers.")
    return np.ascontiguousarray(array, dtype=np.float32)


def exact_search(database: np.ndarray, queries: np.ndarray, k: int, *, normalise: bool = True) -> SearchResult:
    """Brute-force numpy search: the reference the FAISS kinds are checked against.

    Ties are broken by the smaller row position. Ids are row positions.

    Args:
        database: ``[N, D]`` vectors; queries: ``[Q, D]``.
        k: neighbours per query (capped at N).
        normalise: cosine (``True``) or raw inner product.
    """
    base = _check_matrix(database, dim=None, what="database")
    query = _check_matrix(queries, dim=base.shape[1], what="queries")
    if normalise:
        base, query = l2_normalise(base), l2_normalise(query)
    k = min(int(k), len(base))
    similarity = query.astype(np.float64) @ base.astype(np.float64).T
    positions = np.arange(len(base))
    ids = np.empty((len(query), k), np.int64)
    for row in range(len(query)):
        ids[row] = np.lexsort((positions, -similarity[row]))[:k]
    scores = np.take_along_axis(similarity, ids, axis=1).astype(np.float32)
    return SearchResult(ids=ids, scores=scores)


def recall_at_k(approximate_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (both ``[Q, k]``)."""
    approx, exact = np.asarray(approximate_ids), np.asarray(exact_ids)
    if approx.shape != exact.shape or approx.ndim != 2:
        raise ParameterError(f"id matrices must have one shape [Q, k], {approx.shape} and {exact.shape} are given.")
    hits = [len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(1, int((e >= 0).sum())) for a, e in zip(approx, exact)]
    return float(np.mean(hits)) if hits else 0.0


def _gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


class RetrievalIndex:
    """A FAISS index of item vectors with stable int64 ids.

    Args:
        dim: vector dimension.
        config: how to index (default exact cosine search).

    Use :meth:`build` to create and fill one, :meth:`add` to append,
    :meth:`search` to query, :meth:`save` / :meth:`load` to persist.
    """

    def __init__(self, dim: int, *, config: IndexConfig | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ParameterError(f"`dim` must be a positive integer, {dim!r} is given.")
        self.dim = int(dim)
        self.config = config or IndexConfig()
        self.nlist = 0  # effective IVF cells, fixed when trained
        self.next_id = 0
        self.metadata: dict[str, Any] = {}  # JSON-able notes saved with the index (model, collection name)
        self._ids = np.zeros(0, np.int64)
        self._attributes: dict[str, np.ndarray] = {}
        self._index: Any = None
        self._gpu_index: Any = None

    # ------------------------------------------------------------------ verbs
    @classmethod
    def build(cls, vectors: np.ndarray, *, ids: np.ndarray | None = None,
              config: IndexConfig | None = None,
              attributes: dict[str, np.ndarray] | None = None) -> "RetrievalIndex":
        """A new index holding ``vectors`` (``[N, D]``); IVF trains on them.

        Args:
            vectors: ``np.ndarray[N, D]`` float.
            ids: ``np.ndarray[N]`` int64 unique non-negative ids (default ``0..N-1``).
            config: index kind and parameters.
            attributes: name → ``np.ndarray[N, ...]`` per-item values kept with the index
                (every later :meth:`add` must give the same names).
        """
        matrix = _check_matrix(vectors, dim=None, what="vectors")
        index = cls(matrix.shape[1], config=config)
        index._create(matrix)
        index._attributes = {name: np.zeros((0, *np.shape(values)[1:]), np.float32)
                             for name, values in (attributes or {}).items()}
        index.add(matrix, ids=ids, attributes=attributes)
        return index

    def add(self, vectors: np.ndarray, *, ids: np.ndarray | None = None,
            attributes: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Append vectors; returns their ids (``np.ndarray[N]`` int64).

        Ids default to ``next_id, next_id + 1, …``; given ids must be unique,
        non-negative and not yet in the index. ``attributes`` must name exactly
        the index's attributes (see :meth:`attribute`), one row per vector.
        """
        matrix = _check_matrix(vectors, dim=self.dim, what="vectors")
        extra = self._checked_attributes(attributes, len(matrix))
        if self._index is None:
            self._create(matrix)
        if ids is None:
            new_ids = np.arange(self.next_id, self.next_id + len(matrix), dtype=np.int64)
        else:
            new_ids = np.asarray(ids)
            if new_ids.shape != (len(matrix),) or not np.issubdtype(new_ids.dtype, np.integer):
                raise ParameterError(f"`ids` must be {len(matrix)} integers, {new_ids.shape} {new_ids.dtype} is given.")
            new_ids = new_ids.astype(np.int64)
            if len(new_ids) and (new_ids.min() < 0 or len(np.unique(new_ids)) != len(new_ids)):
                raise ParameterError("`ids` must be unique and non-negative.")
            clash = np.intersect1d(new_ids, self._ids)
            if len(clash):
                raise ParameterError(f"ids already in the index: {clash[:5].tolist()}.")
        if len(matrix):
            data = l2_normalise(matrix) if self.config.normalise else matrix
            self._index.add_with_ids(data, new_ids)
            self._ids = np.concatenate([self._ids, new_ids])
            for name, values in extra.items():
                self._attributes[name] = np.concatenate([self._attributes[name], values])
            self.next_id = max(self.next_id, int(new_ids.max()) + 1)
            self._gpu_index = None
        return new_ids

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """The ``k`` most similar items of each query (``[Q, D]``), best first."""
        matrix = _check_matrix(queries, dim=self.dim, what="queries")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"`k` must be a positive integer, {k!r} is given.")
        if self._index is None or len(self) == 0:
            return SearchResult(ids=np.full((len(matrix), int(k)), -1, np.int64),
                                scores=np.full((len(matrix), int(k)), -np.inf, np.float32))
        data = l2_normalise(matrix) if self.config.normalise else matrix
        scores, ids = self._search_index().search(data, int(k))
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return SearchResult(ids=ids.astype(np.int64), scores=scores)

    def save(self, path: str | Path) -> Path:
        """Write the index to one ``.npz`` file (FAISS bytes + JSON header); returns the path."""
        import faiss

        target = Path(path)
        if target.suffix != ".npz":
            target = target.with_name(target.name + ".npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        header = {"format": _FORMAT, "dim": self.dim, "config": asdict(self.config), "nlist": self.nlist,
                  "next_id": self.next_id, "metadata": self.metadata}
        blob = faiss.serialize_index(self._index) if self._index is not None else np.zeros(0, np.uint8)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as handle:
            arrays: dict[str, Any] = {_ATTRIBUTE_PREFIX + name: values for name, values in self._attributes.items()}
            np.savez(handle, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                     faiss=np.asarray(blob, dtype=np.uint8), ids=self._ids, **arrays)
        partial.replace(target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> "RetrievalIndex":
        """Read an index written by :meth:`save`."""
        import faiss

        source = Path(path)
        if not source.is_file():
            raise ParameterError(f"no index file at {str(source)!r}.")
        try:
            with np.load(source, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                blob, ids = data["faiss"], data["ids"]
                attributes = {key[len(_ATTRIBUTE_PREFIX):]: np.asarray(data[key]) for key in data.files
                              if key.startswith(_ATTRIBUTE_PREFIX)}
        except (OSError, ValueError, KeyError) as exc:
            raise ParameterError(f"{str(source)!r} is not a medlim retrieval index: {exc}") from None
        if header.get("format") != _FORMAT:
            raise ParameterError(f"unsupported index format {header.get('format')!r} in {str(source)!r}.")
        index = cls(int(header["dim"]), config=IndexConfig(**header["config"]))
        index.nlist = int(header["nlist"])
        index.next_id = int(header["next_id"])
        index.metadata = dict(header.get("metadata", {}))
        index._ids = np.asarray(ids, dtype=np.int64)
        index._attributes = attributes
        if any(len(values) != len(index._ids) for values in attributes.values()):
            raise ParameterError(f"{str(source)!r} holds item attributes that do not match its items.")
        if len(blob):
            index._index = faiss.deserialize_index(np.asarray(blob, dtype=np.uint8))
            index._apply_search_parameters()
        return index

    # ------------------------------------------------------------ inspection
    def __len__(self) -> int:
        return int(len(self._ids))

    @property
    def ids(self) -> np.ndarray:
        """Item ids in insertion order (``np.ndarray[N]`` int64, a copy)."""
        return self._ids.copy()

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Names of the per-item attributes, sorted."""
        return tuple(sorted(self._attributes))

    def attribute(self, name: str) -> np.ndarray | None:
        """Per-item values ``np.ndarray[N, ...]`` float32 in insertion order (a copy), or ``None`` when absent."""
        values = self._attributes.get(name)
        return None if values is None else values.copy()

    def _checked_attributes(self, attributes: dict[str, np.ndarray] | None, count: int) -> dict[str, np.ndarray]:
        given = dict(attributes or {})
        if set(given) != set(self._attributes):
            raise ParameterError(f"this index keeps the item attributes {sorted(self._attributes)}; "
                                 f"{sorted(given)} are given.")
        checked = {}
        for name, values in given.items():
            array = np.asarray(values, dtype=np.float32)
            if len(array) != count or array.shape[1:] != self._attributes[name].shape[1:] \
                    or not np.all(np.isfinite(array)):
                raise ParameterError(f"attribute {name!r} must be {count} finite rows shaped like "
                                     f"{self._attributes[name].shape[1:]}, {array.shape} is given.")
            checked[name] = array
        return checked

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids [N] int64, vectors [N, D] float32)`` as stored (normalised when the config says so).

        Only for ``"flat"`` and ``"hnsw"`` indexes (IVF lists are not kept in insertion order).
        """
        if self.config.kind == "ivf":
            raise ParameterError("an IVF index cannot list its vectors; rebuild it as 'flat' or 'hnsw'.")
        if self._index is None or len(self) == 0:
            return self._ids.copy(), np.zeros((0, self.dim), np.float32)
        inner = self._index.index
        return self._ids.copy(), inner.reconstruct_n(0, inner.ntotal).astype(np.float32)

    @property
    def on_gpu(self) -> bool:
        """Whether searches run on a GPU copy of the index."""
        return self._use_gpu()

    # --------------------------------------------------------------- helpers
    def _use_gpu(self) -> bool:
        return self.config.kind != "hnsw" and self.config.use_gpu is not False and _gpu_available()

    def _create(self, training: np.ndarray) -> None:
        import faiss

        kind = self.config.kind
        if kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        elif kind == "hnsw":
            graph = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = self.config.ef_construction
            self._index = faiss.IndexIDMap2(graph)
        else:
            if len(training) < 1:
                raise ParameterError("an IVF index needs training vectors; build it with some vectors.")
            # FAISS wants ~39 training points per cell
            self.nlist = int(max(1, min(self.config.nlist, len(training) // 39)))
            quantiser = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFFlat(quantiser, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            sample = training
            if len(sample) > 64 * self.nlist:  # k-means on a fixed subsample (64 per cell) bounds build time
                sample = training[np.random.default_rng(0).choice(len(training), 64 * self.nlist, replace=False)]
            ivf.train(l2_normalise(sample) if self.config.normalise else sample)
            self._quantiser = quantiser  # the IVF index does not own its quantiser: keep it alive
            self._index = ivf
        self._apply_search_parameters()

    def _apply_search_parameters(self) -> None:
        import faiss

        if self.config.kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = self.config.nprobe
        elif self.config.kind == "hnsw":
            faiss.downcast_index(self._index.index).hnsw.efSearch = self.config.ef_search

    def _search_index(self) -> Any:
        if not self._use_gpu():
            return self._index
        if self._gpu_index is None:  # pragma: no cover - needs a GPU build of FAISS
            import faiss

            self._resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._resources, 0, self._index)
            if self.config.kind == "ivf":
                faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", self.config.nprobe)
        return self._gpu_index
