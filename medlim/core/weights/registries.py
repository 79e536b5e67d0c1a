"""The shipped and the user registry seen as one: lookup, next free version, task defaults.

Issue 12 ("Models trained by a user go to a user registry"): weights shipped
with medlim live in ``Settings.weights_dir`` (``MEDLIM_WEIGHTS_DIR``, default
``weights/``) and are never written by a user run; models a user trains or
imports go to ``Settings.models_dir`` (``MEDLIM_MODELS_DIR``, default
``MEDLIM_HOME/models``). Every command and page finds models in both through
:class:`Registries`. A user model never replaces a shipped one: a name and
version taken in either registry is refused, and when no version is given the
next free one over both is used.

Issue 17 ("Each task's default"): the shipped manifest marks one entry per task
with ``"default": true``; a user may choose another model as a task's default,
kept in ``<models_dir>/defaults.json`` (``{"format": 1, "defaults": {task:
{"name", "version"}}}``), which wins while that model exists.

Models are named ``NAME``, ``NAME:VERSION`` or ``NAME@VERSION`` everywhere
(:func:`parse_model_spec`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.core.weights.entry import WeightsEntry, validate_name
from medlim.core.weights.registry import Registry, Verification, _version_key, manifest_lock, save_weights
from medlim.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.settings import Settings

__all__ = [
    "DEFAULTS_NAME",
    "SHIPPED",
    "USER",
    "ListedModel",
    "ModelSpec",
    "Registries",
    "default_model",
    "find_weights",
    "list_models",
    "parse_model_spec",
    "set_default",
]

#: Source of an entry: the registry shipped with medlim.
SHIPPED = "shipped"
#: Source of an entry: the user registry.
USER = "user"
#: File in the user registry holding the user's choice of default per task.
DEFAULTS_NAME = "defaults.json"
_DEFAULTS_FORMAT = 1


@dataclass(frozen=True)
class ModelSpec:
    """A model as a person names it.

    Attributes:
        name: registry name.
        version: the version asked for, or ``None`` for the highest one.
    """

    name: str
    version: str | None = None

    @property
    def label(self) -> str:
        """``name@version`` (or ``name``)."""
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_model_spec(text: str) -> ModelSpec:
    """``NAME``, ``NAME:VERSION`` or ``NAME@VERSION`` as a :class:`ModelSpec`.

    Names and versions hold only letters, digits, ``.``, ``_`` and ``-``, so the
    first ``@`` or ``:`` separates them.

    Raises:
        WeightsError: an empty or malformed name or version.
    """
    if not isinstance(text, str) or not text.strip():
        raise WeightsError(f"name a model as NAME, NAME@VERSION or NAME:VERSION; {text!r} is given.")
    text = text.strip()
    cut = min((i for i in (text.find("@"), text.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return ModelSpec(validate_name(text, what="model name"))
    name, version = text[:cut], text[cut + 1 :]
    return ModelSpec(validate_name(name, what="model name"), validate_name(version, what="model version"))


@dataclass(frozen=True)
class ListedModel:
    """One model as listed to people.

    Attributes:
        entry: the manifest entry.
        source: :data:`SHIPPED` or :data:`USER`.
        task_default: the entry is its task's default now (the user's choice, else the shipped mark).
    """

    entry: WeightsEntry
    source: str
    task_default: bool

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry plus ``source`` and ``task_default``."""
        return {**self.entry.to_dict(), "source": self.source, "task_default": self.task_default}


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:  # pragma: no cover - an unreadable path
        return Path(a) == Path(b)


