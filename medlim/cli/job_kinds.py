"""The job kinds and their runners: the foreground commands, run by a worker (issue 15).

:data:`KINDS` is the table :mod:`medlim.core.jobs.kinds` reads by name. Every
kind's parameters are ``{"argv": [...], "cwd": "..."}``: the command's own
arguments (``["bac", "quantify", "a.dcm", "--resume"]``, without ``medlim`` and
``--background``), parsed again by the command's parser when the job runs, so a
job is checked like the command it stands for. Relative paths are taken from
``cwd`` (where the command was typed); a page's job (origin ``page``) has every
path option confined to ``MEDLIM_DATA_ROOTS``.

``bac.quantify`` runs the foreground command's own loop (``medlim.cli.bac._run``,
over :func:`medlim.mammography.batch.quantify_files`) with a progress step per
file and a pseudonymised row per file in its result; a resumed attempt reuses the results stored before
(the ``--resume`` rule), so files finished before a worker died are not analysed
again. The other kinds run the foreground command's own function: its stdout
becomes the result (JSON lines parsed), its stderr the job's log, and its
``done/total`` progress lines the job's progress; they resume by running again.
``steatosis.segment`` and ``nuclei.segment`` are whole-slide runs a page started
(issue 16): the command's ``tile i/n`` lines become the job's progress and its
``--csv`` / ``--geojson`` files, written into ``--out`` inside the data roots,
are read back by the page.
An ``evaluate`` job runs any room's ``evaluate`` command (:data:`EVALUATE_ROOMS`; the Models page's
"Check a model on your data", issue 12) and, like the other command kinds, runs again from the start.
A ``train`` job resumes after its last finished epoch and never registers twice:
the harness keeps its epochs in ``MEDLIM_HOME/jobs/<id>`` (named in
``MEDLIM_JOB_CHECKPOINT_DIR``) and its registrations and result in the job's
checkpoint (:mod:`medlim.core.training_resume`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.errors import JobError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.jobs.context import JobContext

__all__ = ["COMMANDS", "EVALUATE_ROOMS", "KINDS", "BacJobRequest", "bac_job_request", "command_words",
           "parse_job_argv", "run_bac_quantify", "run_command"]

#: kind → its runner, ``"module:function"``.
KINDS: dict[str, str] = {
    "bac.quantify": "medlim.cli.job_kinds:run_bac_quantify",
    "shift.run": "medlim.cli.job_kinds:run_command",
    "ood.score": "medlim.cli.job_kinds:run_command",
    "retrieval.build": "medlim.cli.job_kinds:run_command",
    "train": "medlim.cli.job_kinds:run_command",
    "steatosis.segment": "medlim.cli.job_kinds:run_command",
    "nuclei.segment": "medlim.cli.job_kinds:run_command",
    "evaluate": "medlim.cli.job_kinds:run_command",
}

#: kind → the command words its argv starts with.
COMMANDS: dict[str, tuple[str, ...]] = {
    "bac.quantify": ("bac", "quantify"),
    "shift.run": ("shift", "run"),
    "ood.score": ("ood", "score"),
    "retrieval.build": ("retrieval", "build"),
    "train": ("train",),
    "steatosis.segment": ("steatosis", "segment"),
    "nuclei.segment": ("nuclei", "segment"),
    "evaluate": ("*", "evaluate"),
}

#: The rooms whose ``evaluate`` command an ``evaluate`` job may run (``*`` in :data:`COMMANDS`): a model
#: checked on a user's annotated folder (``--data``), as the Models page asks (issue 12).
EVALUATE_ROOMS: tuple[str, ...] = ("bac", "steatosis", "nuclei", "ood", "retrieval")


def command_words(kind: str, argv: list[str]) -> tuple[str, ...] | None:
    """The words ``argv`` must start with for a job of ``kind``; ``None`` for an unknown kind."""
    words = COMMANDS.get(kind)
    if words is None or words[0] != "*":
        return words
    room = argv[0] if argv and argv[0] in EVALUATE_ROOMS else EVALUATE_ROOMS[0]
    return (room, *words[1:])

#: Parsed options holding paths (read or written): made absolute from ``cwd``, confined for a page's job.
_PATH_OPTIONS: tuple[str, ...] = (
    "inputs", "paths", "out", "data", "val", "heldout", "index", "internal", "external", "weights_dir", "models_dir",
)

#: Rows kept in a job's result (a bigger batch keeps its counts; its rows are in the results store).
RESULT_ROWS_MAX = 10_000

#: Characters of a command's stdout kept in its job's result.
_STDOUT_MAX_CHARS = 200_000

_FILE_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\]")
_STAGE_PROGRESS = re.compile(r"(?P<stage>[A-Za-z][\w \-]{0,60}?)[: ]\s*(?P<done>\d+)/(?P<total>\d+)\b")


def _parse(argv: list[str]) -> argparse.Namespace:
    from medlim.cli import build_parser

    errors = io.StringIO()
    try:
        with redirect_stderr(errors):
            return build_parser((argv[0],)).parse_args(argv)
    except SystemExit:
        reason = (errors.getvalue().strip().splitlines() or ["invalid arguments"])[-1]
        raise JobError(f"the job's arguments are not valid for `medlim {' '.join(argv[:2])}`: {reason}") from None


def _place(value: Any, *, cwd: Path | None, confine: bool) -> Any:
    """A path option's value made absolute (``cwd``) or confined to the data roots (a page's job)."""
    from medlim.core.paths import confine_to_data_roots

    if isinstance(value, (list, tuple)):
        return [_place(item, cwd=cwd, confine=confine) for item in value]
    if value is None or (isinstance(value, str) and value.startswith("phantom:")):
        return value  # a phantom dataset spec, not a path
    if confine:
        path = confine_to_data_roots(str(value), what="path of this job")
        return str(path) if isinstance(value, str) else path
    path = Path(value).expanduser()
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    return str(path) if isinstance(value, str) else path


def parse_job_argv(kind: str, parameters: dict[str, Any], *, origin: str = "cli") -> argparse.Namespace:
    """The job's argv parsed by its command's parser, path options placed.

    Raises:
        JobError: no argv, an argv of another command, ``--background`` in it, or arguments the command refuses.
        PathNotAllowedError: a page's job names a path outside the data roots.
    """
    argv = parameters.get("argv")
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        raise JobError(f"a {kind} job needs parameters {{'argv': [...]}} (the command's arguments as text).")
    words = command_words(kind, argv)
    if words is None or tuple(argv[: len(words)]) != words:
        shown = " ".join(words or ()) if COMMANDS.get(kind, ("",))[0] != "*" else \
            f"{'|'.join(EVALUATE_ROOMS)} {' '.join(COMMANDS[kind][1:])}"
        raise JobError(f"a {kind} job runs `medlim {shown} ...`; its argv starts {argv[:2]}.")
    if "--background" in argv:
        raise JobError("a job's argv may not hold --background (it would only queue another job).")
    args = _parse(argv)
    cwd = Path(parameters["cwd"]) if isinstance(parameters.get("cwd"), str) and origin == "cli" else None
    for option in _PATH_OPTIONS:
        if hasattr(args, option):
            setattr(args, option, _place(getattr(args, option), cwd=cwd, confine=origin == "page"))
    for option in ("weights", "init"):  # a registry name, or a checkpoint file (`--weights authors.pt`)
        value = getattr(args, option, None)
        if isinstance(value, str) and ("/" in value or value.lower().endswith((".pt", ".pth", ".safetensors"))):
            setattr(args, option, _place(value, cwd=cwd, confine=origin == "page"))
    return args


class _StderrToJob(io.TextIOBase):
    """A stream turning a command's stderr into the job's progress and log, line by line.

    ``[i/n] <file>`` lines become progress only (file names are not kept); ``stage: i/n`` and
    ``epoch i/n`` lines are logged and become progress too (unless ``progress_lines`` is False:
    the runner reports progress itself).
    """

    def __init__(self, context: JobContext, stage: str, *, progress_lines: bool = True) -> None:
        self.context = context
        self.stage = stage
        self.progress_lines = progress_lines
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = re.split(r"[\r\n]", self.pending)
        for line in lines:
            self._line(line.strip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self._line(self.pending.strip())
        self.pending = ""

    def _line(self, line: str) -> None:
        if not line:
            return
        match = _FILE_PROGRESS.match(line)
        if match:  # "[i/n] <file name>: ..." — a name a job's record does not keep
            if self.progress_lines:
                self.context.progress(int(match[1]), int(match[2]), stage=self.stage)
            return
        self.context.log(line)
        staged = _STAGE_PROGRESS.search(line) if self.progress_lines else None
        if staged:
            self.context.progress(int(staged["done"]), int(staged["total"]), stage=staged["stage"].strip(),
                                  message=line)


def _stdout_result(text: str) -> dict[str, Any]:
    """A command's stdout as a result: its JSON lines (or one JSON document) parsed; the lines that are
    not JSON kept as text (the tail)."""
    stripped = text.strip()
    if stripped.startswith("{") and "\n{" not in stripped:
        try:
            return {"output": [json.loads(stripped)], "stdout": ""}
        except json.JSONDecodeError:
            pass
    values: list[Any] = []
    other: list[str] = []
    for line in text.splitlines():
        try:
            values.append(json.loads(line)) if line.strip().startswith(("{", "[")) else other.append(line)
        except json.JSONDecodeError:
            other.append(line)
    return {"output": values[:RESULT_ROWS_MAX], "stdout": "\n".join(other)[-_STDOUT_MAX_CHARS:]}


def _label_rows(values: list[Any]) -> list[Any]:
    """Rows naming a file by its path (``ood score``) named by its pseudonymous label instead, with ``index``."""
    from medlim.core.io.pseudonym import file_label

    labelled = []
    for index, value in enumerate(values, start=1):
        if isinstance(value, dict) and isinstance(value.get("file"), str):
            value = {**value, "file": file_label(value["file"]), "index": index}
        labelled.append(value)
    return labelled


def run_command(context: JobContext, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run a kind's foreground command (its own function) as the job.

    A command with ``--jsonl`` prints JSON lines in a job whatever its argv says, and rows that name files
    by their path get the file's pseudonymous label instead (``--pseudonymise-names`` already does).

    Returns:
        ``{"exit_code": 0, "output": [JSON values printed], "stdout": "the lines that are not JSON"}``.

    Raises:
        JobError: the command ended with a non-zero exit status.
    """
    job = context.job
    if job.kind == "train" and isinstance(context.checkpoint.get("result"), dict):
        return dict(context.checkpoint["result"])  # an earlier attempt finished the command: nothing runs twice
    args = parse_job_argv(job.kind, parameters, origin=job.origin)
    if hasattr(args, "jsonl"):
        args.jsonl = True
    stdout, stderr = io.StringIO(), _StderrToJob(context, stage=job.kind)
    context.progress(0, None, stage=job.kind, message="started")
    from medlim.core.io.pseudonym import withholding_names
    from medlim.core.paths import confining_to_data_roots

    confined = confining_to_data_roots() if job.origin == "page" else nullcontext()
    with _training_folder(context) as folder, redirect_stdout(stdout), redirect_stderr(stderr), withholding_names(), \
            confined:  # a page's dataset may not name files outside it and the data roots
        code = int(args.func(args) or 0)
    stderr.flush()
    if code != 0:
        if folder is not None:
            _drop_epochs(folder)  # the job fails for good: its epochs are of no use
        words = " ".join(command_words(job.kind, list(parameters.get("argv") or [])) or ())
        raise JobError(f"`medlim {words}` ended with exit status {code}; the job's log says why.")
    result = _stdout_result(stdout.getvalue())
    if hasattr(args, "jsonl") and not getattr(args, "pseudonymise_names", False):
        result["output"] = _label_rows(result["output"])
    if folder is not None:
        _finish_training_folder(context, folder, {"exit_code": code, **result})
    return {"exit_code": code, **result}


