"""``medlim phantom <kind> --out DIR --n N --seed S [options]``: write synthetic phantoms.

Issue 2 ("Phantoms"): images, ground-truth masks (PNG) and a manifest
(``manifest.json`` with the seed and parameters, ``manifest.csv`` with one row
per written file) from the seeded generators of :mod:`medlim.phantoms`.
A progress line goes to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from medlim.errors import ParameterError

__all__ = ["register", "run_phantom"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medlim phantom`` with one sub-parser per registered kind."""
    from medlim.phantoms.registry import KINDS, get_kind

    parser = subparsers.add_parser("phantom", help="write synthetic phantoms with exact ground truth",
                                   description="Write seeded synthetic phantoms (images, masks, manifest).")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    for name in KINDS:
        try:
            kind = get_kind(name)
        except ParameterError:
            continue  # a kind whose module is not written yet
        sub = kinds.add_parser(name, help=kind.summary, description=kind.summary)
        sub.add_argument("--out", type=Path, required=True, help="output folder (created)")
        sub.add_argument("--n", type=int, default=None, help="number of phantoms (images)")
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--quiet", action="store_true", help="no progress line")
        if kind.add_arguments is not None:
            kind.add_arguments(sub)
        sub.set_defaults(func=run_phantom, phantom_kind=name)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _count(args: argparse.Namespace, generate_params: dict[str, Any]) -> int:
    patients = getattr(args, "patients", None)
    if patients is not None:
        if patients < 1:
            raise ParameterError(f"--patients must be at least 1, {patients} is given.")
        per_patient = 4 * int(generate_params.get("years", 1))
        total = patients * per_patient
        return total if args.n is None else min(args.n, total)
    if args.n is None:
        raise ParameterError("give --n (number of phantoms)" + (" or --patients" if hasattr(args, "patients") else "") + ".")
    if args.n < 0:
        raise ParameterError(f"--n must be non-negative, {args.n} is given.")
    return args.n


def _command_line(args: argparse.Namespace) -> str:
    """The ``medlim phantom`` command that reproduces this run (from the parsed options)."""
    parts = ["medlim", "phantom", args.phantom_kind]
    skip = {"func", "command", "kind", "phantom_kind", "quiet"}
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        flag = "--" + ("format" if key == "fmt" else key.replace("_", "-"))
        parts.append(flag if value is True else f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def run_phantom(args: argparse.Namespace) -> int:
    """Generate and write ``n`` phantoms of ``args.phantom_kind``; returns the exit status."""
    from medlim.phantoms.base import write_manifest
    from medlim.phantoms.registry import get_kind

    kind = get_kind(args.phantom_kind)
    if kind.split_arguments is not None:
        generate_params, write_options = kind.split_arguments(args)
    else:
        generate_params, write_options = {}, {}
    n = _count(args, generate_params)
    if args.seed < 0:
        raise ParameterError(f"--seed must be non-negative, {args.seed} is given.")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for index, phantom in enumerate(kind.iter_phantoms(n=n, seed=args.seed, **generate_params)):
        written = kind.write_one(phantom, out_dir, stem=f"{kind.name}_{index:05d}", **write_options)
        for row in written:
            rows.append({"index": index, **row})
        if not args.quiet:
            print(f"\rmedlim phantom {kind.name}: {index + 1}/{n}", end="", file=sys.stderr, flush=True)
    if not args.quiet:
        print(file=sys.stderr)
    command = _command_line(args)
    write_manifest(rows, out_dir, kind=kind.name, seed=args.seed,
                   params={**generate_params, **write_options, "n": n}, command=command)
    return 0
