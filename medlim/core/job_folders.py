"""Folders inside the data roots where a page keeps what its jobs read and write (issue 15).

A page's job (origin ``page``) may only name paths inside ``MEDLIM_DATA_ROOTS``,
and a worker runs it in another process, possibly after the browser tab that
asked for it has closed. So the files a page hands to a job (an uploaded zip,
uploaded images, a run's output folder) cannot stay in the session's temporary
folder (swept when the session ends, and outside the data roots): they go to
``<base>/.medlim-jobs/<what>/<name>``, where ``<base>`` is the datasets folder
(``MEDLIM_HOME/datasets``) when it lies in the data roots, else the first data
root. :func:`sweep_job_folders` removes the inputs and run outputs nobody
wrote for :data:`KEEP_DAYS` (a retrieval collection's index stays: the results
store points at it).

No streamlit: the pages call these, and so could a command line.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from medlim.core.paths import is_within_data_roots, validate_name
from medlim.errors import ParameterError
from medlim.settings import Settings, get_settings

__all__ = ["JOB_FOLDERS", "KEEP_DAYS", "SWEPT", "job_folder", "job_folders_root", "sweep_job_folders", "write_job_files"]

#: Name of the folder (inside a data root) that holds the pages' job files.
JOB_FOLDERS = ".medlim-jobs"
#: Days a job folder is kept after it was last written.
KEEP_DAYS = 7.0
#: The kinds of job folders that are swept (the others hold what the results store points at).
SWEPT: tuple[str, ...] = ("uploads", "shift-runs", "slide-runs")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def job_folders_root(settings: Settings | None = None) -> Path:
    """``<datasets folder or first data root>/.medlim-jobs`` (not created).

    Raises:
        ParameterError: no data root is configured.
    """
    settings = settings or get_settings()
    if is_within_data_roots(settings.datasets_dir, settings, configured_only=True):
        return Path(settings.datasets_dir) / JOB_FOLDERS
    if not settings.data_roots:
        raise ParameterError("no data folder is configured (MEDLIM_DATA_ROOTS): a page cannot hand files to a job.")
    return Path(settings.data_roots[0]) / JOB_FOLDERS


def job_folder(what: str, name: str, *, settings: Settings | None = None) -> Path:
    """The folder ``.medlim-jobs/<what>/<name>`` inside the data roots, created.

    Args:
        what: the kind of files (``"uploads"``, ``"shift-runs"``, ...).
        name: a name safe as a folder name (checked with :func:`~medlim.core.paths.validate_name`).

    Raises:
        InvalidNameError: ``what`` or ``name`` is not a safe name.
        ParameterError: no data root is configured.
    """
    folder = job_folders_root(settings) / validate_name(what, what="job folder") / validate_name(name, what="job folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep_job_folders(*, keep_days: float = KEEP_DAYS, settings: Settings | None = None,
                      now: float | None = None) -> list[Path]:
    """Remove the job folders of the :data:`SWEPT` kinds not written for ``keep_days``; the folders removed."""
    try:
        root = job_folders_root(settings)
    except ParameterError:
        return []
    if not root.is_dir():
        return []
    limit = (time.time() if now is None else now) - keep_days * 86_400.0
    removed: list[Path] = []
    for group in (root / what for what in SWEPT if (root / what).is_dir()):
        for folder in (p for p in group.iterdir() if p.is_dir()):
            if folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def write_job_files(folder: Path, files: Iterable[tuple[str, bytes]]) -> list[Path]:
    """Write uploaded files into a job folder, in order, as ``00001-<safe name>``; their paths.

    The number keeps the upload order (and apart two files of the same name);
    only the last part of each name is kept, with anything but letters, digits,
    ``.``, ``_`` and ``-`` replaced, so a name never leaves the folder.
    """
    paths = []
    for index, (name, data) in enumerate(files, start=1):
        safe = _UNSAFE.sub("_", Path(str(name).replace("\\", "/")).name).lstrip(".")[-80:] or "file"
        path = Path(folder) / f"{index:05d}-{safe}"
        path.write_bytes(data)
        paths.append(path)
    return paths
