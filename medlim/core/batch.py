"""Batch runs over many files: one row per file, failures as rows, outputs kept apart.

Issue 14 ("Batch commands"): ``medlim bac quantify``, ``nuclei segment``,
``steatosis segment`` and ``ood score`` answer every file with one row holding
``file``; a file that cannot be analysed gets a row with ``error`` (the
:class:`medlim.errors.MedlimError` class) and ``message`` and the run goes on.
The loop is a generator (StarDist's ``_predict_instances_generator`` habit), so
a row leaves before the next file is read and memory does not grow with the
number of files. Output names come from :func:`medlim.core.paths.output_stems`
(or pseudonymous labels), and every name printed in a line goes through
:func:`medlim.core.text.escape_control`, so a file name holding a newline
cannot forge a line of a table or of the progress output.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

from medlim.core.paths import output_stems
from medlim.core.text import escape_control
from medlim.errors import MedlimError, ParameterError
from medlim.settings import Settings

__all__ = [
    "MEMORY_MESSAGE",
    "Attempt",
    "BatchFile",
    "Progress",
    "attempt_each",
    "batch_rows",
    "error_row",
    "json_line",
    "output_folder",
    "plan_files",
    "print_row",
    "batch_exit_status",
    "progress_printer",
    "real_names",
    "row_line",
]

Item = TypeVar("Item")
Result = TypeVar("Result")

#: ``progress(index, name, seconds)``: called after each file (``index`` counts from 1).
Progress = Callable[[int, str, float], None]

#: The message of a file that did not fit in memory.
MEMORY_MESSAGE = (
    "There was not enough memory to analyse this file; close other programs, analyse it on a larger "
    "machine, or lower MEDLIM_MAX_PIXELS / MEDLIM_DECODE_BUDGET_MB so such files are refused up front."
)

#: Names shorter than this are not hidden in messages (hiding "a" would garble the text, and leaks nothing).
_MIN_HIDDEN_CHARS = 4


@dataclass(frozen=True)
class BatchFile:
    """One input of a batch run.

    Attributes:
        path: where the file is read from.
        name: what rows and lines call it: the path as the user gave it, or its
            pseudonymous label (:func:`medlim.core.io.pseudonym.file_label`).
        stem: the stem of its output files, distinct from every other input's.
    """

    path: Path
    name: str
    stem: str


@dataclass(frozen=True)
class Attempt(Generic[Result]):
    """What one step of :func:`attempt_each` gave for one file.

    Attributes:
        index: position of the file, counting from 1.
        name: the file's name as rows show it.
        result: what the step returned (``None`` when it failed).
        failure: the :func:`error_row` of a failed step (``None`` when it worked).
        seconds: wall time of the step.
    """

    index: int
    name: str
    result: Result | None
    failure: dict[str, Any] | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the step returned a result."""
        return self.failure is None


def plan_files(
    files: Sequence[str | Path], *, pseudonymise: bool = False, settings: Settings | None = None
) -> list[BatchFile]:
    """Names and distinct output stems for the input files of a batch.

    Args:
        files: the input paths in order, as the user gave them (or as found in their folders).
        pseudonymise: name files by their keyed-hash label (``img-3fa9c2d1e0b4.png``)
            instead of their path; output stems then use the label too.
        settings: settings holding the pseudonym secret; current settings when ``None``.

    Returns:
        One :class:`BatchFile` per input, in order.
    """
    from medlim.core.io.pseudonym import file_label

    paths = [Path(f) for f in files]
    if not pseudonymise:
        return [BatchFile(path, str(path), stem) for path, stem in zip(paths, output_stems(paths))]
    labels = [file_label(str(path), settings=settings) for path in paths]
    # A label is a keyed hash of the whole path, so distinct paths already get distinct stems.
    return [BatchFile(path, label, Path(label).stem) for path, label in zip(paths, labels)]


def error_row(file: str, exc: MedlimError | MemoryError, *, hidden: Iterable[str] = ()) -> dict[str, Any]:
    """The row of a file that could not be analysed.

    Args:
        file: the file's name as rows show it.
        exc: what stopped it.
        hidden: texts (the real path and file name of a pseudonymised file) replaced
            by ``file`` in the message, so the message does not undo the label.

    Returns:
        ``{"file": file, "error": <class name>, "message": <text a person can act on>}``.
    """
    if isinstance(exc, MemoryError):
        return {"file": file, "error": "MemoryError", "message": MEMORY_MESSAGE}
    message = exc.message
    for text in sorted(set(hidden), key=len, reverse=True):
        if len(text) >= _MIN_HIDDEN_CHARS and text != file:
            message = message.replace(text, file)
    return {"file": file, "error": type(exc).__name__, "message": message}


