"""The registry: ``manifest.json`` plus safetensors files, checksum first.

Weights are loaded only after their sha256 matches the manifest, and only from
safetensors (no pickle, so no code runs while loading; see :mod:`.files`). See
``STYLE.md`` ("Weights are typed, versioned, checksummed records").
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from medlim.core.weights.entry import WeightsEntry, validate_name
from medlim.core.weights.files import load_state_dict, sha256_bytes, sha256_file
from medlim.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "LOCK_NAME",
    "Registry",
    "manifest_lock",
    "Verification",
    "load_state_dict",
    "save_weights",
    "sha256_bytes",
    "sha256_file",
]

#: File name of the manifest inside a weights folder.
MANIFEST_NAME = "manifest.json"

#: Version of the manifest layout (bumped on incompatible changes).
MANIFEST_FORMAT = 1

#: Lock file beside the manifest: held while a process reads, merges and writes it.
LOCK_NAME = "manifest.json.lock"

# Per-process state of the folder locks: a re-entrant lock per folder (threads of one process take turns), and
# the locked file with its nesting depth while this process holds the folder.
_THREAD_LOCKS: dict[str, threading.RLock] = {}
_FILES: dict[str, Any] = {}
_DEPTH: dict[str, int] = {}
_GUARD = threading.Lock()


@contextmanager
def manifest_lock(directory: Path | str) -> Iterator[None]:
    """Hold the folder's manifest lock (an exclusive ``flock`` on :data:`LOCK_NAME`) for the block.

    Two processes that register models in one folder at the same moment (two training jobs ending together)
    each read the manifest, add their entry and write it back; without the lock the later writer dropped the
    other's entry. The lock nests within a thread, makes the threads of one process take turns, and is
    only the thread lock where ``fcntl`` is missing (Windows).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    with _GUARD:
        lock = _THREAD_LOCKS.setdefault(key, threading.RLock())
    with lock:
        depth = _DEPTH.get(key, 0)
        if depth == 0:
            _FILES[key] = _lock_file(folder / LOCK_NAME)
        _DEPTH[key] = depth + 1
        try:
            yield
        finally:
            _DEPTH[key] -= 1
            if _DEPTH[key] == 0:
                _unlock_file(_FILES.pop(key))


def _lock_file(path: Path) -> Any:
    handle = path.open("a")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return handle
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


def _unlock_file(handle: Any) -> None:
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover - not POSIX
        pass
    finally:
        handle.close()


