"""Accuracy of the steatosis % of tissue under each cutoff preset, on H&E phantoms (issues 13 and 17).

Issue 13 asks that, at the page's and CLI's default cutoffs, the steatosis %
of tissue (kept droplet area ÷ tissue area) lies within 3 percentage points of
the truth on average (mean absolute error) and falls in the right NASH-CRN and
donor bands on ≥ 90 % of tiles. The truth is the phantom's exact droplet area
÷ its tissue area (:attr:`medlim.phantoms.he.HEPhantom.steatosis_fraction`), tissue as issue 13 defines it:
the section without glass, vein lumina, tears and sinusoid lumina; medlim's tissue mask leaves out the thin pale
channels it finds (:func:`medlim.microscopy.steatosis.droplets.thin_pale_channels`, about half of the lumina on
the validation phantoms). Each split also reports the earlier measurement on the same detections, lumina
counted as tissue by both sides ("default, lumina as tissue").

Protocol: the shipped model (registry default ``maskrcnn-steatosis``, with the inference settings its
manifest records: mask threshold 0.35, at most 6,000 detections) runs once per 1024² phantom (the steps of
:func:`medlim.microscopy.steatosis.analysis.analyse_image`, exactly as the page and ``medlim steatosis
segment`` run it); cutoffs are then applied to the cached droplet table. Seeds 7000–7007 (the generator's
defaults) and 7100–7107 (a sparser configuration, ``validation-sparse``) are the *validation* sets: the
inference settings and ``--select``'s cutoffs were chosen on them only. Seeds 9000–9007 and 9100–9107 are
*held out*: the report compares the ``thesis`` and ``default`` presets there beside "every detection"
(score ≥ 0.02 since the crowded-fat floor, 0.05 before; no cutoff at all).

Run: ``python benchmarks/eval_steatosis_cutoffs.py [--split validation|held-out|validation-sparse|
held-out-sparse|…|both|all] [--select] [--crowding-grid] [--size 1024] [--n 8] [--cache DIR] [--json]`` (5–60 s
per 1024² tile, 2 threads to one shared thread).

Dense tiles (45–70 %) have splits of their own: ``validation-dense`` (7200–7207) and ``held-out-dense``
(9600–9607); ``held-out-3`` (9400–9407, generator defaults) and ``held-out-sparse-3`` (9500–9507) are fresh
held-out sets. ``held-out-2`` (9200–9207) and ``held-out-sparse-2`` (9300–9307), first measured with issue 13's
tissue definition, led to the dense-tile search and are validation now, as are 9000–9107.

The crowded-fat floor (2026-12-06, afternoon; ``--crowding-grid`` ranks its settings by mean MAE over the seven
splits of :data:`VALIDATION_SPLITS`: chosen confident 0.3, window 191 px, score ≥ 0.2 isolated and ≥ 0.02 from
crowding 0.3 on, ramp from 0.1 — mean 1.30 pp against 2.04 with one score of 0.1) was measured once on three
fresh sets, ``held-out-4`` (9700–9707), ``held-out-sparse-4`` (9800–9807) and ``held-out-dense-2``
(9900–9907), validation since; "one score" is the default before, on the same detections::

    split              cutoffs                     MAE (pp)  bias (pp)  NASH-CRN right  donor right
    held-out-4         default (crowded fat)          1.43      -1.16          100 %         88 %
    held-out-4         one score >= 0.1               2.74      -2.69          100 %         88 %
    held-out-sparse-4  default (crowded fat)          1.18      -0.66          100 %        100 %
    held-out-sparse-4  one score >= 0.1               1.28      -0.47          100 %        100 %
    held-out-dense-2   default (crowded fat)          2.48      -1.31           88 %        100 %
    held-out-dense-2   one score >= 0.1               5.62      -5.47          100 %        100 %

and a second look at the earlier held-out sets: held-out-3 2.50 pp, held-out-sparse-3 1.19, held-out-dense 3.50.

Recorded 2026-12-06, morning, with one minimum score of 0.1 (``maskrcnn-steatosis@2`` with mask 0.35 and 6,000
detections, 8 tiles of 1024² per split, CPU, ``--threads 2``); "3,000" = the same tiles with the settings
before, "mask 0.25" = a threshold rejected because duplicate detections then left slivers counted as droplets::

    split              cutoffs                     MAE (pp)  bias (pp)  NASH-CRN right  donor right
    validation         default                        1.50      -1.29          100 %        100 %
    validation-sparse  default                        0.61      -0.21          100 %        100 %
    validation-dense   default                        4.67      -4.67           88 %        100 %
    held-out-3         default                        3.14      -3.02           88 %        100 %
    held-out-3         default, 3,000                 3.48      -3.38           88 %        100 %
    held-out-3         default, mask 0.25             2.72      -2.02           75 %        100 %
    held-out-3         thesis                        10.26     -10.26           50 %         62 %
    held-out-sparse-3  default                        1.37      -0.95          100 %         88 %
    held-out-sparse-3  default, 3,000                 1.67      -1.35          100 %         88 %
    held-out-dense     default                        6.91      -6.91           88 %        100 %
    held-out-dense     default, 3,000                 8.53      -8.53           88 %        100 %
    held-out-dense     default, mask 0.25             4.69      -4.69           88 %        100 %
    held-out-dense     thesis                        22.77     -22.77           62 %         75 %

Earlier: on 2026-12-05 (lumina as tissue, 0.35 / 3,000) validation 1.57 pp, held-out 3.54 pp, held-out-sparse
0.64 pp; before that (mask 0.5, 1,000 detections) validation 4.70 pp, held-out 8.96 pp. The issue 13 target
(MAE ≤ 3 pp, bands ≥ 90 %) is met on the validation sets except the dense one and on the sparse held-out
set's MAE, not on the default (3.14) and dense held-out sets (the network misses many small droplets packed in
clumps), and the bands on no held-out set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass, replace
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
    tissue_mask,
)

#: First seed of each split; tile ``i`` of a split is ``generate_he(first + i, **SPLIT_PHANTOMS[split])``.
SPLITS = {"validation": 7000, "held-out": 9000, "validation-sparse": 7100, "held-out-sparse": 9100,
          "held-out-2": 9200, "held-out-sparse-2": 9300, "validation-dense": 7200, "held-out-3": 9400,
          "held-out-sparse-3": 9500, "held-out-dense": 9600, "held-out-4": 9700, "held-out-sparse-4": 9800,
          "held-out-dense-2": 9900}
#: The splits settings are chosen on (every held-out split measured before the crowded-fat floor is one now).
VALIDATION_SPLITS: tuple[str, ...] = ("validation", "validation-sparse", "validation-dense", "held-out",
                                      "held-out-sparse", "held-out-2", "held-out-sparse-2")
#: Generator options of each split: the generator's defaults (steatosis 0–70 %, radii 4–36 px), and a sparser,
#: differently configured set (3–30 %, radii 5–30 px, like the independent testers' tiles) so that settings
#: are not fitted to one configuration of the generator.
SPLIT_PHANTOMS: dict[str, dict[str, tuple[float, float]]] = {
    "validation": {}, "held-out": {},
    "validation-sparse": {"density_range": (0.03, 0.30), "radius_range": (5.0, 30.0)},
    "held-out-sparse": {"density_range": (0.03, 0.30), "radius_range": (5.0, 30.0)},
    "held-out-2": {}, "held-out-sparse-2": {"density_range": (0.03, 0.30), "radius_range": (5.0, 30.0)},
    "held-out-3": {}, "held-out-sparse-3": {"density_range": (0.03, 0.30), "radius_range": (5.0, 30.0)},
    # dense steatosis (45-70 %), where thousands of droplets share a tile
    "validation-dense": {"density_range": (0.45, 0.70)}, "held-out-dense": {"density_range": (0.45, 0.70)},
    "held-out-4": {}, "held-out-sparse-4": {"density_range": (0.03, 0.30), "radius_range": (5.0, 30.0)},
    "held-out-dense-2": {"density_range": (0.45, 0.70)},
}
#: No cutoff at all: every detection the network returned (score ≥ DETECTION_MIN_SCORE, 0.02).
EVERYTHING = Cutoffs(min_score=0.0)
#: The default before the crowded-fat floor: one minimum score, 0.1.
ONE_SCORE = Cutoffs(min_score=0.1, crowded_min_score=None)


@dataclass(frozen=True)
class Tile:
    """One phantom's detections and truth."""

    seed: int
    table: DropletTable
    truth_percent: float
    #: the same detections measured and judged with sinusoid lumina counted as tissue (before issue 13's definition)
    lumina_table: DropletTable | None = None
    truth_with_lumina_percent: float = float("nan")


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
    from medlim.microscopy.steatosis.analysis import DETECTION_MIN_SCORE, analysis_from_detections, load_steatosis_model
    from medlim.microscopy.steatosis.inference import detect_droplets
    from medlim.phantoms.he import generate_he

    model = None
    tiles = []
    for seed in range(SPLITS[split], SPLITS[split] + n):
        phantom = generate_he(seed, size=(size, size), **SPLIT_PHANTOMS[split])
        path = None if cache is None else cache / f"steatosis_{seed}_{size}_{DETECTION_MIN_SCORE:g}.npz"
        if path is not None and path.is_file():
            stored = np.load(path)
            labels, scores, label = stored["labels"], stored["scores"], str(stored["model"])
        else:
            model = model or load_steatosis_model(device="cpu")
            found = detect_droplets(model.model, phantom.image, tile=model.tile, overlap=model.overlap,
                                    min_score=DETECTION_MIN_SCORE, mask_threshold=model.mask_threshold)  # analyse_image's
            labels, scores, label = found.labels, found.scores, model.label
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(path, labels=labels, scores=scores, model=label)
        analysis = analysis_from_detections(phantom.image, labels, scores, seconds=0.0, model=label)
        section = float(tissue_mask(phantom.image, exclude_channels=False).sum())
        tiles.append(Tile(seed=seed, table=analysis.table, truth_percent=100.0 * phantom.steatosis_fraction,
                          lumina_table=replace(analysis.table, tissue_area=section),
                          truth_with_lumina_percent=100.0 * phantom.steatosis_fraction_with_lumina))
        log(f"{split} seed {seed} ({label}): {len(analysis.table)} detections on tissue, "
            f"truth {tiles[-1].truth_percent:.1f} %")
    return tiles


