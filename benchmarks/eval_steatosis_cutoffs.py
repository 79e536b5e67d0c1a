"""Accuracy of the steatosis % of tissue under each cutoff preset, on H&E phantoms (issues 13 and 17).

Issue 13 asks that, at the page's and CLI's default cutoffs, the steatosis %
of tissue (kept droplet area ÷ tissue area) lies within 3 percentage points of
the truth on average (mean absolute error) and falls in the right NASH-CRN and
donor bands on ≥ 90 % of tiles. The truth is the phantom's exact droplet area
÷ its tissue area (:attr:`medlim.phantoms.he.HEPhantom.steatosis_fraction`).

Protocol: the shipped model (registry default ``maskrcnn-steatosis``) runs once
per 1024² phantom (the steps of :func:`medlim.microscopy.steatosis.analysis.analyse_image`,
exactly as the page and ``medlim steatosis segment`` run it); cutoffs are then
applied to the cached droplet table. Seeds 7000–7007 are the *validation* set:
``--select`` searches a small grid of cutoffs on them only and prints the best
(that is how :data:`~medlim.microscopy.steatosis.droplets.DEFAULT_CUTOFFS` was
chosen). Seeds 9000–9007 are *held out*: the report compares the ``thesis``
and ``default`` presets there, once, beside "every detection" (no cutoff at
all: the floor the cutoffs cannot beat, set by the network's masks).

Run: ``python benchmarks/eval_steatosis_cutoffs.py [--split validation|held-out|both] [--select]
[--size 1024] [--n 8] [--cache DIR] [--json]`` (about 30 s per 1024² tile on 2 CPU threads).

Recorded (``maskrcnn-steatosis@2``, 8 + 8 tiles of 1024², CPU; truth 24–42 % on validation,
3.9–67.7 % held out)::

    split       cutoffs          MAE (pp)  bias (pp)  NASH-CRN right  donor right  both right
    validation  default              4.70      -4.70             50 %         88 %        50 %
    validation  thesis              10.95     -10.95             25 %         50 %        25 %
    held-out    default              8.96      -7.45             62 %         88 %        62 %
    held-out    thesis              12.85     -12.85             62 %         62 %        62 %

"every detection" equals ``default`` on both splits (the default sets no limit). The issue 13
target (MAE ≤ 3 pp, bands ≥ 90 %) is not met by cutoffs alone: the network's masks miss the
droplets' one-pixel rim, a 1024² tile is capped at 1,000 detections (dense held-out tiles at
64.5 % and 67.7 % read 44.0 % and 36.4 %), and at < 5 % steatosis faint false detections
over-read (3.9 % → 7.6 %).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medlim.microscopy.steatosis.droplets import (  # noqa: E402
    BUILTIN_PRESETS,
    DONOR_BANDS,
    NASH_CRN_BANDS,
    Cutoffs,
    DropletTable,
    apply_cutoffs,
    grade,
)

#: First seed of each split; tile ``i`` of a split is ``generate_he(first + i)``.
SPLITS = {"validation": 7000, "held-out": 9000}
#: No cutoff at all: every detection the network returned (score ≥ 0.05).
EVERYTHING = Cutoffs(min_score=0.0)


@dataclass(frozen=True)
class Tile:
    """One phantom's detections and truth."""

    seed: int
    table: DropletTable
    truth_percent: float


@dataclass(frozen=True)
class Accuracy:
    """Steatosis % of tissue against the truth over a set of tiles.

    Attributes:
        mae_pp: mean absolute error in percentage points.
        bias_pp: mean signed error (medlim − truth) in percentage points.
        nash_crn: fraction of tiles in the right NASH-CRN band.
        donor: fraction of tiles in the right donor band.
        both: fraction of tiles right in both bands.
    """

    mae_pp: float
    bias_pp: float
    nash_crn: float
    donor: float
    both: float


def accuracy(measured_percent: np.ndarray, truth_percent: np.ndarray) -> Accuracy:
    """MAE, bias and band agreement of measured against true steatosis percentages (``float[n]`` each)."""
    measured = np.asarray(measured_percent, np.float64)
    truth = np.asarray(truth_percent, np.float64)
    nash = np.array([grade(m, NASH_CRN_BANDS) == grade(t, NASH_CRN_BANDS) for m, t in zip(measured, truth)])
    donor = np.array([grade(m, DONOR_BANDS) == grade(t, DONOR_BANDS) for m, t in zip(measured, truth)])
    return Accuracy(mae_pp=float(np.abs(measured - truth).mean()), bias_pp=float((measured - truth).mean()),
                    nash_crn=float(nash.mean()), donor=float(donor.mean()), both=float((nash & donor).mean()))


def percents(tiles: list[Tile], cutoffs: Cutoffs) -> np.ndarray:
    """Steatosis % of tissue of every tile under ``cutoffs``."""
    return np.array([100.0 * apply_cutoffs(tile.table, cutoffs).steatosis_fraction for tile in tiles])