@contextmanager
def _training_folder(context: JobContext) -> Iterator[Path | None]:
    """A ``train`` job's resume folder (``MEDLIM_HOME/jobs/<id>``), named in ``MEDLIM_JOB_CHECKPOINT_DIR``.

    The harness saves its epochs there and records what it registered; each registration is also
    kept in the job's checkpoint in the store (and written back into the folder when a resumed
    attempt finds it missing, e.g. on another machine), so a resumed job never registers twice.
    Other kinds get ``None`` and no variable.
    """
    if context.job.kind != "train":
        yield None
        return
    from medlim.core import training_resume
    from medlim.core.jobs.model import JobLost

    identity = json.dumps({"job": context.job.id, "created_at": str(context.job.created_at),
                           "parameters": context.job.parameters}, sort_keys=True, default=str)
    folder = training_resume.job_training_folder(context.job.id, identity=identity)
    recorded = context.checkpoint.get("registered")
    if isinstance(recorded, list) and recorded and not training_resume.recorded_registrations(folder):
        training_resume.record_registrations(folder, recorded)

    def keep(rows: list[dict[str, str]]) -> None:
        context.save_checkpoint({**context.checkpoint, "registered": rows})

    token = training_resume.registration_listener.set(keep)
    previous = os.environ.get(training_resume.ENV_VARIABLE)
    os.environ[training_resume.ENV_VARIABLE] = str(folder)
    try:
        yield folder
    except Exception as exc:  # the job ends failed or cancelled (a killed process raises nothing here)
        if not isinstance(exc, JobLost):  # a lost lease: the attempt that owns the job now needs them
            _drop_epochs(folder)
        raise
    finally:
        training_resume.registration_listener.reset(token)
        if previous is None:
            os.environ.pop(training_resume.ENV_VARIABLE, None)
        else:
            os.environ[training_resume.ENV_VARIABLE] = previous


