"""``medlim nuclei``: clumped-nuclei segmentation of fluorescence images (thesis §3.1).

``segment`` writes ``<stem>_labels.png`` (uint16 instance labels, 0 =
background, input size) per image and prints ``file, count, seconds, labels,
warnings`` (a file that cannot be read gets ``file, error, message`` and the run
goes on; repeated stems get their folder added, :mod:`medlim.core.batch`);
``--csv`` and ``--geojson`` add ``<stem>_objects.csv`` and ``<stem>.geojson``
(QuPath), the page's downloads, with µm / µm² when the file states its pixel
size or ``--pixel-spacing-um`` gives it; whole slides (SVS, NDPI, OME-TIFF,
tiled TIFF) are read tile by tile (``--region``, ``--tile``;
:mod:`medlim.microscopy.nuclei.whole_slide`) and write no label image;
``evaluate`` scores the thesis method and the watershed baseline on held-out
phantoms with the thesis Table 3.1 protocol plus object F1 at IoU ≥ 0.5.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.cli.evaluate_data import add_nuclei_data_evaluation, run_nuclei_data_evaluation
from medlim.cli.jobs import add_background_option
from medlim.cli.microscopy_options import add_microscopy_options

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.batch import BatchFile
    from medlim.microscopy.slides import Region

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("nuclei", help="clumped nuclei segmentation in fluorescence (DAPI) images")
    sub = parser.add_subparsers(dest="nuclei_command", metavar="SUBCOMMAND")

    segment = sub.add_parser("segment", help="instance labels for each image (<stem>_labels.png, uint16)")
    segment.add_argument("inputs", nargs="+", metavar="FILES", help="RGB images with DAPI in blue (PNG/TIFF/JPEG) or folders")
    segment.add_argument("--out", type=Path, required=True, help="output folder")
    segment.add_argument("--method", choices=("thesis", "watershed", "watershed-basic"), default="thesis",
                         help="thesis method (default), the strong watershed baseline (h-maxima markers, size-aware "
                              "smoothing) or the basic watershed")
    add_microscopy_options(segment, objects="nuclei")
    segment.add_argument("--jsonl", action="store_true", help="JSON Lines on stdout (one object per image)")
    segment.add_argument("--pseudonymise-names", action="store_true",
                         help="name files (in rows and output files) by a keyed-hash label instead of their path")
    segment.set_defaults(func=_segment)

    evaluate = sub.add_parser("evaluate", help="thesis method vs watershed on held-out phantoms")
    evaluate.add_argument("--n", type=int, default=5, help="number of phantom images (default 5)")
    evaluate.add_argument("--seed", type=int, default=None, help="phantom seed (default: the held-out seed 7)")
    evaluate.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(1024, 1376),
                          help="phantom size (default 1024 1376, the thesis size)")
    evaluate.add_argument("--jsonl", action="store_true", help="JSON Lines: one object per image and method, then the summary")
    add_background_option(evaluate, kind="evaluate")
    evaluate.set_defaults(func=_evaluate)
    add_nuclei_data_evaluation(evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _expand(inputs: list[str]) -> list[Path]:
    from medlim.core.io.files import RASTER_SUFFIXES, collect_files
    from medlim.core.io.slide import SLIDE_SUFFIXES

    return collect_files(inputs, suffixes=RASTER_SUFFIXES | set(SLIDE_SUFFIXES), recursive=False)


def _segment(args: argparse.Namespace) -> int:
    from medlim.cli.microscopy_options import region_option
    from medlim.core.batch import batch_exit_status, batch_rows, output_folder, plan_files, print_row, progress_printer

    region = region_option(args.region)
    files = plan_files(_expand(args.inputs), pseudonymise=args.pseudonymise_names)
    out = output_folder(args.out)
    rows = batch_rows(files, lambda file: _segment_one(file, out, method=args.method, args=args, region=region),
                      progress=progress_printer(len(files)), pseudonymised=args.pseudonymise_names)
    analysed = 0
    for row in rows:
        print_row(row, jsonl=args.jsonl, describe=_describe)
        analysed += "error" not in row
    return batch_exit_status(analysed, len(files))


def _describe(row: Any) -> str:
    clumps = f"{row['clumps_split']} clumps split, " if "clumps_split" in row else f"{row.get('tiles', 0)} tiles, "
    micron = f" = {row['mean_area_um2']:,.1f} µm²" if row.get("mean_area_um2") is not None else ""
    return (f"{row['count']} nuclei in {row['seconds']:.2f} s ({clumps}mean nucleus area "
            f"{row['mean_area_px2']:,.0f} px²{micron})")


def _segment_one(file: BatchFile, out: Path, *, method: str, args: argparse.Namespace,
                 region: Region | None = None) -> dict[str, Any]:
    """Segment one image and write ``<stem>_labels.png`` (and the exports asked for); the readouts of its row."""
    import numpy as np

    from medlim.cli.microscopy_options import exports_writer
    from medlim.core.io import read_image
    from medlim.core.io.slide import is_slide, read_whole
    from medlim.errors import ImageTooLargeError
    from medlim.microscopy.nuclei.foreground import dapi_warning
    from medlim.microscopy.nuclei.measure import nuclei_exports, nuclei_readout, nucleus_outlines, nucleus_table
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_basic_nuclei, watershed_nuclei
    from medlim.microscopy.objects import file_spacing
    from medlim.phantoms.base import save_png

    write = exports_writer(out, file.stem, csv=args.csv, geojson=args.geojson)
    if region is not None or args.tile is not None or (is_slide(file.path) and not read_whole(file.path)):
        return _segment_slide(file, method=method, args=args, region=region, write=write)
    record = read_image(file.path, name=Path(file.name).name, frame=args.frame)
    spacing, notes = file_spacing(file.path, args.pixel_spacing_um)
    segmenter = {"thesis": segment_nuclei, "watershed": watershed_nuclei, "watershed-basic": watershed_basic_nuclei}
    result = segmenter[method](record.pixels)
    if result.labels.max() > 65535:
        raise ImageTooLargeError(f"{int(result.labels.max())} nuclei do not fit a uint16 label image.")
    labels_path = out / f"{file.stem}_labels.png"
    save_png(labels_path, result.labels.astype(np.uint16))
    table = nucleus_table(result.labels, spacing=spacing)
    row: dict[str, Any] = {**nuclei_readout(result, table).to_json(), "labels": str(labels_path)}
    if write is not None:
        row.update(write(nuclei_exports(nucleus_outlines(result.labels, table), table.objects)))
    dapi = dapi_warning(record.pixels)
    warnings = [*record.metadata.warnings, *notes, *([spacing.warning] if spacing.warning else []),
                *([dapi] if dapi else [])]
    return {**row, "warnings": warnings}


def _segment_slide(file: BatchFile, *, method: str, args: argparse.Namespace, region: Region | None,
                   write: Any) -> dict[str, Any]:
    """A whole slide, tile by tile: the readout row and the exports (no label image)."""
    from medlim.cli.microscopy_options import tile_progress
    from medlim.core.io.slide import open_slide
    from medlim.microscopy.nuclei.whole_slide import segment_nuclei_slide
    from medlim.microscopy.objects import resolve_spacing

    with open_slide(file.path) as slide:
        found = slide.spacing
        spacing, notes = resolve_spacing(None if found is None else found[0], args.pixel_spacing_um,
                                         file_detail=None if found is None else found[1])
        result = segment_nuclei_slide(slide, method=method, region=region, tile=args.tile or 1024, spacing=spacing,
                                      progress=tile_progress(file.name))
    row: dict[str, Any] = {**result.to_json(), "labels": ""}
    if write is not None:
        row.update(write(result.exports()))
    return {**row, "warnings": [*notes, *([spacing.warning] if spacing.warning else [])]}


def _evaluate(args: argparse.Namespace) -> int:
    if args.data is not None:
        return run_nuclei_data_evaluation(args)
    from medlim.microscopy.nuclei.evaluation import HELD_OUT_SEED, evaluate_phantoms, summarise

    seed = HELD_OUT_SEED if args.seed is None else args.seed
    rows = []
    for row in evaluate_phantoms(n=args.n, seed=seed, size=tuple(args.size)):
        rows.append(row)
        if args.jsonl:
            print(json.dumps(row.as_dict()), flush=True)
        else:
            print(
                f"[{row.index + 1}/{args.n}] {row.method:15s} Jaccard {row.jaccard:.3f} P {row.precision:.3f} "
                f"R {row.recall:.3f} F1 {row.f1:.3f} HD {row.hausdorff:.1f}  object F1 {row.object_f1:.3f} "
                f"({row.seconds:.2f} s)",
                file=sys.stderr,
                flush=True,
            )
    summary = summarise(rows)
    if args.jsonl:
        print(json.dumps({"summary": summary, "seed": seed, "n": args.n, "size": list(args.size)}), flush=True)
    else:
        print(f"seed {seed}, {args.n} images of {args.size[0]}×{args.size[1]} (mean ± std):")
        for method, values in summary.items():
            print(
                f"  {method:15s} Jaccard {values['jaccard']:.3f}±{values['jaccard_std']:.3f}  "
                f"P {values['precision']:.3f}  R {values['recall']:.3f}  F1 {values['f1']:.3f}  "
                f"HD {values['hausdorff']:.1f}±{values['hausdorff_std']:.1f}  "
                f"object P/R/F1 {values['object_precision']:.3f}/{values['object_recall']:.3f}/{values['object_f1']:.3f}  "
                f"{values['seconds']:.2f} s/image"
            )
    return 0
