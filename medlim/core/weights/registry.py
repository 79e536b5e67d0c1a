"""The registry: ``manifest.json`` plus safetensors files, checksum first.

Weights are loaded only after their sha256 matches the manifest, and only from
safetensors (no pickle, so no code runs while loading; see :mod:`.files`). See
``STYLE.md`` ("Weights are typed, versioned, checksummed records").
"""

from __future__ import annotations

import json
import os
import re
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
    "Registry",
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

    The state is the manifest on disk; :meth:`add` changes the in-memory list
    and :meth:`save_manifest` writes it (atomically: write beside, then rename).
    """

    def __init__(self, directory: Path | str, entries: Iterable[WeightsEntry] = ()) -> None:
        self.directory = Path(directory)
        self._entries: dict[tuple[str, str], WeightsEntry] = {}
        for entry in entries:
            self._entries[entry.key] = entry.with_root(self.directory)

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
        return cls(directory, entries)

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

    def save_manifest(self) -> Path:
        """Write ``manifest.json`` (sorted, indented, atomic replace). Returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": MANIFEST_FORMAT,
            "note": "medlim weights registry; edit with `medlim weights import` or medlim.core.weights.",
            "models": [e.to_dict() for e in self.list()],
        }
        text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
        partial = self.manifest_path.with_suffix(".json.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.manifest_path)
        return self.manifest_path

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
