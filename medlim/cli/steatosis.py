"""``medlim steatosis``: liver steatosis droplets in H&E images (thesis §3.2).

``segment`` runs the Mask R-CNN (tiled, tile-border droplets merged), applies
the cutoffs relative to the mean droplet (thesis defaults) and a minimum
score, writes ``<stem>_labels.png`` (uint16, kept droplets only) and prints
``file, detected, kept, steatosis_fraction, seconds, labels, unlike_training, warnings``
(the weights' training-data check, issue 13, and its warning when flagged; a file
that cannot be read gets ``file, error, message`` and the run goes on; repeated
stems get their folder added, :mod:`medlim.core.batch`). ``--csv`` and
``--geojson`` add ``<stem>_objects.csv`` and ``<stem>.geojson`` (QuPath), the
page's downloads; sizes are in µm² too when the file states its pixel size or
``--pixel-spacing-um`` gives it, and ``--area-um2`` keeps droplets by absolute
area. Whole slides (SVS, NDPI, OME-TIFF, tiled TIFF) are read tile by tile
(``--region``, ``--tile``; :func:`medlim.microscopy.steatosis.analysis.analyse_slide`).
``evaluate`` scores the
weak-label method and the network on held-out phantoms (thesis Table 3.2
protocol: AP, recall, F1, Jaccard with matches at mask IoU ≥ 0.5).

``--weights`` names a model of the shipped or the user registry
(:class:`medlim.core.weights.Registries`) as ``NAME``, ``NAME@VERSION`` or
``NAME:VERSION``; without it the task's default model is used (the user's own
default, else the shipped entry marked ``default: true``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.cli.evaluate_data import add_steatosis_data_evaluation, run_steatosis_data_evaluation
from medlim.cli.evaluation_table import add_table_option
from medlim.cli.jobs import add_background_option
from medlim.cli.microscopy_options import add_microscopy_options

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.batch import BatchFile
    from medlim.microscopy.slides import Region
    from medlim.microscopy.steatosis.analysis import SteatosisModel
    from medlim.microscopy.steatosis.droplets import Cutoffs

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("steatosis", help="liver steatosis droplets in H&E images (Mask R-CNN + cutoffs)")
    sub = parser.add_subparsers(dest="steatosis_command", metavar="SUBCOMMAND")

    segment = sub.add_parser("segment", help="kept droplets per image (<stem>_labels.png, uint16) and steatosis fraction")
    segment.add_argument("inputs", nargs="+", metavar="FILES", help="RGB H&E images (PNG/TIFF/JPEG) or folders")
    segment.add_argument("--out", type=Path, required=True, help="output folder")
    segment.add_argument("--preset", choices=("default", "thesis"), default="default",
                         help="cutoffs: 'default' (every detection on tissue with score ≥ 0.2, ≥ 0.02 in crowded "
                              "fat; chosen on validation phantoms for the steatosis %% of tissue) or 'thesis' (area "
                              "0.001–6, perimeter 0.5–4, "
                              "eccentricity 0.2–1.5 × the mean of all detections, score ≥ 0.5); the options below "
                              "override its values")
    segment.add_argument("--area", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                         help="area cutoffs × the reference droplet's area; HI may be inf (no upper limit)")
    segment.add_argument("--perimeter", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                         help="perimeter cutoffs × the reference droplet's; HI may be inf")
    segment.add_argument("--eccentricity", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                         help="eccentricity cutoffs × the reference droplet's; HI may be inf")
    segment.add_argument("--min-score", type=float, default=None,
                         help="minimum detection score of an isolated droplet (default: the preset's); crowded "
                              "droplets need only --crowded-min-score")
    segment.add_argument("--crowded-min-score", type=float, default=None, metavar="S",
                         help="minimum score of a droplet in crowded fat, where faint detections are mostly real "
                              "droplets (medlim's addition; default: the preset's, 0.02 for 'default', none for "
                              "'thesis'); a value ≥ --min-score turns it off")
    segment.add_argument("--area-um2", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                         help="absolute droplet area cutoffs in µm², beside the relative ones; HI may be inf; needs "
                              "the pixel size (from the file or --pixel-spacing-um)")
    add_microscopy_options(segment, objects="droplets")
    segment.add_argument("--weights", default=None,
                         help="model NAME, NAME@VERSION or NAME:VERSION, shipped or yours (default: the task's default)")
    _registry_options(segment)
    segment.add_argument("--device", default=None, help="auto, cpu or cuda")
    segment.add_argument("--jsonl", action="store_true", help="JSON Lines on stdout (one object per image)")
    segment.add_argument("--pseudonymise-names", action="store_true",
                         help="name files (in rows and output files) by a keyed-hash label instead of their path")
    segment.set_defaults(func=_segment)

    evaluate = sub.add_parser("evaluate", help="weak-label method vs network on held-out phantoms (AP, recall, F1, Jaccard)")
    evaluate.add_argument("--n", type=int, default=8, help="number of phantoms (default 8)")
    evaluate.add_argument("--seed", type=int, default=None, help="phantom seed (default: held-out seed 7)")
    evaluate.add_argument("--size", type=int, default=512, help="phantom side in px (default 512)")
    evaluate.add_argument("--weights", default=None,
                          help="model NAME[@VERSION], shipped or yours (default: the task's default); 'none' scores "
                               "the weak labels only")
    _registry_options(evaluate)
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--jsonl", action="store_true", help="JSON Lines: one object per image and method, then the summary")
    add_background_option(evaluate, kind="evaluate")
    add_table_option(evaluate, task="steatosis")
    evaluate.set_defaults(func=_evaluate)
    add_steatosis_data_evaluation(evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _expand(inputs: list[str]) -> list[Path]:
    from medlim.core.io.files import RASTER_SUFFIXES, collect_files
    from medlim.core.io.slide import SLIDE_SUFFIXES

    return collect_files(inputs, suffixes=RASTER_SUFFIXES | set(SLIDE_SUFFIXES), recursive=False)


#: The registry task of steatosis models.
TASK = "steatosis-instance-segmentation"


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", default=None,
                        help="shipped registry folder (default: MEDLIM_WEIGHTS_DIR or weights/)")
    parser.add_argument("--models-dir", default=None,
                        help="user registry folder (default: MEDLIM_MODELS_DIR or MEDLIM_HOME/models)")


def _load_model(args: argparse.Namespace) -> SteatosisModel:
    """The model ``--weights`` names (default: the task's default) from the shipped or the user registry."""
    from medlim.core.weights import Registries
    from medlim.microscopy.steatosis.analysis import DEFAULT_STEATOSIS_WEIGHTS, load_steatosis_model

    registries = Registries.load(weights_dir=args.weights_dir, models_dir=args.models_dir)
    if args.weights is not None:
        entry = registries.find(args.weights)
    else:
        entry = registries.default(TASK) or registries.get(DEFAULT_STEATOSIS_WEIGHTS)
    return load_steatosis_model(f"{entry.name}:{entry.version}", registry=registries, device=args.device)


def _segment(args: argparse.Namespace) -> int:
    from medlim.cli.microscopy_options import region_option
    from medlim.core.batch import batch_exit_status, batch_rows, output_folder, plan_files, print_row, progress_printer
    from medlim.microscopy.steatosis.report import preset_cutoffs

    cutoffs = preset_cutoffs(args.preset, area=args.area, perimeter=args.perimeter, eccentricity=args.eccentricity,
                             min_score=args.min_score, area_um2=args.area_um2,
                             crowded_min_score=args.crowded_min_score)
    region = region_option(args.region)
    files = plan_files(_expand(args.inputs), pseudonymise=args.pseudonymise_names)
    model = _load_model(args)
    out = output_folder(args.out)
    rows = batch_rows(files, lambda file: _segment_one(model, file, out, cutoffs=cutoffs, args=args, region=region),
                      progress=progress_printer(len(files)), pseudonymised=args.pseudonymise_names)
    analysed = 0
    for row in rows:
        print_row(row, jsonl=args.jsonl, describe=_describe)
        analysed += "error" not in row
    return batch_exit_status(analysed, len(files))


def _describe(row: Mapping[str, Any]) -> str:
    text = (f"{row['kept']}/{row['detected']} droplets kept, steatosis {100 * row['steatosis_fraction']:.1f} % "
            f"of tissue (NASH-CRN {row['nash_crn_band']}, donor {row['donor_band']}), preset {row['preset']}, "
            f"{row['seconds']:.2f} s")
    check = row.get("unlike_training")
    if check:  # the weights' training-data check (issue 13); its warning follows in brackets when flagged
        text += f" unlike-training={check['score']:.2f}/{check['threshold']:.2f} {'FLAGGED' if check['flagged'] else 'ok'}"
    return text


def _segment_one(model: SteatosisModel, file: BatchFile, out: Path, *, cutoffs: Cutoffs, args: argparse.Namespace,
                 region: Region | None) -> dict[str, Any]:
    """Detect droplets in one image, apply the cutoffs and write ``<stem>_labels.png`` (uint16, kept only)
    and the exports asked for."""
    from medlim.cli.microscopy_options import exports_writer, tile_progress
    from medlim.microscopy.steatosis.analysis import segment_file

    row = segment_file(model, file.path, out / f"{file.stem}_labels.png", name=Path(file.name).name, cutoffs=cutoffs,
                       pixel_spacing_um=args.pixel_spacing_um, region=region, tile=args.tile, frame=args.frame,
                       exports=exports_writer(out, file.stem, csv=args.csv, geojson=args.geojson),
                       progress=tile_progress(file.name))
    return row.to_json()


def _evaluate(args: argparse.Namespace) -> int:
    if args.data is not None:
        return run_steatosis_data_evaluation(args)
    from medlim.microscopy.steatosis.evaluation import HELD_OUT_SEED, evaluate_methods

    seed = HELD_OUT_SEED if args.seed is None else args.seed
    model = None
    if args.weights is None or args.weights.lower() != "none":
        model = _load_model(args).model
    summary = evaluate_methods(model, seed=seed, n=args.n, size=args.size, device=args.device,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.jsonl:
        for row in summary["per_image"]:  # type: ignore[union-attr]
            print(json.dumps(row), flush=True)
        print(json.dumps({"summary": {k: v for k, v in summary.items() if k != "per_image"}, "seed": seed,
                          "n": args.n, "size": args.size}), flush=True)
        return 0
    print(f"seed {seed}, {args.n} phantoms of {args.size}×{args.size} (per-image means; matches at mask IoU ≥ 0.5):")
    for method in ("weak", "weak_screened", "network"):
        values = summary.get(method)
        if isinstance(values, dict):
            print(f"  {method:13s} AP {values['ap']:.3f}  P {values['precision']:.3f}  R {values['recall']:.3f}  "
                  f"F1 {values['f1']:.3f}  Jaccard {values['jaccard']:.3f}  {values['seconds']:.2f} s/image")
    if "f1_gain" in summary:
        print(f"  network F1 − weak F1 = {summary['f1_gain']:+.3f} (target ≥ +0.10)")
    return 0
