"""``medlim data check DIR``: validate a dataset before any training.

Issue 12 ("Datasets a user brings"): prints a summary (counts per class or
label, patients, sizes, spacing, masks, the validation split and the dataset's
fingerprint) and one line per problem; ``--json`` prints one object
``{"summary", "problems", "fingerprint", "split"}``. Exit status 0 when nothing
is wrong, 1 when problems were found, 2 when the command is misused (no such
folder, unknown task). Trainers run the same :func:`medlim.core.datasets.check_dataset`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TextIO

from medlim.core.datasets import (
    DEFAULT_VAL_FRACTION,
    PROBLEM_KINDS,
    TASK_LAYOUTS,
    DatasetCheck,
    DatasetFingerprint,
    DatasetProblem,
    check_dataset,
    dataset_fingerprint,
    open_dataset,
)
from medlim.core.text import escape_control

__all__ = ["register", "label_list", "check_lines"]


def label_list(text: str) -> tuple[str, ...]:
    """``--labels A,B,C`` as ``("A", "B", "C")`` (spaces around names removed).

    Raises:
        argparse.ArgumentTypeError: an empty list or an empty name.
    """
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"give label names separated by commas (e.g. A,B,C), not {text!r}")
    return names


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"the seed must be a non-negative integer, not {text!r}")
    return value


def _problem_line(problem: DatasetProblem) -> str:
    where = [f"row {problem.row}"] if problem.row is not None else []
    if problem.item is not None:
        where.append(problem.item)
    place = f" [{', '.join(where)}]" if where else ""
    return f"  {problem.kind}{place}: {escape_control(problem.message)}"


def check_lines(check: DatasetCheck, fingerprint: DatasetFingerprint | None) -> list[str]:
    """The text report: the summary (:meth:`DatasetSummary.rows`, the Models page's wording), one line per problem,
    then a verdict."""
    rows = check.summary.rows(split=check.split, fingerprint=fingerprint.id if fingerprint else None)
    lines = [f"{what}: {value}" for what, value in rows]
    if check.ok:
        lines.append("No problems found.")
    else:
        lines.append(f"{len(check.problems)} problem(s):")
        lines.extend(_problem_line(problem) for problem in check.problems)
    return lines


def _progress_line(stream: TextIO) -> Callable[[int, int], None]:
    """A progress callback writing ``checked done/total images`` on one line of ``stream``."""

    def report(done: int, total: int) -> None:
        stream.write(f"\rchecked {done}/{total} images")
        if done == total:
            stream.write("\n")
        stream.flush()

    return report


def _run_check(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.directory, task=args.task)
    progress = _progress_line(sys.stderr) if not args.json and sys.stderr.isatty() else None
    check = check_dataset(
        dataset, task=args.task, labels=args.labels, read_pixels=not args.no_decode, seed=args.seed, progress=progress
    )
    fingerprint = dataset_fingerprint(dataset, check=check) if not args.no_decode else None
    if args.json:
        document = check.to_json()
        document["fingerprint"] = fingerprint.to_json() if fingerprint else None
        ordered = {key: document[key] for key in ("summary", "problems", "fingerprint", "split")}
        sys.stdout.write(json.dumps(ordered, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n".join(check_lines(check, fingerprint)) + "\n")
    return 0 if check.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` (with subcommand ``check``) to the ``medlim`` command line."""
    data = subparsers.add_parser("data", help="check the datasets you bring before training")
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda _args: data.print_help() or 1)
    kinds = "\n".join(f"  {kind}: {meaning}" for kind, meaning in PROBLEM_KINDS.items())
    tasks = "\n".join(f"  {task}: {', '.join(layouts)}" for task, layouts in TASK_LAYOUTS.items())
    check = data_commands.add_parser(
        "check",
        help="summarise a dataset folder and list every problem (exit 1 when there are problems)",
        description=(
            "Summarise a dataset folder (classes or labels, patients, sizes, pixel spacing, masks, the "
            f"validation split of {DEFAULT_VAL_FRACTION:.0%} and the dataset's fingerprint) and print one line "
            "per problem. Layouts: DIR/manifest.csv (file,class | file,labels | image,mask | image,instances; "
            "optional site, patient, shift_type), a Decathlon DIR/dataset.json, class folders DIR/<class>/*, "
            "or a plain folder of images; a manifest wins over sub-folders."
        ),
        epilog=(
            "exit status: 0 no problems, 1 problems found, 2 misuse (no such folder, unknown task).\n\n"
            f"layouts each task accepts:\n{tasks}\n\nproblems reported:\n{kinds}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("directory", metavar="DIR", help="the dataset folder")
    check.add_argument("--task", choices=tuple(TASK_LAYOUTS), default=None,
                       help="check for this task's trainer (its accepted layouts)")
    check.add_argument("--labels", type=label_list, default=None, metavar="A,B,C",
                       help="the label set of the model: a class or label outside it is a problem")
    check.add_argument("--seed", type=_seed, default=0, help="seed of the validation split (default 0)")
    check.add_argument("--no-decode", action="store_true",
                       help="only check that files exist (no sizes, spacing, masks or fingerprint; fast)")
    check.add_argument("--json", action="store_true",
                       help='print one JSON object {"summary", "problems", "fingerprint", "split"}')
    check.set_defaults(func=_run_check)