def _finish_training_folder(context: JobContext, folder: Path, result: dict[str, Any]) -> None:
    """Keep the finished command's result in the job's checkpoint, then drop the epoch files (the model is
    registered; a resumed attempt returns the kept result)."""
    context.save_checkpoint({**context.checkpoint, "result": result})
    _drop_epochs(folder)


def _drop_epochs(folder: Path) -> None:
    """Remove a training job's epoch files (``registered.json`` stays: it is small and proves what was written)."""
    for path in folder.glob("train-*.pt"):
        path.unlink(missing_ok=True)


def _bac_row(index: int, file: Any, outcome: Any, *, pseudonymised: bool, mask_written: bool | None) -> dict[str, Any]:
    """One file's row for the job's result: the command's row, named by its pseudonymous label."""
    from medlim.core.io.pseudonym import file_label

    row = dict(outcome.row())
    if not pseudonymised:
        row["file"] = file_label(str(file.path), content_sha256=outcome.content_sha256 or None)
    row["index"] = index
    if mask_written is not None:
        row["mask_written"] = mask_written
    return row


def _write_mask(args: argparse.Namespace, file: Any, outcome: Any) -> bool | None:
    """Write ``<stem>_bac.png`` as the foreground command does (``--out``); whether it was written."""
    if args.out is None or not outcome.ok or outcome.analysis is None:
        return None
    from medlim.errors import MedlimError
    from medlim.phantoms.base import save_png

    try:
        save_png(Path(args.out) / f"{file.stem}_bac.png", outcome.analysis.mask())
    except MedlimError:
        return False
    return True