def _version_key(version: str) -> tuple[tuple[int, Any], ...]:
    # Natural order: "10" after "9", "1.10" after "1.9"; text parts sort after numbers.
    parts = re.split(r"[._-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@dataclass(frozen=True)
class Verification:
    """Result of checking one entry's file against its manifest checksum.

    Attributes:
        entry: the entry checked.
        status: ``"ok"``, ``"missing"`` (no file) or ``"mismatch"`` (wrong sha256).
        actual_sha256: digest of the file found, or ``None`` when missing.
    """

    entry: WeightsEntry
    status: str
    actual_sha256: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Registry:
    """A weights folder: ``manifest.json`` and the files it lists.

    The state is the manifest on disk; :meth:`add` and :meth:`remove` change the
    in-memory list and :meth:`save_manifest` writes them (atomically: write
    beside, then rename), merged under the folder's lock into what the manifest
    holds by then — so entries another process wrote since this one read it stay.
    """

    def __init__(self, directory: Path | str, entries: Iterable[WeightsEntry] = ()) -> None:
        self.directory = Path(directory)
        self._entries: dict[tuple[str, str], WeightsEntry] = {}
        for entry in entries:
            self._entries[entry.key] = entry.with_root(self.directory)
        # what this object changed since it was read (written by save_manifest over the manifest on disk)
        self._changed: set[tuple[str, str]] = set(self._entries)
        self._removed: set[tuple[str, str]] = set()

    # -- reading ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @classmethod
    def load(cls, directory: Path | str | None = None) -> "Registry":
        """Read ``<directory>/manifest.json`` (default: ``Settings.weights_dir``).

        A folder without a manifest is an empty registry. Raises ``WeightsError``
        when the manifest is not valid JSON, an entry is malformed, or an entry's
        file lies outside the folder (absolute, ``..``, or a link leading out).
        """
        if directory is None:
            from medlim.settings import get_settings

            directory = get_settings().weights_dir
        directory = Path(directory)
        manifest = directory / MANIFEST_NAME
        if not manifest.exists():
            return cls(directory)
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"the weights manifest {manifest} cannot be read: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise WeightsError(f"the weights manifest {manifest} must be an object with a 'models' list.")
        if int(data.get("format", MANIFEST_FORMAT)) > MANIFEST_FORMAT:
            raise WeightsError(
                f"the weights manifest {manifest} has format {data['format']}; this medlim reads "
                f"format {MANIFEST_FORMAT} or older. Update medlim."
            )
        entries = [WeightsEntry.from_dict(item, root=directory) for item in data["models"]]
        for entry in entries:
            entry.path  # noqa: B018 - raises WeightsError for a file outside the folder
        keys = [e.key for e in entries]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise WeightsError(f"the weights manifest {manifest} lists {duplicates} more than once.")
        defaults: dict[str, list[str]] = {}
        for entry in entries:
            if entry.default:
                defaults.setdefault(entry.task, []).append(entry.label)
        several = {task: labels for task, labels in defaults.items() if len(labels) > 1}
        if several:
            raise WeightsError(
                f"the weights manifest {manifest} marks more than one default model for a task ({several}); "
                "mark one entry per task with \"default\": true."
            )
        registry = cls(directory, entries)
        registry._changed.clear()
        return registry

    def list(self) -> tuple[WeightsEntry, ...]:
        """All entries, sorted by name then version (natural order)."""
        return tuple(sorted(self._entries.values(), key=lambda e: (e.name, _version_key(e.version))))

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({e.name for e in self._entries.values()}))

    def get(self, name: str, version: str | None = None) -> WeightsEntry:
        """The entry ``name`` at ``version`` (default: its highest version).

        Raises:
            WeightsError: no such model or version (the message lists what exists).
        """
        versions = [e for e in self._entries.values() if e.name == name]
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise WeightsError(f"no weights named {name!r} in {self.directory} (registered: {known}).")
        if version is None:
            return max(versions, key=lambda e: _version_key(e.version))
        for entry in versions:
            if entry.version == version:
                return entry
        known = ", ".join(sorted((e.version for e in versions), key=_version_key))
        raise WeightsError(f"weights {name!r} have no version {version!r} (versions: {known}).")

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # -- writing ---------------------------------------------------------------------------
    def add(self, entry: WeightsEntry) -> WeightsEntry:
        """Add ``entry``, replacing one with the same name and version.

        The file must be a plain name or relative path inside the registry folder.
        Returns the entry bound to this registry's folder. Call
        :meth:`save_manifest` to persist.
        """
        bound = self.bind(entry)
        self._entries[entry.key] = bound
        self._changed.add(entry.key)
        self._removed.discard(entry.key)
        return bound

    def bind(self, entry: WeightsEntry) -> WeightsEntry:
        """``entry`` with its file looked up in this folder (the file must lie inside it)."""
        bound = entry.with_root(self.directory)
        bound.path  # noqa: B018 - raises WeightsError for a file outside the folder
        return bound

    def remove(self, name: str, version: str) -> None:
        """Forget an entry (its file is left in place)."""
        if (name, version) not in self._entries:
            raise WeightsError(f"no weights {name}@{version} to remove.")
        del self._entries[(name, version)]
        self._changed.discard((name, version))
        self._removed.add((name, version))

    def save_manifest(self) -> Path:
        """Write ``manifest.json`` (sorted, indented, atomic replace) under the folder's lock, merged into the
        manifest as it is on disk by then: this object's additions and removals win, every other entry stays.
        Afterwards this object holds the merged list. Returns the manifest's path."""
        with manifest_lock(self.directory):
            self._entries = self._merged_with_disk()
            self._changed.clear()
            self._removed.clear()
            payload = {
                "format": MANIFEST_FORMAT,
                "note": "medlim weights registry; edit with `medlim weights import` or medlim.core.weights.",
                "models": [e.to_dict() for e in self.list()],
            }
            text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
            partial = self.manifest_path.with_suffix(f".json.{os.getpid()}.partial")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, self.manifest_path)
        return self.manifest_path

    def _merged_with_disk(self) -> dict[tuple[str, str], WeightsEntry]:
        """The manifest on disk with this object's changes applied (only this object's list when the manifest is
        missing or unreadable, as before)."""
        try:
            merged = dict(Registry.load(self.directory)._entries)
        except WeightsError:
            return dict(self._entries)
        for key in self._removed:
            merged.pop(key, None)
        for key in self._changed:
            merged[key] = self._entries[key]
        return merged

    # -- checking --------------------------------------------------------------------------
    def verify(self, entry: WeightsEntry) -> Verification:
        """Compare the file's sha256 with the manifest."""
        path = entry.with_root(entry.root or self.directory).path
        if not path.is_file():
            return Verification(entry=entry, status="missing", actual_sha256=None)
        actual = sha256_file(path)
        return Verification(entry=entry, status="ok" if actual == entry.sha256 else "mismatch", actual_sha256=actual)

    def verify_all(self, names: Iterable[str] | None = None) -> tuple[Verification, ...]:
        """Verify every entry, or every version of the given names (unknown name: ``WeightsError``)."""
        selected: list[WeightsEntry]
        if names is None:
            selected = list(self.list())
        else:
            selected = []
            for name in names:
                self.get(name)  # raises with the list of known names
                selected.extend(e for e in self.list() if e.name == name)
        return tuple(self.verify(e) for e in selected)


