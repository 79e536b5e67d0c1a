"""``medlim bac|steatosis|ood|retrieval evaluate --data DIR --table``: the Models page's evaluation tables as text.

The Models page runs a room's ``evaluate --data DIR ... --json`` as a job and
shows its JSON as tables (:func:`medlim.core.evaluations.evaluation_report`).
``--table`` prints the same tables from the same function: the command runs
as the page runs it (BAC: the trainer's cut-offs plus the model's own, from one
inference per view), its JSON is read back, and the report is printed with
what each column means underneath — the page's tooltips.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Mapping
from typing import Any

from medlim.errors import ParameterError

__all__ = ["add_table_option", "run_as_table"]


def add_table_option(parser: argparse.ArgumentParser, *, task: str) -> None:
    """Give an ``evaluate`` command ``--table`` for ``task`` (a key of :func:`evaluation_report`)."""
    parser.add_argument("--table", action="store_true",
                        help="with --data: print the Models page's tables (and what each column means) "
                             "instead of this command's own output")
    parser.set_defaults(table_task=task)


def _payload(text: str) -> Mapping[str, Any]:
    """The command's JSON object: the whole output, else its last line (progress goes to stderr)."""
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in (text, *lines[-1:]):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, Mapping):
            return value
    raise ParameterError("the evaluation printed no JSON object to make a table of.")


def run_as_table(args: argparse.Namespace) -> int:
    """Run the parsed ``evaluate`` command with ``--json`` and print its :class:`EvaluationReport` as text.

    Raises:
        ParameterError: ``--table`` without ``--data``, with ``--json``/``--jsonl``, or a BAC ``--threshold``.
    """
    from medlim.core.evaluations import evaluation_report, model_cutoff

    if getattr(args, "data", None) is None:
        raise ParameterError("--table shows the evaluation on your folder: give --data DIR.")
    if getattr(args, "json", False) or getattr(args, "jsonl", False):
        raise ParameterError("give --table or --json, not both.")
    task = args.table_task
    cutoff = None
    if task == "bac":
        if getattr(args, "threshold", None) is not None:
            raise ParameterError("--table sweeps the cut-offs (as the Models page does): give --thresholds, "
                                 "not --threshold.")
        from medlim.mammography.analysis import default_bac_weights

        cutoff = model_cutoff("bac", args.weights or default_bac_weights())
        if not getattr(args, "thresholds", None):
            args.thresholds = "grid" if cutoff is None else f"grid,{cutoff:g}"
    args.json = True
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        status = int(args.func(args) or 0)
    if status != 0:
        print(captured.getvalue(), end="")
        return status
    report = evaluation_report(task, _payload(captured.getvalue()), cutoff=cutoff)
    lines = report.lines()
    meanings = {column: text for table in report.tables for column, text in table.help.items()
                if column in table.columns}
    if meanings:
        lines += ["", "Columns:"] + [f"  {column}: {text}" for column, text in meanings.items()]
    print("\n".join(lines), flush=True)
    return 0
