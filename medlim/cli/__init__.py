"""The ``medlim`` command line: subcommands registered by small modules.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``register(subparsers)`` that
adds its parser and sets ``func`` (taking the parsed namespace, returning an exit
code). Command functions call the same ``medlim`` functions the pages call.
Errors a user can act on (``MedlimError``) print a message and exit 2.
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
    "train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medlim",
        description="medlim: medical image analysis workbench (research use only).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"medlim.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"medlim.cli.{name}":
                continue  # that room has no command line yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except MedlimError as exc:
        print(f"medlim: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("medlim: interrupted", file=sys.stderr)
        return 130
