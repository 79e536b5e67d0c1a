"""The ``medlim`` command line: subcommands registered by small modules.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``register(subparsers)`` that
adds its parser and sets ``func`` (taking the parsed namespace, returning an exit
code). Command functions call the same ``medlim`` functions the pages call.
Errors a user can act on (``MedlimError``, a bad ``MEDLIM_*`` variable among
them) print a message and exit 2.

Only the module of the command being run is imported (each is named like its
command): ``medlim image info`` does not load torch, FAISS or scikit-learn,
whose imports alone cost hundreds of MiB (issue 14). ``medlim --help`` and an
unknown command load them all, to list every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medlim.errors import MedlimError

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

#: Modules under ``medlim.cli`` that add subcommands, in help order.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "info",
    "image",
    "weights",
    "phantom",
    "bac",
    "nuclei",
    "steatosis",
    "ood",
    "shift",
    "retrieval",
    "data",
    "train",
    "jobs",
    "worker",
)


def build_parser(commands: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The ``medlim`` parser with the subcommands of ``commands`` (all of :data:`SUBCOMMAND_MODULES` when ``None``)."""
    parser = argparse.ArgumentParser(
        prog="medlim",
        description="medlim: medical image analysis workbench (research use only).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES if commands is None else commands:
        try:
            module = importlib.import_module(f"medlim.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"medlim.cli.{name}":
                continue  # that room has no command line yet
            raise
        module.register(subparsers)
    return parser


def _commands_for(argv: list[str]) -> tuple[str, ...] | None:
    """Just the command named first in ``argv`` when it is one of ours, else ``None`` (all of them)."""
    if argv and argv[0] in SUBCOMMAND_MODULES:
        return (argv[0],)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (0 ok, 1 nothing to do, 2 misuse or a ``MedlimError``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_commands_for(argv))
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        if getattr(args, "background", False):  # queue it for a worker (issue 15)
            from medlim.cli.jobs import submit_background

            return submit_background(args, argv)
        if getattr(args, "table", False):  # the Models page's tables of an evaluation (issue 12)
            from medlim.cli.evaluation_table import run_as_table

            return run_as_table(args)
        return int(args.func(args) or 0)
    except MedlimError as exc:
        print(f"medlim: {exc.message}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "medlim: not enough memory to finish; work on fewer or smaller images, or lower "
            "MEDLIM_DECODE_BUDGET_MB so that images too large for this computer are refused before decoding.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("medlim: interrupted", file=sys.stderr)
        return 130