class Registries:
    """The shipped registry (read only) and the user registry (written by user runs), looked up together.

    Args:
        shipped: the registry shipped with medlim.
        user: the user registry.
    """

    def __init__(self, shipped: Registry, user: Registry) -> None:
        self.shipped = shipped
        self.user = shipped if _same_folder(shipped.directory, user.directory) else user

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        *,
        weights_dir: Path | str | None = None,
        models_dir: Path | str | None = None,
    ) -> Registries:
        """Read both manifests (a missing folder or manifest is an empty registry).

        Args:
            settings: where the registries are (default: :func:`medlim.settings.get_settings`).
            weights_dir: the shipped registry folder instead of ``settings.weights_dir``.
            models_dir: the user registry folder instead of ``settings.models_dir``.
        """
        if weights_dir is not None and models_dir is not None:
            return cls(Registry.load(Path(weights_dir)), Registry.load(Path(models_dir)))
        if settings is None:
            from medlim.settings import get_settings

            settings = get_settings()
        shipped_dir = Path(weights_dir) if weights_dir is not None else Path(settings.weights_dir)
        if models_dir is not None:
            user_dir = Path(models_dir)
        else:
            user_dir = Path(settings.models_dir) if settings.models_dir else Path(settings.home) / "models"
        return cls(Registry.load(shipped_dir), Registry.load(user_dir))

    @property
    def directory(self) -> Path:
        """The user registry folder (where :meth:`register` writes)."""
        return self.user.directory

    # -- reading ---------------------------------------------------------------------------
    def _sources(self) -> list[tuple[WeightsEntry, str]]:
        pairs = [(entry, SHIPPED) for entry in self.shipped.list()]
        if self.user is not self.shipped:
            pairs.extend((entry, USER) for entry in self.user.list())
        return pairs

    def list(self, task: str | None = None) -> tuple[WeightsEntry, ...]:
        """Entries of both registries (of one task when given), sorted by name then version."""
        entries = [entry for entry, _ in self._sources() if task is None or entry.task == task]
        return tuple(sorted(entries, key=lambda e: (e.name, _version_key(e.version))))

    def models(self, task: str | None = None) -> tuple[ListedModel, ...]:
        """Entries with their source and whether each is its task's default now."""
        defaults = {task_: self.default(task_) for task_ in self.tasks()}
        listed = []
        for entry, source in self._sources():
            if task is None or entry.task == task:
                default = defaults.get(entry.task)
                listed.append(ListedModel(entry, source, default is not None and default.key == entry.key))
        return tuple(sorted(listed, key=lambda m: (m.entry.name, _version_key(m.entry.version))))

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({entry.name for entry, _ in self._sources()}))

    def tasks(self) -> tuple[str, ...]:
        return tuple(sorted({entry.task for entry, _ in self._sources()}))

    def source_of(self, entry: WeightsEntry) -> str:
        """:data:`SHIPPED` or :data:`USER` (by where the entry's name and version are registered)."""
        return SHIPPED if entry.key in self.shipped else USER

    def __contains__(self, key: object) -> bool:
        return key in self.shipped or key in self.user

    def __len__(self) -> int:
        return len(self._sources())

    def get(self, name: str, version: str | None = None) -> WeightsEntry:
        """The entry ``name`` at ``version`` (default: its highest version over both registries).

        Has the signature of :meth:`Registry.get`, so a :class:`Registries` can be
        passed wherever a loader takes ``registry=``.

        Raises:
            WeightsError: no such model or version (the message lists what exists).
        """
        versions = [entry for entry, _ in self._sources() if entry.name == name]
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise WeightsError(
                f"no weights named {name!r} in the shipped registry ({self.shipped.directory}) or the user "
                f"registry ({self.user.directory}); registered: {known}."
            )
        if version is None:
            return max(versions, key=lambda e: _version_key(e.version))
        for entry in versions:
            if entry.version == version:
                return entry
        known = ", ".join(sorted((e.version for e in versions), key=_version_key))
        raise WeightsError(f"weights {name!r} have no version {version!r} (versions: {known}).")

    def find(self, spec: str | ModelSpec) -> WeightsEntry:
        """The entry named by ``NAME``, ``NAME:VERSION`` or ``NAME@VERSION``."""
        spec = parse_model_spec(spec) if isinstance(spec, str) else spec
        return self.get(spec.name, spec.version)

    def verify_all(self, names: Iterable[str] | None = None) -> tuple[Verification, ...]:
        """Check every file (or every version of ``names``) of both registries against its sha256."""
        if names is not None:
            names = tuple(names)
            for name in names:
                self.get(name)  # raises with the list of known names
        selected = [e for e in self.list() if names is None or e.name in names]
        return tuple((self.shipped if self.source_of(e) == SHIPPED else self.user).verify(e) for e in selected)

    # -- versions and writing --------------------------------------------------------------
    def next_version(self, name: str) -> str:
        """The next free version of ``name`` over both registries: 1 + the highest whole-number version (else 1)."""
        validate_name(name, what="model name")
        numbers = [int(e.version) for e in self.list() if e.name == name and e.version.isdigit()]
        candidate = max(numbers, default=0) + 1
        while (name, str(candidate)) in self:
            candidate += 1  # pragma: no cover - only non-canonical versions such as "07" get here
        return str(candidate)

    def claim(self, name: str, version: str | None = None) -> str:
        """The version a new model ``name`` will get: ``version`` when free, else the next free one.

        Raises:
            WeightsError: ``name@version`` exists in either registry.
        """
        validate_name(name, what="model name")
        if version is None:
            return self.next_version(name)
        validate_name(version, what="model version")
        if (name, version) in self:
            where = "shipped" if (name, version) in self.shipped else "user"
            raise WeightsError(
                f"{name}@{version} already exists in the {where} registry and is never replaced; leave out the "
                f"version to get the next free one ({self.next_version(name)}) or choose another name."
            )
        return version

    def check_writable(self, *, allow_shipped_folder: bool = False) -> None:
        """Raise unless user runs may write to the user registry (it must not be the shipped folder).

        Raises:
            WeightsError: the user registry is the shipped folder and ``allow_shipped_folder`` is off.
        """
        if self.user is self.shipped and not allow_shipped_folder:
            raise WeightsError(
                f"the user registry {self.user.directory} is the shipped registry; user runs never write there. "
                "Set MEDLIM_MODELS_DIR to another folder."
            )

    def reload(self) -> Registries:
        """Both registries read again from disk (another process may have registered meanwhile)."""
        return Registries(Registry.load(self.shipped.directory), Registry.load(self.user.directory))

    def register(
        self,
        entry_fields: Mapping[str, Any],
        state_dict: Mapping[str, torch.Tensor],
        *,
        check_architecture: bool = True,
        allow_shipped_folder: bool = False,
    ) -> WeightsEntry:
        """Write a new model into the user registry (never replacing any entry of either registry).

        Both manifests are read again first. ``entry_fields`` are as for
        :func:`medlim.core.weights.save_weights`; a missing or ``None``
        ``version`` becomes the next free one.

        Args:
            entry_fields: the entry's fields (``default`` may not be set: a user's
                default is chosen with :meth:`set_default`).
            state_dict: the tensors.
            check_architecture: build the architecture and load strictly first.
            allow_shipped_folder: write even when the user registry is the shipped
                folder (a maintainer adding shipped weights on purpose).

        Raises:
            WeightsError: the name and version are taken, ``default`` is set, or
                the user registry is the shipped folder.
        """
        fields_ = dict(entry_fields)
        if fields_.get("default"):
            raise WeightsError("a newly registered model cannot mark itself as default; use set_default.")
        self.reload().check_writable(allow_shipped_folder=allow_shipped_folder)
        # read, claim the version and write under the folder's lock: two jobs ending together get two versions
        with manifest_lock(self.user.directory):
            fresh = self.reload()
            fields_["version"] = fresh.claim(str(fields_.get("name", "")), fields_.get("version"))
            entry = save_weights(fresh.user, fields_, state_dict, check_architecture=check_architecture)
        self.shipped, self.user = fresh.shipped, fresh.user
        return entry

    # -- task defaults ---------------------------------------------------------------------
    @property
    def defaults_path(self) -> Path:
        return self.user.directory / DEFAULTS_NAME

    def user_defaults(self) -> dict[str, ModelSpec]:
        """The user's default per task, as recorded (the models may since have been removed)."""
        path = self.defaults_path
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            chosen = data["defaults"]
            return {str(task): ModelSpec(str(item["name"]), str(item["version"])) for task, item in chosen.items()}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise WeightsError(
                f"the defaults file {path} cannot be read ({type(exc).__name__}: {exc}); delete it to return to "
                "the shipped defaults."
            ) from None

    def shipped_default(self, task: str) -> WeightsEntry | None:
        """The shipped entry of ``task`` marked ``"default": true``, or ``None``."""
        return next((e for e in self.shipped.list() if e.task == task and e.default), None)

    def default(self, task: str) -> WeightsEntry | None:
        """The default model of ``task``: the user's choice while it exists, else the shipped default."""
        chosen = self.user_defaults().get(task)
        if chosen is not None and (chosen.name, chosen.version) in self:
            entry = self.get(chosen.name, chosen.version)
            if entry.task == task:
                return entry
        return self.shipped_default(task)

    def set_default(self, spec: str | ModelSpec, *, task: str | None = None) -> WeightsEntry:
        """Make a model (of either registry) its task's default; the version is pinned.

        Args:
            spec: ``NAME``, ``NAME:VERSION`` or ``NAME@VERSION`` (no version: the highest).
            task: when given, the model's task must be this one.

        Returns:
            The entry now default.
        """
        entry = self.find(spec)
        if task is not None and entry.task != task:
            raise WeightsError(f"{entry.label} is a {entry.task} model, not a {task} model.")
        chosen = self.user_defaults()
        chosen[entry.task] = ModelSpec(entry.name, entry.version)
        self._write_defaults(chosen)
        return entry

    def clear_default(self, task: str) -> WeightsEntry | None:
        """Forget the user's default of ``task``; returns the shipped default now in force."""
        chosen = self.user_defaults()
        if chosen.pop(task, None) is not None:
            self._write_defaults(chosen)
        return self.shipped_default(task)

    def _write_defaults(self, chosen: Mapping[str, ModelSpec]) -> None:
        if self.user is self.shipped:
            raise WeightsError(f"the user registry {self.user.directory} is the shipped registry; set MEDLIM_MODELS_DIR.")
        payload = {
            "format": _DEFAULTS_FORMAT,
            "defaults": {task: {"name": s.name, "version": s.version} for task, s in sorted(chosen.items())},
        }
        self.user.directory.mkdir(parents=True, exist_ok=True)
        partial = self.defaults_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.defaults_path)


def find_weights(spec: str | ModelSpec, *, settings: Settings | None = None) -> WeightsEntry:
    """The entry named ``NAME``, ``NAME:VERSION`` or ``NAME@VERSION`` in the shipped or the user registry."""
    return Registries.load(settings).find(spec)


def list_models(task: str | None = None, *, settings: Settings | None = None) -> tuple[ListedModel, ...]:
    """Every model of both registries (of one task when given), with its source and default mark."""
    return Registries.load(settings).models(task)


def default_model(task: str, *, settings: Settings | None = None) -> WeightsEntry | None:
    """The default model of ``task``: the user's own choice while it exists, else the shipped default."""
    return Registries.load(settings).default(task)


def set_default(spec: str | ModelSpec, *, task: str | None = None, settings: Settings | None = None) -> WeightsEntry:
    """Make ``spec`` its task's default for this user (kept in ``<models_dir>/defaults.json``)."""
    return Registries.load(settings).set_default(spec, task=task)