def candidate_cutoffs() -> list[Cutoffs]:
    """The grid ``--select`` searches (robust reference; open-ended where the thesis bounds large droplets; one
    minimum score everywhere — ``--crowding-grid`` searches the crowded-fat floor)."""
    grid = []
    for min_score, area_low, area_high, eccentricity_high in itertools.product(
        (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.0, 0.05, 0.1, 0.2), (6.0, 10.0, float("inf")),
        (1.5, 1.8, float("inf")),
    ):
        grid.append(Cutoffs(area=(area_low, area_high), eccentricity=(0.0, eccentricity_high), min_score=min_score,
                            reference="scored", crowded_min_score=None))
    return grid


def select(tiles: list[Tile]) -> list[tuple[Accuracy, Cutoffs]]:
    """Grid candidates ranked by validation MAE (then by band agreement); best first."""
    truth = np.array([tile.truth_percent for tile in tiles])
    scored = [(accuracy(percents(tiles, c), truth), c) for c in candidate_cutoffs()]
    return sorted(scored, key=lambda pair: (round(pair[0].mae_pp, 3), -pair[0].both))


def crowding_grid(tiles: dict[str, list[Tile]]) -> list[tuple[float, tuple[float, ...], dict[str, Accuracy]]]:
    """The crowded-fat floor's settings ranked by the mean MAE over ``tiles``' splits (best first).

    Each candidate is ``(confident, window, min_score, crowded_min_score, ramp start, ramp end)``
    (:func:`medlim.microscopy.steatosis.droplets.droplet_crowding` and ``score_floors``); returns
    ``(mean MAE, candidate, accuracy per split)``.
    """
    from medlim.microscopy.steatosis.droplets import droplet_crowding

    crowding = {(id(tile), confident, window): droplet_crowding(tile.table.centroid, tile.table.area, tile.table.score,
                                                                window=window, confident=confident)
                for split_tiles in tiles.values() for tile in split_tiles
                for confident in (0.3, 0.5) for window in (63, 127, 191)}
    ranked = []
    for confident, window, high, low, start, end in itertools.product(
            (0.3, 0.5), (63, 127, 191), (0.1, 0.15, 0.2), (0.01, 0.02, 0.03), (0.1, 0.2, 0.3), (0.3, 0.4, 0.5, 0.6)):
        if end <= start:
            continue
        per_split = {}
        for split, split_tiles in tiles.items():
            measured = [100.0 * tile.table.area[tile.table.score >= np.interp(
                crowding[(id(tile), confident, window)], (start, end), (high, low))].sum() / tile.table.tissue_area
                for tile in split_tiles]
            per_split[split] = accuracy(np.array(measured), np.array([tile.truth_percent for tile in split_tiles]))
        ranked.append((float(np.mean([a.mae_pp for a in per_split.values()])),
                       (confident, float(window), high, low, start, end), per_split))
    return sorted(ranked, key=lambda row: row[0])


