"""``medlim weights list|verify|import``: the weights registry from the command line.

Calls the same functions as the app (``medlim.core.weights``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medlim.core.weights import IMPORTERS, Registry, import_checkpoint
from medlim.errors import ParameterError

__all__ = ["register"]


def _registry(args: argparse.Namespace) -> Registry:
    return Registry.load(args.weights_dir)


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ParameterError(f"--param must be KEY=VALUE (VALUE as JSON or text); {text!r} is given.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _cmd_list(args: argparse.Namespace) -> int:
    entries = _registry(args).list()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no weights registered in {_registry(args).directory}")
        return 0
    header = ("NAME", "VERSION", "TASK", "ARCHITECTURE", "PRESET", "OUTPUT", "THRESHOLDS", "FILE")
    rows = [
        (
            e.name,
            e.version,
            e.task,
            e.architecture,
            e.preset,
            e.output_type,
            ",".join(f"{k}={v:g}" for k, v in e.thresholds.items()) or "-",
            e.file,
        )
        for e in entries
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    results = _registry(args).verify_all(args.names or None)
    for result in results:
        detail = "" if result.ok else f" (file {result.entry.path}"
        if result.status == "mismatch":
            detail += f" has sha256 {result.actual_sha256}, manifest says {result.entry.sha256})"
        elif result.status == "missing":
            detail += " not found)"
        print(f"{result.entry.label}: {result.status}{detail}")
    if not results:
        print("no weights registered")
    return 0 if all(r.ok for r in results) else 1


def _cmd_import(args: argparse.Namespace) -> int:
    thresholds = {"output": args.threshold} if args.threshold is not None else None
    params = dict(_parse_param(p) for p in args.param) if args.param else None
    entry = import_checkpoint(
        args.checkpoint,
        importer=args.importer,
        name=args.name,
        version=args.version,
        preset=args.preset,
        output_type=args.output_type,
        thresholds=thresholds,
        params=params,
        registry=_registry(args),
    )
    print(f"imported {args.checkpoint} as {entry.label} -> {entry.path} (sha256 {entry.sha256})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list, verify and import model weights")
    parser.set_defaults(func=lambda _args: parser.print_help() or 1)
    commands = parser.add_subparsers(dest="weights_command", metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--weights-dir", type=Path, default=None, help="registry folder (default: MEDLIM_WEIGHTS_DIR or weights/)"
        )

    listing = commands.add_parser("list", help="registered weights")
    listing.add_argument("--json", action="store_true", help="print the manifest entries as JSON")
    common(listing)
    listing.set_defaults(func=_cmd_list)

    verify = commands.add_parser("verify", help="check files against their sha256 (exit 1 on any mismatch)")
    verify.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all)")
    common(verify)
    verify.set_defaults(func=_cmd_verify)

    importing = commands.add_parser(
        "import", help="convert an external checkpoint into the registry (explicit key mapping, strict load)"
    )
    importing.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    importing.add_argument("--importer", required=True, help=f"key mapping to use ({', '.join(sorted(IMPORTERS))})")
    importing.add_argument("--name", required=True, help="name of the new registry entry")
    importing.add_argument("--version", default="1", help="version of the new entry (default 1)")
    importing.add_argument("--preset", default=None, help="preprocessing preset (default: the importer's)")
    importing.add_argument(
        "--output-type",
        choices=("raw", "probability"),
        default=None,
        help="meaning of the output (default: the importer's)",
    )
    importing.add_argument(
        "--threshold", type=float, default=None, help="cut-off on the model output (default: the importer's)"
    )
    importing.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="inference parameter (repeatable; VALUE parsed as JSON), replaces the importer's params",
    )
    common(importing)
    importing.set_defaults(func=_cmd_import)