def _safe_file_name(name: str, version: str) -> str:
    return f"{name}-{version}.safetensors"


def save_weights(
    registry: Registry,
    entry_fields: Mapping[str, Any],
    state_dict: Mapping[str, "torch.Tensor"],
    *,
    check_architecture: bool = True,
) -> WeightsEntry:
    """Write ``state_dict`` as safetensors into the registry and record it in the manifest.

    Args:
        registry: where to write (file into ``registry.directory``, entry into its manifest).
        entry_fields: the :class:`WeightsEntry` fields except ``file`` and ``sha256``
            (``file`` may be given; default ``"<name>-<version>.safetensors"``).
            ``input_contract`` and ``provenance`` may be dataclasses or dicts.
        state_dict: ``{name: torch.Tensor}``; tensors are detached, moved to the
            CPU and made contiguous.
        check_architecture: build the entry's architecture and load the tensors
            with ``strict=True`` before writing anything (recommended).

    Returns:
        The new entry, bound to the registry (an entry with the same name and
        version is replaced; the manifest is saved).
    """
    import torch
    from safetensors.torch import save as save_safetensors

    from medlim.core.weights.entry import InputContract, TrainingProvenance

    fields_ = dict(entry_fields)
    for reserved in ("sha256", "root"):
        if reserved in fields_:
            raise WeightsError(f"save_weights computes {reserved!r}; do not pass it.")
    name = validate_name(str(fields_.get("name", "")), what="model name")
    version = validate_name(str(fields_.get("version", "")), what="model version")
    fields_["file"] = str(fields_.get("file") or _safe_file_name(name, version))
    if isinstance(fields_.get("input_contract"), Mapping):
        fields_["input_contract"] = InputContract.from_dict(fields_["input_contract"])
    if isinstance(fields_.get("provenance"), Mapping):
        fields_["provenance"] = TrainingProvenance.from_dict(fields_["provenance"])

    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"state dict value {key!r} is a {type(value).__name__}, not a tensor.")
        # clone: safetensors refuses tensors that share storage (tied weights, views).
        tensors[str(key)] = value.detach().to("cpu").contiguous().clone()
    # One metadata key only: safetensors writes its metadata map in hash order, so
    # several keys would make the bytes (and the sha256) differ from run to run.
    data = save_safetensors(tensors, metadata={"format": "pt"})

    try:
        entry = WeightsEntry(sha256=sha256_bytes(data), **fields_)
    except TypeError as exc:
        raise WeightsError(f"bad weights entry fields: {exc}") from None
    entry = registry.bind(entry)  # validates the file name before anything is written
    if check_architecture:
        from medlim.core.weights.architectures import build_architecture, load_strict

        load_strict(build_architecture(entry), tensors, label=entry.label)

    entry.path.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.path.with_name(entry.path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, entry.path)
    entry = registry.add(entry)
    registry.save_manifest()
    return entry
