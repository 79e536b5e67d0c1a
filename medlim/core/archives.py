"""Zip archives people upload: limits checked before anything is written.

Issue 14 ("Budgets", "Zips"): a 0.9 MB zip can expand to gigabytes. Every
archive is checked from its central directory first — uncompressed total
(``MEDLIM_ZIP_MAX_MB``), member count (``MEDLIM_ZIP_MAX_MEMBERS``), compression
ratio of the whole and of each member (``MEDLIM_ZIP_MAX_RATIO``), paths that
would leave the target, nested archives, duplicate members — and refused with a
typed :class:`~medlim.errors.ArchiveError` before a byte is extracted. The
declared sizes are then enforced while reading, so an archive that lies about
them is stopped too. Extraction goes into a fresh folder beside the target and
is renamed into place in one step, so a failed or concurrent extraction never
leaves a half folder that is reused later.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medlim.errors import ArchiveBudgetError, ArchiveError
from medlim.settings import Settings, get_settings

__all__ = ["NESTED_ARCHIVE_SUFFIXES", "ZipLimits", "ZipMember", "check_zip", "extract_zip", "iter_zip_members", "open_zip"]

#: Members with these endings are archives themselves; nested archives are refused.
NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar", ".zst")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """The zip budgets (from :class:`~medlim.settings.Settings`).

    Attributes:
        max_bytes: uncompressed bytes in all (``MEDLIM_ZIP_MAX_MB`` × 2**20).
        max_members: files in the archive (``MEDLIM_ZIP_MAX_MEMBERS``).
        max_ratio: uncompressed ÷ compressed bytes, of the whole and of each
            member larger than 1 MiB (``MEDLIM_ZIP_MAX_RATIO``).
    """

    max_bytes: int
    max_members: int
    max_ratio: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ZipLimits:
        settings = settings or get_settings()
        return cls(
            max_bytes=int(settings.zip_max_mb) << 20,
            max_members=int(settings.zip_max_members),
            max_ratio=int(settings.zip_max_ratio),
        )


@dataclass(frozen=True)
class ZipMember:
    """One file of a checked archive: its path inside the archive and its bytes."""

    name: str
    data: bytes


def open_zip(source: bytes | str | os.PathLike, *, label: str = "the upload") -> zipfile.ZipFile:
    """A :class:`zipfile.ZipFile` over bytes or a path.

    Raises:
        ArchiveError: not a readable zip archive.
    """
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ArchiveError(f"{label} is not a readable zip archive; zip the files again.") from None


def _is_skipped(path: PurePosixPath) -> bool:
    """Folders' resource forks and hidden files, never extracted."""
    return "__MACOSX" in path.parts or any(part.startswith(".") for part in path.parts)