def attempt_each(
    items: Iterable[tuple[str, Item]],
    step: Callable[[str, Item], Result],
    *,
    progress: Progress | None = None,
    hidden: Callable[[Item], Iterable[str]] | None = None,
) -> Iterator[Attempt[Result]]:
    """Run ``step(name, item)`` for each item, turning a user's error into a failed attempt.

    Only :class:`medlim.errors.MedlimError` (and ``MemoryError``) are caught: anything
    else is a bug and must surface. Lazy: an attempt is yielded before the next
    item is taken.

    Args:
        items: ``(name, item)`` pairs, e.g. a display name and a path or the bytes.
        step: the per-file work.
        progress: called after each item.
        hidden: for pseudonymised names, the texts of an item (its real path and
            file name) that error messages must not show (see :func:`error_row`).

    Yields:
        One :class:`Attempt` per item, in order.
    """
    for index, (name, item) in enumerate(items, start=1):
        started = time.perf_counter()
        result, failure = None, None
        try:
            result = step(name, item)
        except (MedlimError, MemoryError) as exc:
            failure = error_row(name, exc, hidden=hidden(item) if hidden is not None else ())
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(index, name, seconds)
        yield Attempt(index, name, result, failure, seconds)


def real_names(item: object) -> tuple[str, ...]:
    """The texts that name an input on disk (its path and file name), for ``attempt_each(hidden=...)``.

    Args:
        item: a :class:`BatchFile` or a ``Path``; anything else (bytes) has no name on disk.
    """
    path = item.path if isinstance(item, BatchFile) else item
    return (str(path), path.name) if isinstance(path, Path) else ()


def batch_rows(
    files: Iterable[BatchFile],
    analyse: Callable[[BatchFile], Mapping[str, Any]],
    *,
    progress: Progress | None = None,
    pseudonymised: bool = False,
) -> Iterator[dict[str, Any]]:
    """One row per file: ``{"file": name, **analyse(file)}``, or its :func:`error_row`.

    Args:
        files: from :func:`plan_files`.
        analyse: the readouts of one file (it also writes the file's outputs).
        progress: called after each file.
        pseudonymised: the names are labels; messages then show the label, not the path.

    Yields:
        Rows in the order of ``files``, each as soon as its file is done.
    """
    pairs = ((file.name, file) for file in files)
    attempts = attempt_each(pairs, lambda _name, file: analyse(file), progress=progress,
                            hidden=real_names if pseudonymised else None)
    for attempt in attempts:
        if attempt.failure is not None:
            yield attempt.failure
        else:
            yield {"file": attempt.name, **dict(attempt.result or {})}


def output_folder(path: str | Path) -> Path:
    """Create the output folder of a batch (and its parents) before the first file is read.

    Raises:
        ParameterError: it cannot be created (a file of that name, no permission).
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(
            f"The output folder {escape_control(folder)} cannot be created ({exc.strerror or type(exc).__name__}); "
            "give --out a folder you may write to."
        ) from exc
    return folder


def progress_printer(total: int, *, stream: TextIO | None = None) -> Progress:
    """A :data:`Progress` printing ``[index/total] name: 1.2 s`` lines (stderr by default)."""

    def report(index: int, name: str, seconds: float) -> None:
        print(f"[{index}/{total}] {escape_control(name)}: {seconds:.1f} s", file=stream or sys.stderr, flush=True)

    return report


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def json_line(row: Mapping[str, Any]) -> str:
    """A row as one line of JSON (control characters escaped by JSON; NaN and ±inf as ``null``)."""
    return json.dumps(_finite(row), allow_nan=False)


def row_line(row: Mapping[str, Any], describe: Callable[[Mapping[str, Any]], str]) -> str:
    """A row as one human-readable line: ``name: <readouts>`` or ``name: not analysed: message`` (the error's
    class stays in the row's JSON ``error``; on a line it only looked like a diagnosis, e.g. a modality error
    for an image that is too small).

    Args:
        row: a row of :func:`batch_rows` (or of a command's own loop).
        describe: the readouts of a successful row in words.

    Returns:
        One line (no control characters): warnings and a store's refusal are added in brackets.
    """
    name = escape_control(row["file"])
    if "error" in row:
        return f"{name}: not analysed: {escape_control(row['message'])}"
    text = f"{name}: {escape_control(describe(row))}"
    for warning in row.get("warnings") or ():
        text += f" [warning: {escape_control(warning)}]"
    if row.get("store_error"):
        text += f" [not stored: {escape_control(row['store_error'])}]"
    return text


def batch_exit_status(analysed: int, total: int) -> int:
    """A batch command's exit status: 1 when it was given files and could analyse none of them, else 0.

    A file that fails has its own row (and a line on stderr); the others' results stand, and a page's job
    keeps them. A script that runs one file at a time, or a batch where nothing worked, sees the failure.
    """
    return 1 if total > 0 and analysed == 0 else 0


def print_row(
    row: Mapping[str, Any], *, jsonl: bool, describe: Callable[[Mapping[str, Any]], str], stream: TextIO | None = None
) -> None:
    """Print a row on stdout: JSON with ``jsonl``, else :func:`row_line`."""
    print(json_line(row) if jsonl else row_line(row, describe), file=stream or sys.stdout, flush=True)