@dataclass(frozen=True)
class BacJobRequest:
    """What a ``bac.quantify`` job was asked to do, as its runner reads it.

    Attributes:
        files: the files the command plans, in its order (a row's ``index`` is its place here, 1-based).
        weights: ``--weights`` as given (``None``: the task's default model).
        threshold, x: ``--threshold`` and ``--x`` (``None``: the weights').
        pixel_spacing_mm: ``--pixel-spacing`` (mm), or ``None`` for each file's.
    """

    files: tuple[Path, ...]
    weights: str | None
    threshold: float | None
    x: float | None
    pixel_spacing_mm: float | tuple[float, float] | None

    def file(self, index: int) -> Path:
        """The file of row ``index`` (1-based).

        Raises:
            JobError: no such row.
        """
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= len(self.files):
            raise JobError(f"the job has files 1 to {len(self.files)}; {index!r} is given.")
        return self.files[index - 1]


def bac_job_request(parameters: dict[str, Any], *, origin: str = "cli") -> BacJobRequest:
    """The request of a ``bac.quantify`` job (its argv parsed as the runner parses it; a page's paths confined).

    Raises:
        JobError: not a ``bac.quantify`` argv, or arguments the command refuses.
        InputError: a path that no longer exists.
    """
    from medlim.core.io.files import collect_files

    args = parse_job_argv("bac.quantify", parameters, origin=origin)
    return BacJobRequest(files=tuple(collect_files(args.inputs)), weights=args.weights, threshold=args.threshold,
                         x=args.x, pixel_spacing_mm=args.pixel_spacing)


