"""``medlim bac|nuclei|steatosis evaluate --data DIR``: the thesis-protocol tables on a user's ground truth (issue 12).

Each room's ``evaluate`` command evaluates phantoms by default; with ``--data
DIR`` it reads the user's annotated folder instead (checked as ``medlim data
check`` checks it; a small folder is fine) and prints the same tables from the
same metric functions, or with ``--json`` one JSON object for machines. The
folder is named by its dataset fingerprint in the output, never by its path.

Each room's command module wires two functions in: ``add_*_data_evaluation``
adds ``--data`` (and what only it needs) to its ``evaluate`` parser, and
``run_*_data_evaluation`` runs when ``--data`` is given. Nothing here imports
torch at import time.
"""

from __future__ import annotations

import argparse
import json
import sys

from medlim.errors import ParameterError

__all__ = [
    "parse_cutoffs",
    "print_sweep",
    "add_bac_data_evaluation",
    "run_bac_data_evaluation",
    "add_nuclei_data_evaluation",
    "run_nuclei_data_evaluation",
    "add_steatosis_data_evaluation",
    "run_steatosis_data_evaluation",
]

#: Registry task of steatosis models.
STEATOSIS_TASK = "steatosis-instance-segmentation"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _add_common(parser: argparse.ArgumentParser, *, folder: str, json_flag: bool) -> None:
    from pathlib import Path

    parser.add_argument("--data", type=Path, default=None,
                        help=f"evaluate on your folder instead of phantoms: {folder}")
    parser.add_argument("--skip-bad", action="store_true",
                        help="with --data: leave out the rows with problems (reported) instead of refusing the folder")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="with --data: print the summary as one JSON object")


def _print(result, *, as_json: bool) -> int:  # result: an evaluation with to_json() and table_lines()
    if as_json:
        print(json.dumps(result.to_json(), allow_nan=False, ensure_ascii=False), flush=True)
    else:
        for line in result.table_lines():
            print(line, flush=True)
    return 0


def parse_cutoffs(text: str) -> list[float]:
    """``--thresholds 0.5,0.6,…``: the cut-offs in the order given; ``grid`` among them stands for the trainer's grid.

    ``grid,0.65`` is the grid plus the model's own cut-off (what the Models page sweeps); a value given twice
    counts once.
    """
    from medlim.mammography.selection import WHOLE_VIEW_CUTOFFS

    values: list[float] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token.lower() == "grid":
            values += WHOLE_VIEW_CUTOFFS
            continue
        try:
            values.append(float(token))
        except ValueError:
            raise ParameterError(f"--thresholds takes cut-offs in [0, 1], comma-separated, or `grid`; {text!r} is given.")
    if not values:
        raise ParameterError("--thresholds needs at least one cut-off.")
    outside = [v for v in values if not 0.0 <= v <= 1.0]
    if outside:
        raise ParameterError(f"probability cut-offs must be in [0, 1]; {', '.join(f'{v:g}' for v in outside)} given.")
    return list(dict.fromkeys(values))


def print_sweep(sweep, *, as_json: bool) -> int:  # sweep: medlim.mammography.sweep.BacSweep
    """The sweep as one JSON object (``--json``) or a table."""
    if as_json:
        print(json.dumps(sweep.to_json(), allow_nan=False, ensure_ascii=False), flush=True)
    else:
        print("\n".join(sweep.table_lines()), flush=True)
    return 0


def add_bac_data_evaluation(parser: argparse.ArgumentParser) -> None:
    """Add ``--data DIR`` and ``--skip-bad`` to ``medlim bac evaluate`` (it has ``--weights``, ``--json`` …)."""
    _add_common(parser, folder="DIR/manifest.csv with image,mask (DICOM or PNG views, binary BAC masks) or a "
                               "Decathlon DIR/dataset.json", json_flag=False)