def check_zip(archive: zipfile.ZipFile, limits: ZipLimits, *, label: str = "the upload") -> list[zipfile.ZipInfo]:
    """The archive's file members after every limit was checked from its directory.

    Hidden files and ``__MACOSX`` resource forks are left out of the result (and
    never extracted) but count towards the limits.

    Args:
        archive: an open archive.
        limits: the budgets.
        label: how messages name the archive (never a server path).

    Returns:
        The members to extract, sorted by name.

    Raises:
        ArchiveBudgetError: too many members, too large uncompressed, or a
            compression ratio above the limit; the message names the limit and
            its variable.
        ArchiveError: a member that would leave the target folder, a nested
            archive, a duplicate or encrypted member.
    """
    infos = archive.infolist()
    files = [info for info in infos if not info.is_dir()]
    if len(infos) > limits.max_members:
        raise ArchiveBudgetError(
            f"{label} holds {len(infos):,} entries, more than the limit of {limits.max_members:,} "
            "(MEDLIM_ZIP_MAX_MEMBERS); split it or put the data in a data folder.",
            limit=limits.max_members, variable="MEDLIM_ZIP_MAX_MEMBERS",
        )
    total = sum(info.file_size for info in files)
    if total > limits.max_bytes:
        raise ArchiveBudgetError(
            f"{label} would expand to {total / (1 << 20):,.0f} MiB, more than the limit of "
            f"{limits.max_bytes >> 20:,} MiB (MEDLIM_ZIP_MAX_MB); put large datasets in a data folder instead.",
            limit=limits.max_bytes >> 20, variable="MEDLIM_ZIP_MAX_MB",
        )
    compressed = sum(info.compress_size for info in files)
    worst = max(files, key=lambda info: info.file_size / max(info.compress_size, 1), default=None)
    ratio_total = total / max(compressed, 1)
    ratio_member = 0.0 if worst is None or worst.file_size <= _CHUNK else worst.file_size / max(worst.compress_size, 1)
    if (total > _CHUNK and ratio_total > limits.max_ratio) or ratio_member > limits.max_ratio:
        raise ArchiveBudgetError(
            f"{label} is compressed {max(ratio_total, ratio_member):,.0f} to 1, more than the limit of "
            f"{limits.max_ratio} to 1 (MEDLIM_ZIP_MAX_RATIO); images do not compress like that, so it is refused.",
            limit=limits.max_ratio, variable="MEDLIM_ZIP_MAX_RATIO",
        )
    seen: set[str] = set()
    kept: list[zipfile.ZipInfo] = []
    for info in files:
        name = info.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or ".." in path.parts or (path.parts and ":" in path.parts[0]) or "\x00" in name:
            raise ArchiveError(f"{label} holds a member whose path leaves the archive's folder; it is refused.")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{label} holds encrypted members; zip the files without a password.")
        if _is_skipped(path):
            continue
        if name.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
            raise ArchiveError(f"{label} holds another archive inside it; unpack that one and zip the files directly.")
        key = name.lower()
        if key in seen:
            raise ArchiveError(f"{label} holds the same file twice (member {len(seen) + 1}); zip the files again.")
        seen.add(key)
        kept.append(info)
    # A file and a folder of the same name cannot both be extracted.
    folders = {str(parent).lower() for info in kept for parent in PurePosixPath(info.filename).parents}
    if any(info.filename.lower() in folders for info in kept):
        raise ArchiveError(f"{label} holds a file and a folder with the same name; zip the files again.")
    return sorted(kept, key=lambda info: info.filename)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, budget: list[int], label: str) -> Iterator[bytes]:
    """The member's bytes in chunks, stopping if it yields more than it declared or than the budget left."""
    produced = 0
    with archive.open(info) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                return
            produced += len(chunk)
            budget[0] -= len(chunk)
            if produced > info.file_size or budget[0] < 0:
                raise ArchiveBudgetError(
                    f"{label} expands to more than its directory declares; it is refused.",
                    limit=budget[1], variable="MEDLIM_ZIP_MAX_MB",
                )
            yield chunk


def iter_zip_members(
    source: bytes | str | os.PathLike, *, limits: ZipLimits | None = None, label: str = "the upload"
) -> Iterator[ZipMember]:
    """The archive's files, in memory, after :func:`check_zip` passed (one member at a time).

    Raises:
        ArchiveError, ArchiveBudgetError: as :func:`check_zip`, or while reading a damaged member.
    """
    limits = limits or ZipLimits.from_settings()
    with open_zip(source, label=label) as archive:
        members = check_zip(archive, limits, label=label)
        budget = [limits.max_bytes, limits.max_bytes >> 20]
        for info in members:
            try:
                data = b"".join(_read_member(archive, info, budget=budget, label=label))
            except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
                raise ArchiveError(f"{label} has a damaged member ({type(exc).__name__}); zip the files again.") from None
            yield ZipMember(name=info.filename, data=data)


def extract_zip(
    source: bytes | str | os.PathLike,
    target: str | os.PathLike,
    *,
    limits: ZipLimits | None = None,
    label: str = "the upload",
) -> Path:
    """Extract a checked archive to ``target`` atomically; an existing complete ``target`` is reused.

    The files are written into a fresh folder beside ``target`` and renamed to
    ``target`` in one step, so ``target`` is either absent or complete. When
    another process finished first, its folder is kept and ours removed.

    Args:
        source: the archive's bytes or path.
        target: the folder to create (its parent is created if needed).
        limits: budgets; from the current settings when ``None``.
        label: how messages name the archive.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        ArchiveError, ArchiveBudgetError: the archive is refused (nothing is left on disk).
    """
    target = Path(target)
    if target.is_dir():
        return target
    limits = limits or ZipLimits.from_settings()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{uuid.uuid4().hex[:8]}.", dir=target.parent))
    try:
        with open_zip(source, label=label) as archive:
            members = check_zip(archive, limits, label=label)
            budget = [limits.max_bytes, limits.max_bytes >> 20]
            for info in members:
                out = staging.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with out.open("xb") as handle:
                        for chunk in _read_member(archive, info, budget=budget, label=label):
                            handle.write(chunk)
                except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
                    raise ArchiveError(f"{label} has a damaged member ({type(exc).__name__}); zip the files again.") from None
                except FileExistsError:
                    raise ArchiveError(f"{label} holds the same file twice; zip the files again.") from None
                except OSError as exc:
                    raise ArchiveError(
                        f"{label} could not be unpacked on the server ({exc.strerror or type(exc).__name__})."
                    ) from None
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # a concurrent extraction won; use its folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