def run_bac_quantify(context: JobContext, parameters: dict[str, Any]) -> dict[str, Any]:
    """``medlim bac quantify`` as a job: the foreground command's own loop, one progress step and log line per file.

    A resumed attempt turns ``--resume`` on, so the files stored by an earlier attempt are read back from the
    results store, not analysed again.

    A job started from a page also keeps each analysed view's probability map in the disk cache
    (:mod:`medlim.mammography.stored_analysis`), so the page opens any view of the finished batch without
    running the model again; a command-line job (a decade of archived exams) does not fill the cache.

    Returns:
        ``{"files": n, "ok": .., "failed": .., "analysed": .., "reused": .., "rows": [...], "exams": [...]}``;
        each row is the command's JSON row named by its pseudonymous label, with ``index`` (its place in the
        inputs); ``exams`` are the per-exam totals (:func:`medlim.mammography.batch_results.exam_rows`).
    """
    from medlim.cli.bac import _run as quantify_command
    from medlim.core.batch import output_folder
    from medlim.core.io.files import collect_files
    from medlim.mammography.batch_results import exam_rows

    args = parse_job_argv("bac.quantify", parameters, origin=context.job.origin)
    args.resume = bool(args.resume or (context.resumed and not args.no_store))
    if args.out is not None:
        output_folder(args.out)
    total = len(collect_files(args.inputs))  # the files the command plans, in its order
    if not total:
        raise JobError("no image files were found in the job's paths.")
    context.progress(int(context.checkpoint.get("done", 0)), total, stage="loading weights")
    stderr = _StderrToJob(context, stage="quantify", progress_lines=False)
    keep_maps = context.job.origin == "page"  # a page opens the views of its batch in its viewer
    with redirect_stderr(stderr):  # the command's "[i/n] <path>" lines stay out of logs; its notes go to the job's
        bac_model, pairs = quantify_command(args, keep_analysis=args.out is not None or keep_maps)
        counts, rows = _follow_bac_files(context, args, pairs, total, keep_maps_of=bac_model if keep_maps else None)
    stderr.flush()
    return {"files": total, **counts, "rows": rows, "exams": exam_rows(rows)}


def _keep_map(context: JobContext, args: argparse.Namespace, outcome: Any, bac_model: Any) -> None:
    """Keep an analysed view in the disk cache for the page's viewer (a failure to keep it is logged, not fatal)."""
    from medlim.errors import MedlimError
    from medlim.mammography.stored_analysis import store_analysis

    if not outcome.ok or outcome.analysis is None or not outcome.content_sha256:
        return
    try:
        store_analysis(outcome.content_sha256, bac_model, outcome.analysis, args.pixel_spacing)
    except (OSError, MedlimError) as exc:
        context.log(f"the probability map was not kept for the viewer ({type(exc).__name__})")


def _follow_bac_files(
    context: JobContext, args: argparse.Namespace, pairs: Any, total: int, *, keep_maps_of: Any = None
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Consume the command's ``(file, outcome)`` pairs: masks, rows, a log line, checkpoint and progress per file
    (and, with ``keep_maps_of`` — the weights — each analysed view kept for the page's viewer)."""
    counts = {"ok": 0, "failed": 0, "analysed": 0, "reused": 0}
    rows: list[dict[str, Any]] = []
    for index, (file, outcome) in enumerate(pairs, start=1):
        if keep_maps_of is not None:
            _keep_map(context, args, outcome, keep_maps_of)
        row = _bac_row(index, file, outcome, pseudonymised=args.pseudonymise_names,
                       mask_written=_write_mask(args, file, outcome))
        how = "failed" if not outcome.ok else "reused" if outcome.reused else "analysed"
        counts[how] += 1
        counts["ok"] += outcome.ok
        if len(rows) < RESULT_ROWS_MAX:
            rows.append(row)
        context.log(f"[{index}/{total}] {row['file']}: {how}")
        context.save_checkpoint({"done": index, "files": total})
        context.progress(index, total, stage="quantify", message=f"{index} of {total} files")
    return counts, rows
