"""``--engine local|ray``, ``--ray-workers`` and ``--ray-reading``: the options of the batch commands that can scale out on Ray.

``medlim bac quantify`` (and ``longitudinal``/``report``), ``ood score``, the
scoring stage of ``shift run`` and ``retrieval build`` add them
(:mod:`medlim.core.engines`; issue 15).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medlim.core.engines import Engine

__all__ = ["add_engine_options", "engine_of"]


def _workers(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--ray-workers must be a positive integer, {text!r} is given")
    return int(text)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--engine``, ``--ray-workers`` and ``--ray-reading`` to a batch command."""
    parser.add_argument("--engine", choices=("local", "ray"), default=None,
                        help="where the per-file work runs: local (this process) or ray (the model in Ray actors, files read "
                             "as --ray-reading says; Ray starts here unless MEDLIM_RAY_ADDRESS names a cluster) "
                             "(default: MEDLIM_ENGINE, else local)")
    parser.add_argument("--ray-workers", type=_workers, default=None, metavar="N",
                        help="with --engine ray: model workers when the cluster has no GPU (one per GPU otherwise; "
                             "default: MEDLIM_RAY_WORKERS, else 2)")
    parser.add_argument("--ray-reading", choices=("auto", "tasks", "actors"), default=None,
                        help="with --engine ray: where files are read — in Ray CPU tasks (tasks) or inside the model "
                             "workers (actors); auto: tasks when the cluster has GPUs, actors without (on a CPU-only "
                             "machine a reading task costs more than the read) (default: MEDLIM_RAY_READING, else auto)")


def engine_of(args: argparse.Namespace) -> Engine:
    """The engine the options (else the settings) ask for."""
    from medlim.core.engines import engine_from_settings

    return engine_from_settings(getattr(args, "engine", None), workers=getattr(args, "ray_workers", None),
                                reading=getattr(args, "ray_reading", None))
