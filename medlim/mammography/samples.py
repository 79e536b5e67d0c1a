"""Which files make an exam: bundled sample exams by file name, and uploads with archives expanded.

The bundled samples (``data_samples/mammograms``) are named
``<patient>_<date>_<view>.<suffix>``; :func:`sample_exams` groups them into
exams for the page's sample picker and leaves their ground-truth masks out.
:func:`expand_uploads` turns a list of uploaded files, some of them ``.zip``
archives, into the image files inside, in memory and under the zip limits of
:func:`medlim.core.archives.iter_zip_members` (issue 14). Neither reads pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medlim.core.io.files import is_derived_file

__all__ = ["IMAGE_SUFFIXES", "SampleExam", "expand_uploads", "sample_exams"]

#: Suffixes read as images inside archives and sample folders ("" : DICOM files often have none).
IMAGE_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg", "")


@dataclass(frozen=True)
class SampleExam:
    """A group of bundled sample files that belong together (one exam).

    Attributes:
        label: what the picker shows, e.g. ``"PHANTOM-0001 2018-12-25 — 4 views (LCC, …; mammograms/dicom)"``.
        files: the exam's image files, sorted by name.
    """

    label: str
    files: tuple[Path, ...]


def sample_exams(samples_dir: Path) -> list[SampleExam]:
    """Bundled mammograms grouped into exams by file name (``<patient>_<date>_<view>``).

    Only folders whose path mentions ``mammo`` are read; ground-truth masks
    (``*_bac.png``, ``*_breast.png``, ``*_lookalike.png``, ...) are left out.

    Args:
        samples_dir: the bundled samples folder (``Settings.samples_dir``).

    Returns:
        Exams sorted by label; ``[]`` when the folder is absent or holds no mammograms.
    """
    if not samples_dir.is_dir():
        return []
    groups: dict[str, list[Path]] = {}
    for path in sorted(samples_dir.rglob("*")):
        relative = path.relative_to(samples_dir)
        if not path.is_file() or "mammo" not in relative.as_posix().lower():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES[:-1] or is_derived_file(path):
            continue
        prefix, _, _view = path.stem.rpartition("_")
        key = f"{relative.parent.as_posix()}/{prefix or path.stem}"
        groups.setdefault(key, []).append(path)
    exams = []
    for key, files in sorted(groups.items()):
        folder, _, prefix = key.rpartition("/")
        views = ", ".join(p.stem.rpartition("_")[2] for p in files)
        label = f"{prefix.replace('_', ' ')} — {len(files)} view{'s' if len(files) > 1 else ''} ({views}; {folder})"
        exams.append(SampleExam(label=label, files=tuple(files)))
    return exams


def expand_uploads(files: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Files with every ``.zip`` replaced by its image members (in memory), in order.

    Each archive is checked against the zip limits (``MEDLIM_ZIP_MAX_*``) before
    a member is read (:func:`medlim.core.archives.iter_zip_members`). Folders,
    hidden files, macOS resource forks, ground-truth masks and text files inside
    archives are skipped. A member is named ``<archive>/<path in the archive>``.

    Args:
        files: ``(name, bytes)`` pairs as uploaded.

    Raises:
        ArchiveError: a ``.zip`` that cannot be opened or holds something refused.
        ArchiveBudgetError: a ``.zip`` beyond the zip limits.
    """
    from medlim.core.archives import iter_zip_members

    expanded: list[tuple[str, bytes]] = []
    for name, data in files:
        if not name.lower().endswith(".zip"):
            expanded.append((name, data))
            continue
        for member in iter_zip_members(data, label=name):
            path = Path(member.name)
            if path.suffix.lower() not in IMAGE_SUFFIXES or is_derived_file(path):
                continue
            expanded.append((f"{name}/{member.name}", member.data))
    return expanded