def run_bac_data_evaluation(args: argparse.Namespace) -> int:
    """``medlim bac evaluate --data DIR [--weights NAME] [--threshold T | --thresholds T,…|grid] [--x X] [--json]``."""
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import evaluate_bac_data
    from medlim.mammography.sweep import sweep_bac_data

    thresholds = getattr(args, "thresholds", None)
    if thresholds and getattr(args, "threshold", None) is not None:
        raise ParameterError("give one --threshold or several --thresholds, not both.")
    cutoffs = parse_cutoffs(thresholds) if thresholds else None  # refused before the model is loaded
    bac_model = load_bac_model(getattr(args, "weights", None), device=getattr(args, "device", None))
    if cutoffs is not None:
        sweep = sweep_bac_data(bac_model, args.data, thresholds=cutoffs, x=getattr(args, "x", None),
                               skip_bad=args.skip_bad, progress=_progress,
                               pixel_spacing_mm=getattr(args, "pixel_spacing", None))
        return print_sweep(sweep, as_json=bool(getattr(args, "json", False)))
    result = evaluate_bac_data(bac_model, args.data, threshold=getattr(args, "threshold", None),
                               x=getattr(args, "x", None), skip_bad=args.skip_bad, progress=_progress,
                               pixel_spacing_mm=getattr(args, "pixel_spacing", None))
    return _print(result, as_json=bool(getattr(args, "json", False)))


def add_nuclei_data_evaluation(parser: argparse.ArgumentParser) -> None:
    """Add ``--data DIR``, ``--skip-bad`` and ``--json`` to ``medlim nuclei evaluate``."""
    _add_common(parser, folder="DIR/manifest.csv with image,instances (fluorescence images, DAPI in blue; uint16 "
                               "instance labels, 0 = background)", json_flag=True)


def run_nuclei_data_evaluation(args: argparse.Namespace) -> int:
    """``medlim nuclei evaluate --data DIR [--json]``: the thesis method and the watershed baseline."""
    from medlim.microscopy.nuclei.evaluation import evaluate_nuclei_data

    result = evaluate_nuclei_data(args.data, skip_bad=args.skip_bad, progress=_progress)
    return _print(result, as_json=bool(getattr(args, "json", False)))


def add_steatosis_data_evaluation(parser: argparse.ArgumentParser) -> None:
    """Add ``--data DIR``, ``--skip-bad`` and ``--json`` to ``medlim steatosis evaluate``."""
    _add_common(parser, folder="DIR/manifest.csv with image,instances (H&E images; uint16 droplet labels, "
                               "0 = background)", json_flag=True)


def _steatosis_model(args: argparse.Namespace):  # -> SteatosisModel | None
    """The model ``--weights`` names (default: the task's default), or None for ``--weights none``."""
    from medlim.core.weights import Registries
    from medlim.microscopy.steatosis.analysis import (
        DEFAULT_STEATOSIS_WEIGHTS,
        load_steatosis_model,
    )

    weights = getattr(args, "weights", None)
    if weights is not None and weights.strip().lower() == "none":
        return None
    registries = Registries.load(weights_dir=getattr(args, "weights_dir", None),
                                 models_dir=getattr(args, "models_dir", None))
    entry = (registries.find(weights) if weights is not None
             else registries.default(STEATOSIS_TASK) or registries.get(DEFAULT_STEATOSIS_WEIGHTS))
    return load_steatosis_model(f"{entry.name}:{entry.version}", registry=registries,
                                device=getattr(args, "device", None))


def run_steatosis_data_evaluation(args: argparse.Namespace) -> int:
    """``medlim steatosis evaluate --data DIR [--weights NAME|none] [--json]``: weak labels and the network."""
    from medlim.microscopy.steatosis.evaluation import evaluate_steatosis_data

    model = _steatosis_model(args)
    result = evaluate_steatosis_data(
        None if model is None else model.model, args.data, weights=None if model is None else model.label,
        device=getattr(args, "device", None), tile=1024 if model is None else model.tile,
        overlap=128 if model is None else model.overlap, skip_bad=args.skip_bad, progress=_progress)
    return _print(result, as_json=bool(getattr(args, "json", False)))