def table_rows(split: str, tiles: list[Tile]) -> list[dict[str, object]]:
    """One row per preset (and "every detection") with its accuracy on ``tiles``."""
    truth = np.array([tile.truth_percent for tile in tiles])
    rows = []
    lumina = [replace(tile, table=tile.lumina_table, truth_percent=tile.truth_with_lumina_percent)
              for tile in tiles if tile.lumina_table is not None]
    runs = [(name, cutoffs, tiles, truth) for name, cutoffs in
            [*BUILTIN_PRESETS.items(), ("every detection", EVERYTHING), ("one score ≥ 0.1 (before)", ONE_SCORE)]]
    if len(lumina) == len(tiles):
        # the measurement before issue 13's tissue definition: lumina counted as tissue by both sides
        runs.append(("default, lumina as tissue", BUILTIN_PRESETS["default"], lumina,
                     np.array([tile.truth_percent for tile in lumina])))
    for name, cutoffs, measured_tiles, truth in runs:
        measured = percents(measured_tiles, cutoffs)
        result = accuracy(measured, truth)
        rows.append({"split": split, "cutoffs": name, "tiles": len(tiles), "mae_pp": round(result.mae_pp, 2),
                     "bias_pp": round(result.bias_pp, 2), "nash_crn_right": round(result.nash_crn, 3),
                     "donor_right": round(result.donor, 3), "both_right": round(result.both, 3),
                     "truth_percent": [round(t, 1) for t in truth], "medlim_percent": [round(m, 1) for m in measured]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=(*SPLITS, "both", "all"), default="both",
                        help="both = validation and held-out; all = every split")
    parser.add_argument("--select", action="store_true", help="grid-search cutoffs on the validation split")
    parser.add_argument("--crowding-grid", action="store_true",
                        help="rank the crowded-fat floor's settings by mean MAE over the validation splits")
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

    splits = {"both": ["validation", "held-out"], "all": list(SPLITS)}.get(args.split, [args.split])
    if args.crowding_grid:
        tiles = {split: load_tiles(split, n=args.n, size=args.size, cache=args.cache, log=log)
                 for split in VALIDATION_SPLITS}
        for mean, candidate, per_split in crowding_grid(tiles)[:15]:
            detail = "  ".join(f"{split} {a.mae_pp:.2f}/{a.bias_pp:+.2f}/{a.both:.2f}" for split, a in per_split.items())
            print(f"mean MAE {mean:.2f}  (confident, window, min, crowded, ramp) {candidate}  {detail}")
        return 0
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