def load_tiles(split: str, *, n: int, size: int, cache: Path | None, log=print) -> list[Tile]:
    """Run the shipped model on the split's phantoms, as the page does (raw detections may come from ``cache``)."""
    from medlim.microscopy.steatosis.analysis import analysis_from_detections, load_steatosis_model
    from medlim.microscopy.steatosis.inference import detect_droplets
    from medlim.phantoms.he import generate_he

    model = None
    tiles = []
    for seed in range(SPLITS[split], SPLITS[split] + n):
        phantom = generate_he(seed, size=(size, size))
        path = None if cache is None else cache / f"steatosis_{seed}_{size}.npz"
        if path is not None and path.is_file():
            stored = np.load(path)
            labels, scores, label = stored["labels"], stored["scores"], str(stored["model"])
        else:
            model = model or load_steatosis_model(device="cpu")
            found = detect_droplets(model.model, phantom.image, tile=model.tile, overlap=model.overlap,
                                    min_score=0.05)  # the arguments of analyse_image
            labels, scores, label = found.labels, found.scores, model.label
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(path, labels=labels, scores=scores, model=label)
        analysis = analysis_from_detections(phantom.image, labels, scores, seconds=0.0, model=label)
        tiles.append(Tile(seed=seed, table=analysis.table, truth_percent=100.0 * phantom.steatosis_fraction))
        log(f"{split} seed {seed} ({label}): {len(analysis.table)} detections on tissue, "
            f"truth {tiles[-1].truth_percent:.1f} %")
    return tiles


def candidate_cutoffs() -> list[Cutoffs]:
    """The grid ``--select`` searches (robust reference; open-ended where the thesis bounds large droplets)."""
    grid = []
    for min_score, area_low, area_high, eccentricity_high in itertools.product(
        (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.0, 0.05, 0.1, 0.2), (6.0, 10.0, float("inf")),
        (1.5, 1.8, float("inf")),
    ):
        grid.append(Cutoffs(area=(area_low, area_high), eccentricity=(0.0, eccentricity_high), min_score=min_score,
                            reference="scored"))
    return grid


def select(tiles: list[Tile]) -> list[tuple[Accuracy, Cutoffs]]:
    """Grid candidates ranked by validation MAE (then by band agreement); best first."""
    truth = np.array([tile.truth_percent for tile in tiles])
    scored = [(accuracy(percents(tiles, c), truth), c) for c in candidate_cutoffs()]
    return sorted(scored, key=lambda pair: (round(pair[0].mae_pp, 3), -pair[0].both))


def table_rows(split: str, tiles: list[Tile]) -> list[dict[str, object]]:
    """One row per preset (and "every detection") with its accuracy on ``tiles``."""
    truth = np.array([tile.truth_percent for tile in tiles])
    rows = []
    for name, cutoffs in [*BUILTIN_PRESETS.items(), ("every detection", EVERYTHING)]:
        measured = percents(tiles, cutoffs)
        result = accuracy(measured, truth)
        rows.append({"split": split, "cutoffs": name, "tiles": len(tiles), "mae_pp": round(result.mae_pp, 2),
                     "bias_pp": round(result.bias_pp, 2), "nash_crn_right": round(result.nash_crn, 3),
                     "donor_right": round(result.donor, 3), "both_right": round(result.both, 3),
                     "truth_percent": [round(t, 1) for t in truth], "medlim_percent": [round(m, 1) for m in measured]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("validation", "held-out", "both"), default="both")
    parser.add_argument("--select", action="store_true", help="grid-search cutoffs on the validation split")
    parser.add_argument("--n", type=int, default=8, help="tiles per split (default 8)")
    parser.add_argument("--size", type=int, default=1024, help="tile side in px (default 1024)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep detections in between runs")
    parser.add_argument("--json", action="store_true", help="JSON Lines, one row per split and preset")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    splits = ["validation", "held-out"] if args.split == "both" else [args.split]
    if args.select:
        tiles = load_tiles("validation", n=args.n, size=args.size, cache=args.cache, log=log)
        for result, cutoffs in select(tiles)[:10]:
            print(f"MAE {result.mae_pp:5.2f} pp  bias {result.bias_pp:+5.2f}  bands {result.both:.2f}  {cutoffs}")
        return 0
    for split in splits:
        rows = table_rows(split, load_tiles(split, n=args.n, size=args.size, cache=args.cache, log=log))
        for row in rows:
            if args.json:
                print(json.dumps(row))
            else:
                print(f"{row['split']:10s} {row['cutoffs']:16s} {row['tiles']} tiles {args.size}²  "
                      f"MAE {row['mae_pp']:5.2f} pp  bias {row['bias_pp']:+6.2f} pp  NASH-CRN right "
                      f"{row['nash_crn_right']:.0%}  donor right {row['donor_right']:.0%}  both {row['both_right']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
