"""Paths and names that come from people: data roots, safe names, output names.

Issue 14 ("Data roots"): the app has no login and may face a network, so a
folder typed into a page is confined to ``MEDLIM_DATA_ROOTS`` after links are
resolved, and a name typed by a user (collection, run, preset) never becomes a
raw path component. The command line is not confined (its user owns the
machine); batch commands use :func:`output_stems` so that two inputs with the
same stem never overwrite each other's outputs.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from medlim.errors import InvalidNameError, PathNotAllowedError
from medlim.settings import Settings, get_settings

__all__ = [
    "NAME_MAX_CHARS",
    "allowed_roots_text",
    "confine_to_data_roots",
    "confining_to_data_roots",
    "data_roots_confined",
    "existing_form",
    "is_within_data_roots",
    "lies_within",
    "output_stems",
    "validate_name",
]

#: Longest name a user may give a collection, run or preset.
NAME_MAX_CHARS = 64

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")


def validate_name(text: str, *, what: str = "name") -> str:
    """A user-typed name checked to be safe as a file name and a store key.

    Letters, digits, space, ``-``, ``_`` and ``.``; starts with a letter or digit;
    at most :data:`NAME_MAX_CHARS` characters; no ``..``. Surrounding spaces are
    removed.

    Args:
        text: the name as typed.
        what: what the name is for, used in the message ("collection name").

    Returns:
        The stripped name.

    Raises:
        InvalidNameError: the name is empty, too long or holds other characters.
    """
    name = str(text).strip()
    if not name:
        raise InvalidNameError(f"The {what} is empty; type a name of letters, digits, '-', '_', '.' or spaces.")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidNameError(f"The {what} has {len(name)} characters; use at most {NAME_MAX_CHARS}.")
    if not _NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"The {what} may hold only the letters A–Z and a–z (no accents), digits, spaces, '-', '_' and '.', "
            "must start with a letter or digit and may not contain '..'; choose another name."
        )
    return name


def _resolved_roots(settings: Settings, *, configured_only: bool = False) -> list[Path]:
    """The data roots, links resolved, and (unless ``configured_only``) the kept-datasets folder: the Models page
    keeps uploads there, so a page may open them again whatever ``MEDLIM_DATA_ROOTS`` names (session-21 probe:
    a kept dataset could not be reopened)."""
    roots = []
    extra = () if configured_only else (settings.datasets_dir,)
    for root in (*settings.data_roots, *extra):
        try:
            roots.append(Path(root).expanduser().resolve(strict=False))
        except (OSError, RuntimeError):  # a link loop: such a root confines nothing
            continue
    return roots


def allowed_roots_text(settings: Settings | None = None) -> str:
    """The data roots as one human-readable list (for messages and captions)."""
    settings = settings or get_settings()
    roots = [str(root) for root in settings.data_roots]
    if settings.datasets_dir not in settings.data_roots:
        roots.append(f"{settings.datasets_dir} (kept datasets)")
    return ", ".join(roots) if roots else "(none: MEDLIM_DATA_ROOTS is empty)"


def is_within_data_roots(path: str | os.PathLike, settings: Settings | None = None, *,
                         configured_only: bool = False) -> bool:
    """Whether ``path``, after resolving links and ``..``, lies inside one of the data roots (with
    ``configured_only``, the roots ``MEDLIM_DATA_ROOTS`` names, without the kept-datasets folder)."""
    settings = settings or get_settings()
    try:
        resolved = Path(path).expanduser().resolve(strict=False)
    except (OSError, RuntimeError, ValueError):
        return False
    return any(resolved == root or root in resolved.parents
               for root in _resolved_roots(settings, configured_only=configured_only))


#: True while what a page gave is being read (a page's check, a page's job): every file a dataset names must then
#: lie inside the dataset folder or a data root (:func:`medlim.core.datasets.open_dataset`).
_CONFINED: ContextVar[bool] = ContextVar("medlim_confined_to_data_roots", default=False)


@contextmanager
def confining_to_data_roots() -> Iterator[None]:
    """Within: the files a dataset's manifest (or a link in its folders) names are confined to the dataset folder
    and the data roots. A page's check and the job runner for a page's jobs run inside it; the command line,
    whose user owns the machine, does not."""
    token = _CONFINED.set(True)
    try:
        yield
    finally:
        _CONFINED.reset(token)


def data_roots_confined() -> bool:
    """Whether datasets are now confined (:func:`confining_to_data_roots`)."""
    return _CONFINED.get()


def lies_within(path: str | os.PathLike, folders: Sequence[str | os.PathLike],
                settings: Settings | None = None) -> bool:
    """Whether ``path``, links and ``..`` resolved, lies inside one of ``folders`` or of the data roots."""
    settings = settings or get_settings()
    try:
        resolved = Path(path).expanduser().resolve(strict=False)
        allowed = [Path(folder).expanduser().resolve(strict=False) for folder in folders]
    except (OSError, RuntimeError, ValueError):
        return False
    return any(resolved == root or root in resolved.parents for root in [*allowed, *_resolved_roots(settings)])


def existing_form(path: Path, *, under: Path | None = None) -> Path:
    """``path`` (relative to ``under`` when given) as the disk spells it when it exists only in the other Unicode
    form: a manifest typed on a keyboard writes ``É`` as one character (NFC), while file names copied from a Mac
    often hold ``E`` plus a combining accent (NFD), and the two look the same. Unchanged otherwise."""
    base = under if under is not None else Path()
    if (base / path).exists():
        return path
    found = Path(path.parts[0]) if path.is_absolute() else Path()
    for part in path.parts[1:] if path.is_absolute() else path.parts:  # folder by folder: forms may mix
        forms = (part, unicodedata.normalize("NFC", part), unicodedata.normalize("NFD", part))
        found = found / next((form for form in forms if (base / found / form).exists()), part)
    return found if (base / found).exists() else path


def confine_to_data_roots(text: str | os.PathLike, settings: Settings | None = None, *, what: str = "folder") -> Path:
    """The resolved path of a folder or file typed into a page, if it lies inside a data root.

    The check is made on the path with links resolved, before anything about the
    path is looked at, so the message is the same whether or not the path exists.

    Args:
        text: the path as typed (absolute, or relative to the first data root).
        settings: the data roots; current settings when ``None``.
        what: what the path is for, used in the message.

    Returns:
        The resolved path (it may not exist; callers say so in their own words).

    Raises:
        PathNotAllowedError: the path is empty, holds a NUL byte, or lies outside
            every data root; the message names the allowed roots.
    """
    settings = settings or get_settings()
    raw = str(text).strip()
    message = (
        f"The {what} must lie inside one of the data folders this app may read: {allowed_roots_text(settings)} "
        "(set MEDLIM_DATA_ROOTS to change them)."
    )
    if not raw or "\x00" in raw:
        raise PathNotAllowedError(message)
    path = Path(raw).expanduser()
    if not path.is_absolute() and settings.data_roots:
        path = Path(settings.data_roots[0]).expanduser() / path
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError, ValueError):
        raise PathNotAllowedError(message) from None
    if not any(resolved == root or root in resolved.parents for root in _resolved_roots(settings)):
        raise PathNotAllowedError(message)
    other = existing_form(resolved)  # a name pasted from a Mac (decomposed É) finds the folder typed composed
    if other == resolved:
        return resolved
    try:  # the other spelling is another entry on disk: confined on its own (it could be a link leading out)
        other = other.resolve(strict=False)
    except (OSError, RuntimeError, ValueError):
        return resolved
    return other if any(other == root or root in other.parents for root in _resolved_roots(settings)) else resolved


def output_stems(files: Sequence[str | os.PathLike]) -> list[str]:
    """One output stem per input file, distinct even when file stems repeat.

    A file whose stem is unique keeps it (``study1/IMG0001.dcm`` → ``IMG0001``).
    Files sharing a stem get the path relative to their common folder, with
    separators as ``__`` (``study1__IMG0001``); if that still collides (or the
    files are given twice), an 8-character hash of the full path is appended.

    Args:
        files: the input paths, in order.

    Returns:
        Stems in the same order, all distinct for distinct paths.
    """
    paths = [Path(f) for f in files]
    counts = Counter(p.stem for p in paths)
    try:
        common = Path(os.path.commonpath([str(p.resolve().parent) for p in paths])) if paths else None
    except ValueError:  # different drives
        common = None
    stems: list[str] = []
    for path in paths:
        if counts[path.stem] == 1:
            stems.append(path.stem)
            continue
        try:
            relative = path.resolve().relative_to(common) if common is not None else path
        except ValueError:
            relative = path
        stems.append("__".join(relative.with_suffix("").parts) or path.stem)
    repeated = Counter(stems)
    return [
        f"{stem}-{hashlib.sha1(str(path.resolve()).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        if repeated[stem] > 1
        else stem
        for stem, path in zip(stems, paths)
    ]
