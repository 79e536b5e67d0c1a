"""Job kinds: a name (``"bac.quantify"``) mapped to the runner function that does the work.

The core knows no room: the table of kinds lives outside it, in
:data:`KINDS_TABLE` (``medlim.cli.job_kinds.KINDS``: ``kind → "module:function"``),
and is read lazily with :mod:`importlib` when a job is submitted or run. A
runner has the signature ``runner(context: JobContext, parameters: dict) ->
dict | None``; what it returns is stored as the job's result.

To add a kind: write the runner (calling the same service as the foreground
command) and add a line to ``KINDS`` in ``medlim/cli/job_kinds.py``.
:func:`register_kind` adds one in this process only (tests, plug-ins): a worker
runs each job in a child process, which sees only the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from medlim.errors import JobError

__all__ = ["KINDS_TABLE", "Runner", "job_kinds", "register_kind", "resolve_runner"]

#: ``module:attribute`` of the table of kinds (a ``dict[str, str]`` of ``kind → "module:function"``).
KINDS_TABLE = "medlim.cli.job_kinds:KINDS"

#: A job's work: gets its :class:`~medlim.core.jobs.context.JobContext` and parameters, returns the
#: result (JSON) or ``None``. (The context is ``Any`` here so that this module, which the queue
#: reads, does not import the context, which writes through the queue.)
Runner = Callable[[Any, dict[str, Any]], "dict[str, Any] | None"]

_registered: dict[str, str] = {}


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise JobError(f"the job machinery cannot load {target!r} ({type(exc).__name__}).") from exc


def job_kinds() -> dict[str, str]:
    """Every known kind and its runner's ``module:function``."""
    return {**dict(_load(KINDS_TABLE)), **_registered}


def register_kind(kind: str, target: str) -> None:
    """Add (or replace) a kind in this process: ``target`` is ``"module:function"``."""
    if ":" not in target:
        raise JobError(f"a job runner is named 'module:function'; {target!r} is given.")
    _registered[str(kind)] = target


def resolve_runner(kind: str) -> Runner:
    """The runner function of ``kind``.

    Raises:
        JobError: the kind is unknown or its runner cannot be imported.
    """
    target = job_kinds().get(kind)
    if target is None:
        raise JobError(f"there is no job kind {kind!r}; known kinds: {', '.join(sorted(job_kinds()))}.")
    runner = _load(target)
    if not callable(runner):
        raise JobError(f"the runner of job kind {kind!r} ({target}) is not a function.")
    return runner
