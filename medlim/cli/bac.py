"""``medlim bac``: BAC quantification of mammograms from the command line
(the same functions as the mammography page; thesis §3.3)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlim.errors import MedlimError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bac", help="breast arterial calcification (SCU-Net) quantification")
    sub = parser.add_subparsers(dest="bac_command", metavar="SUBCOMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("inputs", nargs="+", metavar="FILES_OR_DIRS", help="mammograms (DICOM/PNG/TIFF) or folders")
    common.add_argument("--weights", default=None, help="registry name (default scunet-bac) or an authors' .pt checkpoint")
    common.add_argument("--threshold", type=float, default=None, help="probability cut-off t (default: the weights')")
    common.add_argument("--jsonl", action="store_true", help="JSON Lines on stdout")
    common.add_argument("--no-store", action="store_true", help="do not save results to the results store")
    common.add_argument("--resume", action="store_true", help="reuse stored results for files already analysed")
    common.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    common.add_argument("--pseudonymise-names", action="store_true",
                        help="name files (in rows and output files) by a keyed-hash label instead of their path")

    quantify = sub.add_parser("quantify", parents=[common], help="PM, AM, SIM, TAM_X, TSIM_X per image")
    quantify.add_argument("--x", type=float, default=None, help="intensity threshold X (default: the weights', 100)")
    quantify.add_argument("--out", type=Path, default=None,
                          help="folder for <stem>_bac.png masks (0/255); repeated stems get their folder added")
    quantify.set_defaults(func=_quantify)

    longitudinal = sub.add_parser(
        "longitudinal", parents=[common], help="per patient and exam date: Σ TAM_100 / breast area over views"
    )
    longitudinal.add_argument("--x", type=float, default=100.0, help="intensity threshold X (default 100)")
    longitudinal.set_defaults(func=_longitudinal)

    evaluate = sub.add_parser("evaluate", help="segmentation and quantification metrics on held-out phantoms")
    evaluate.add_argument("--weights", default=None, help="registry name or an authors' .pt checkpoint")
    evaluate.add_argument("--seed", type=int, default=None, help="phantom seed (default: the held-out seed)")
    evaluate.add_argument("--n", type=int, default=12, help="number of phantom images")
    evaluate.add_argument("--sizes", default="full,full-small", help="phantom sizes, comma-separated")
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument(
        "--thresholds", default=None, help="several cut-offs, comma-separated: one summary line each (choose on validation seeds)"
    )
    evaluate.add_argument("--x", type=float, default=None)
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.add_argument("--device", default=None)
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _run(args: argparse.Namespace, *, keep_analysis: bool):
    """``(BatchFile, FileOutcome)`` pairs, one per input file, streamed."""
    from medlim.core.batch import plan_files, progress_printer
    from medlim.core.io.files import collect_files
    from medlim.core.store import open_store
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.batch import quantify_files

    files = plan_files(collect_files(args.inputs), pseudonymise=args.pseudonymise_names)
    if not files:
        print("medlim: no image files found in the given paths", file=sys.stderr)
    bac_model = load_bac_model(args.weights, device=args.device)
    store = None if args.no_store else open_store()
    outcomes = quantify_files(
        ((f.name, f.path) for f in files),
        bac_model,
        threshold=args.threshold,
        x=args.x,
        store=store,
        reuse_stored=args.resume and store is not None,
        keep_analysis=keep_analysis,
        progress=progress_printer(len(files)),
        pseudonymised=args.pseudonymise_names,
    )
    return zip(files, outcomes)


def _quantify(args: argparse.Namespace) -> int:
    from medlim.core.batch import output_folder, print_row
    from medlim.phantoms.base import save_png

    if args.out is not None:
        output_folder(args.out)
    for file, outcome in _run(args, keep_analysis=args.out is not None):
        if outcome.ok:
            row = {"ok": True, **outcome.values, "reused": outcome.reused}
            if args.out is not None and outcome.analysis is not None:
                mask_path = args.out / f"{file.stem}_bac.png"
                try:
                    save_png(mask_path, outcome.analysis.mask())
                    row["mask"] = str(mask_path)
                except MedlimError as exc:  # the readouts are still worth printing
                    row["mask_error"] = exc.message
        else:
            row = {"file": outcome.file, "ok": False, "error": outcome.error, "message": outcome.message}
        print_row(row, jsonl=args.jsonl, describe=_describe)
    return 0


def _describe(row: Mapping[str, Any]) -> str:
    text = (
        f"PM={row['pm']:.1f} AM={row['am']} SIM={row['sim']:.0f} TAM_{row['x']:g}={row['tam_x']} "
        f"TSIM_{row['x']:g}={row['tsim_x']:.0f} breast={row['breast_area']} px (t={row['threshold']}, {row['weights']})"
    )
    if row.get("mask_error"):
        text += f" [mask not written: {row['mask_error']}]"
    return text


def _longitudinal(args: argparse.Namespace) -> int:
    from medlim.core.text import escape_control
    from medlim.mammography.batch import exam_rows

    values = []
    for _file, outcome in _run(args, keep_analysis=False):
        if outcome.ok:
            values.append(outcome.values)
            if outcome.store_error:
                print(f"medlim: {escape_control(outcome.file)}: not stored: {escape_control(outcome.store_error)}",
                      file=sys.stderr)
        else:
            print(f"medlim: {escape_control(outcome.file)}: {outcome.error}: {escape_control(outcome.message)}",
                  file=sys.stderr)
    exams, changes, unplaced = exam_rows(values)
    for name in unplaced:
        print(f"medlim: {escape_control(name)}: no patient, date, view or laterality in the file; not placed in an exam",
              file=sys.stderr)
    change_by_later = {(c.patient_key, c.later_date): c for c in changes}
    for exam in exams:
        change = change_by_later.get((exam.patient_key, exam.study_date))
        row = {
            "patient_key": exam.patient_key,
            "study_date": exam.study_date,
            "x": args.x,
            "tam_x_per_breast_area_sum": exam.total,
            "views_counted": exam.views_counted,
            "views": [f"{v.laterality}{v.view}" for v in exam.views],
            "cc_mlo_disagreement": exam.disagreement,
            "change_from_previous": None if change is None else change.delta,
            "change_noise": None if change is None else change.noise,
            "change_is_real": None if change is None else change.is_real,
        }
        if args.jsonl:
            print(json.dumps(row), flush=True)
        else:
            flag = "" if change is None else f"  Δ={change.delta:+.5f} ({'real' if change.is_real else 'within view noise' if change.is_real is False else 'cannot tell'})"
            print(f"{exam.patient_key} {exam.study_date}: ΣTAM_{args.x:g}/area={exam.total:.5f} over {exam.views_counted} views{flag}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import evaluate_bac
    from medlim.mammography.recipe import HELDOUT_SEED, PhantomSpec, phantom_samples

    bac_model = load_bac_model(args.weights, device=args.device)
    sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    spec = PhantomSpec(seed=HELDOUT_SEED if args.seed is None else args.seed, count=args.n, sizes=sizes)
    if args.thresholds:
        return _sweep(args, bac_model, spec)
    summary, per_image = evaluate_bac(
        bac_model,
        phantom_samples(spec),
        threshold=args.threshold,
        x=args.x,
        progress=lambda done, name: print(f"[{done}/{spec.count}] {name}", file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps({"weights": bac_model.label, "seed": spec.seed, **summary.to_dict()}, indent=2))
        return 0
    print(f"{bac_model.label} on {summary.images} held-out phantoms (seed {spec.seed}), t={summary.threshold}, X={summary.x}")
    print(f"{'':14}{'recall':>9}{'precision':>11}{'accuracy':>10}{'F1/Dice':>9}{'Jaccard':>9}")
    for label, values in (("patch-wise", summary.patch_wise), ("whole image", summary.whole_image),
                          ("pooled", summary.whole_image_pooled)):
        print(f"{label:14}" + "".join(f"{values[k]:>{w}.3f}" for k, w in
              (("recall", 9), ("precision", 11), ("accuracy", 10), ("f1", 9), ("jaccard", 9))))
    print(f"{'readout':10}{'R2':>8}{'bias':>14}{'LoA low':>14}{'LoA high':>14}")
    for key, a in summary.agreement.items():
        print(f"{key:10}{a.r2:>8.3f}{a.bias:>14.1f}{a.loa_low:>14.1f}{a.loa_high:>14.1f}")
    return 0


def _sweep(args: argparse.Namespace, bac_model, spec) -> int:
    from medlim.mammography.evaluate import sweep_thresholds
    from medlim.mammography.recipe import phantom_samples

    thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    summaries, _ = sweep_thresholds(
        bac_model,
        phantom_samples(spec),
        thresholds=thresholds,
        x=args.x,
        progress=lambda done, name: print(f"[{done}/{spec.count}] {name}", file=sys.stderr, flush=True),
    )
    rows = [
        {
            "threshold": t,
            "dice": s.whole_image["f1"],
            "dice_pooled": s.whole_image_pooled["f1"],
            "precision": s.whole_image["precision"],
            "recall": s.whole_image["recall"],
            "r2": {k: a.r2 for k, a in s.agreement.items()},
        }
        for t, s in summaries.items()
    ]
    if args.json:
        print(json.dumps({"weights": bac_model.label, "seed": spec.seed, "images": spec.count, "sweep": rows}, indent=2))
        return 0
    print(f"{bac_model.label} on {spec.count} phantoms (seed {spec.seed})")
    print(f"{'t':>6}{'Dice':>8}{'pooled':>8}{'prec':>8}{'recall':>8}{'R2 TAM_X':>10}{'R2 AM':>8}")
    for row in rows:
        print(f"{row['threshold']:>6.2f}{row['dice']:>8.3f}{row['dice_pooled']:>8.3f}{row['precision']:>8.3f}"
              f"{row['recall']:>8.3f}{row['r2']['tam_x']:>10.3f}{row['r2']['am']:>8.3f}")
    return 0
