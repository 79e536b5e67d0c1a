"""An on-disk cache of computed arrays under a size budget, least recently used evicted (issue 15).

A finished analysis is a stored result: what a page needs to redraw it without
running the model again (e.g. a BAC probability map behind the live cut-off
sliders) is kept here, keyed by what determines it (content hash, weights,
settings). Entries are ``.npz`` files of plain arrays (read with
``allow_pickle=False``: nothing in the cache can run code) under
``MEDLIM_HOME/cache/<namespace>/``; their total size stays under
``MEDLIM_CACHE_MB``; a read refreshes an entry's time, and the oldest entries
go first when a write would pass the budget.

Several processes may share the folder (the app and its worker): a write goes
to a temporary file renamed into place, so a reader never sees half an entry,
and a missing or unreadable entry is a miss, never an error.

:meth:`DiskCache.put_record` / :meth:`DiskCache.get_record` keep a typed result
(frozen dataclasses of arrays, numbers, text, tuples) the same way: arrays as
``.npz`` members, the rest as JSON naming each dataclass, which is rebuilt only
when it is a dataclass of the ``medlim`` package (no code is loaded by name
from anywhere else).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.settings import Settings, get_settings

__all__ = ["DiskCache", "cache_key", "default_cache"]

_SUFFIX = ".npz"
_META = "__record__"


def cache_key(*parts: object) -> str:
    """A file-safe key (SHA-256 hex) of the parts that determine an entry, e.g. ``(sha256, weights, threshold)``."""
    text = "\x1f".join(repr(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DiskCache:
    """Arrays kept on disk by key, the folder's total size under ``max_bytes`` (LRU eviction).

    Args:
        folder: where the entries live (created on the first write).
        max_bytes: the budget (> 0); an entry larger than it is not kept.
    """

    def __init__(self, folder: str | os.PathLike, *, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ParameterError(f"`max_bytes` must be a positive number of bytes, {max_bytes!r} is given.")
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ParameterError(f"a cache key is lower-case hex (see cache_key), {key!r} is given.")
        return self.folder / f"{key}{_SUFFIX}"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key`` (its time refreshed), or ``None`` when absent or unreadable."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            os.utime(path)  # used now: the last to be evicted
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> bool:
        """Store ``arrays`` under ``key``, then evict the least recently used entries over the budget.

        Returns:
            Whether the entry was kept (``False`` when it alone is larger than the budget).
        """
        path = self._path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                payload: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items()}
                np.savez_compressed(out, **payload)  # probability maps are mostly zeros
            if Path(temporary).stat().st_size > self.max_bytes:
                return False
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        self.evict(keep=path)
        return True

    def put_record(self, key: str, record: Any) -> bool:
        """Store a typed result (see the module doc); whether it was kept.

        Raises:
            ParameterError: the record holds a value the cache cannot keep (e.g. a model, a callable).
        """
        arrays: dict[str, np.ndarray] = {}
        meta = json.dumps(_flatten(record, arrays), allow_nan=True)
        return self.put(key, {**arrays, _META: np.frombuffer(meta.encode("utf-8"), np.uint8)})

    def get_record(self, key: str) -> Any | None:
        """The typed result stored under ``key``, or ``None`` (absent, unreadable, or no longer rebuildable)."""
        arrays = self.get(key)
        if arrays is None or _META not in arrays:
            return None
        try:
            return _rebuild(json.loads(arrays[_META].tobytes().decode("utf-8")), arrays)
        except (ValueError, TypeError, KeyError, AttributeError, ImportError):  # a class changed since: a miss
            return None

    def entries(self) -> list[tuple[Path, int, float]]:
        """``(path, bytes, last used)`` of every entry, least recently used first."""
        found = []
        for path in self.folder.glob(f"*{_SUFFIX}") if self.folder.is_dir() else ():
            try:
                status = path.stat()
            except OSError:  # removed by another process meanwhile
                continue
            found.append((path, status.st_size, status.st_mtime))
        return sorted(found, key=lambda entry: entry[2])

    def size(self) -> int:
        """Bytes the entries take."""
        return sum(size for _path, size, _used in self.entries())

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used entries until the total is within the budget; the paths removed."""
        entries = self.entries()
        total = sum(size for _path, size, _used in entries)
        removed = []
        for path, size, _used in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed


def _flatten(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved to ``arrays`` (named ``a0``, ``a1``, ...)."""
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = type(value)
        fields = {f.name: _flatten(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}
        return {"dataclass": f"{kind.__module__}:{kind.__qualname__}", "fields": fields}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list": [_flatten(item, arrays) for item in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _flatten(v, arrays) for k, v in value.items()}}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return {"value": value}
    if isinstance(value, float):
        return {"value": value if math.isfinite(value) else repr(value), "float": True}
    raise ParameterError(f"a {type(value).__name__} cannot be kept in the disk cache.")


def _dataclass(path: str) -> type:
    module, _, name = path.partition(":")
    if not (module == "medlim" or module.startswith("medlim.")) or not name.isidentifier():
        raise ValueError(f"not a medlim dataclass: {path!r}")
    kind = getattr(importlib.import_module(module), name)
    if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
        raise ValueError(f"not a dataclass: {path!r}")
    return kind


def _rebuild(node: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if "array" in node:
        return arrays[node["array"]]
    if "dataclass" in node:
        return _dataclass(node["dataclass"])(**{k: _rebuild(v, arrays) for k, v in node["fields"].items()})
    if "tuple" in node:
        return tuple(_rebuild(item, arrays) for item in node["tuple"])
    if "list" in node:
        return [_rebuild(item, arrays) for item in node["list"]]
    if "dict" in node:
        return {k: _rebuild(v, arrays) for k, v in node["dict"].items()}
    value = node["value"]
    return float(value) if node.get("float") else value


def default_cache(namespace: str, *, settings: Settings | None = None) -> DiskCache:
    """``MEDLIM_HOME/cache/<namespace>`` with the ``MEDLIM_CACHE_MB`` budget (shared by all namespaces' entries
    of that folder only: each namespace keeps within the whole budget)."""
    settings = settings or get_settings()
    if not namespace.isidentifier():
        raise ParameterError(f"a cache namespace is a plain word, {namespace!r} is given.")
    return DiskCache(Path(settings.home) / "cache" / namespace, max_bytes=int(settings.cache_mb) << 20)

