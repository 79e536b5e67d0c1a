"""``medlim bac``: BAC quantification of mammograms from the command line
(the same functions as the mammography page; thesis §3.3).

``quantify`` prints one :class:`~medlim.mammography.readout.BacReadout` per file
(with the weights' training-data check, ``unlike_training``, and its warning),
``longitudinal`` the exam readouts of the given files, ``report`` writes the
page's ``<patient key>_<study date>_report.csv``/``.json`` per exam, and
``history`` prints a patient's saved exams (Σ TAM_100 / breast area) from the
results store — the numbers the page shows for the same input (issue 17).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlim.cli.bac_exports import QuantifyExports, add_export_options
from medlim.cli.engine_options import add_engine_options, engine_of
from medlim.cli.evaluate_data import add_bac_data_evaluation, parse_cutoffs, print_sweep, run_bac_data_evaluation
from medlim.cli.evaluation_table import add_table_option
from medlim.cli.jobs import add_background_option
from medlim.errors import MedlimError, ParameterError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bac", help="breast arterial calcification (SCU-Net) quantification")
    sub = parser.add_subparsers(dest="bac_command", metavar="SUBCOMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("inputs", nargs="+", metavar="FILES_OR_DIRS", help="mammograms (DICOM/PNG/TIFF) or folders")
    common.add_argument("--weights", default=None,
                        help="NAME, NAME@VERSION or an authors' .pt checkpoint (default: the task's default model)")
    common.add_argument("--threshold", type=float, default=None, help="probability cut-off t (default: the weights')")
    common.add_argument("--jsonl", action="store_true", help="JSON Lines on stdout")
    common.add_argument("--no-store", action="store_true", help="do not save results to the results store")
    common.add_argument("--resume", action="store_true", help="reuse stored results for files already analysed")
    common.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    common.add_argument("--pseudonymise-names", action="store_true",
                        help="name files (in rows and output files) by a keyed-hash label instead of their path")
    _add_pixel_spacing(common)
    add_engine_options(common)

    quantify = sub.add_parser("quantify", parents=[common], help="PM, AM, SIM, TAM_X, TSIM_X per image")
    quantify.add_argument("--x", type=float, default=None, help="intensity threshold X (default: the weights', 100)")
    quantify.add_argument("--out", type=Path, default=None,
                          help="folder for <stem>_bac.png masks (0/255); repeated stems get their folder added")
    add_export_options(quantify)
    quantify.set_defaults(func=_quantify)
    add_background_option(quantify, kind="bac.quantify")

    longitudinal = sub.add_parser(
        "longitudinal", parents=[common], help="per patient and exam date: Σ TAM_100 / breast area over views"
    )
    longitudinal.add_argument("--x", type=float, default=100.0, help="intensity threshold X (default 100)")
    longitudinal.set_defaults(func=_longitudinal)

    report = sub.add_parser(
        "report", parents=[common],
        help="write <patient key>_<study date>_report.csv and .json per exam (the page's report)",
    )  # fmt: skip
    report.add_argument("--x", type=float, default=None, help="intensity threshold X (default: the weights', 100)")
    report.add_argument("--out", type=Path, required=True, help="folder for the reports")
    report.set_defaults(func=_report)

    history = sub.add_parser(
        "history", help="a patient's saved exams from the results store: Σ TAM_100 / breast area per exam"
    )
    history.add_argument("patient_key", metavar="PATIENT_KEY", help="the pseudonymous patient key")
    history.add_argument("--weights", default=None,
                         help="NAME or NAME@VERSION whose analyses count (default: the task's default model)")
    history.add_argument("--jsonl", action="store_true", help="JSON Lines on stdout, one per exam")
    history.set_defaults(func=_history)

    evaluate = sub.add_parser("evaluate", help="segmentation and quantification metrics on held-out phantoms")
    evaluate.add_argument("--weights", default=None, help="registry name or an authors' .pt checkpoint")
    evaluate.add_argument("--seed", type=int, default=None, help="phantom seed (default: the held-out seed)")
    evaluate.add_argument("--n", type=int, default=12, help="number of phantom images")
    evaluate.add_argument("--sizes", default="full,full-small", help="phantom sizes, comma-separated")
    evaluate.add_argument("--threshold", type=float, default=None)
    evaluate.add_argument(
        "--thresholds", default=None,
        help="several cut-offs, comma-separated; `grid` stands for the trainer's (`grid,0.65` adds one): one line "
             "each and the cut-off the trainer's rule would choose (choose on validation views or seeds)"
    )
    evaluate.add_argument("--x", type=float, default=None)
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.add_argument("--device", default=None)
    _add_pixel_spacing(evaluate)
    add_background_option(evaluate, kind="evaluate")
    add_table_option(evaluate, task="bac")
    evaluate.set_defaults(func=_evaluate)
    add_bac_data_evaluation(evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _pixel_spacing(text: str) -> float | tuple[float, float]:
    """``MM`` or ``ROW,COLUMN`` in mm, each positive (argparse type)."""
    from medlim.core.spacing import spacing_pair

    try:
        values = [float(part) for part in text.split(",")]
        pair = spacing_pair(values[0] if len(values) == 1 else values)
    except (ValueError, MedlimError):
        raise argparse.ArgumentTypeError(f"give the pixel spacing as MM or ROW,COLUMN in mm (positive); {text!r}")
    return pair[0] if len(values) == 1 else pair


def _add_pixel_spacing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pixel-spacing", type=_pixel_spacing, default=None, metavar="MM",
        help="pixel spacing at the breast in mm (MM or ROW,COLUMN), overriding the files'; images outside the "
             "weights' training spacing are resampled to it for inference (default: the file's, else the weights')")


def _run(args: argparse.Namespace, *, keep_analysis: bool):
    """The loaded weights and ``(BatchFile, FileOutcome)`` pairs, one per input file, streamed."""
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
        pixel_spacing_mm=args.pixel_spacing,
        engine=engine_of(args),
    )
    return bac_model, zip(files, outcomes)


def _quantify(args: argparse.Namespace) -> int:
    from medlim.core.batch import batch_exit_status, output_folder, print_row
    from medlim.phantoms.base import save_png

    exports = QuantifyExports(args)
    if (problem := exports.problem()) is not None:
        print(f"medlim: {problem}", file=sys.stderr)
        return 2
    if args.out is not None:
        output_folder(args.out)
    bac_model, outcomes = _run(args, keep_analysis=args.out is not None)
    print(f"medlim: {_settings_line(bac_model, args)}", file=sys.stderr)
    analysed = total = 0
    for file, outcome in outcomes:
        total += 1
        analysed += bool(outcome.ok)
        row = outcome.row()
        if outcome.ok:
            if args.out is not None and outcome.analysis is not None:
                mask_path = args.out / f"{file.stem}_bac.png"
                try:
                    save_png(mask_path, outcome.analysis.mask())
                    row["mask"] = str(mask_path)
                except MedlimError as exc:  # the readouts are still worth printing
                    row["mask_error"] = exc.message
            row.update(exports.add(file, outcome, bac_model))
        print_row(row, jsonl=args.jsonl, describe=_describe)
    return max(exports.finish(bac_model), batch_exit_status(analysed, total))


def _settings_line(bac_model: Any, args: argparse.Namespace) -> str:
    """The page's "Numbers from" sentence for these weights and the command's cut-off and X."""
    from medlim.mammography.report import numbers_from

    return numbers_from(bac_model, threshold=bac_model.threshold if args.threshold is None else args.threshold,
                        x=bac_model.x if args.x is None else args.x)


def _describe(row: Mapping[str, Any]) -> str:
    text = (
        f"PM={row['pm']:.1f} AM={row['am']} SIM={row['sim']:.0f} TAM_{row['x']:g}={row['tam_x']} "
        f"TSIM_{row['x']:g}={row['tsim_x']:.0f} breast={row['breast_area']} px (t={row['threshold']}, {row['weights']})"
    )
    spacing, model = row.get("pixel_spacing_mm"), row.get("model_spacing_mm")
    if spacing:
        text += f" spacing={spacing[0]:g}×{spacing[1]:g} mm ({row.get('spacing_source')})"
        if model:
            text += f" resampled to {model[0]:g}×{model[1]:g} mm"
    check = row.get("unlike_training")
    if check:
        verdict = "FLAGGED" if check["flagged"] else "ok"
        text += f" unlike-training={check['score']:.2f}/{check['threshold']:.2f} {verdict}"
    dropped = row.get("region_filter")
    if dropped:
        from medlim.mammography.regions import FilterEffect

        text += f" region-filter: {FilterEffect.from_dict(dropped).text}"
    if row.get("mask_error"):
        text += f" [mask not written: {row['mask_error']}]"
    if row.get("export_error"):
        text += f" [not exported: {row['export_error']}]"
    return text


def _readouts(args: argparse.Namespace) -> tuple[Any, list]:
    """The weights and ``(readout, content sha256)`` of the files that could be analysed;
    failures and store refusals on stderr."""
    from medlim.core.text import escape_control

    readouts = []
    bac_model, outcomes = _run(args, keep_analysis=False)
    for _file, outcome in outcomes:
        if outcome.ok:
            readouts.append((outcome.readout, outcome.content_sha256))
            if outcome.store_error:
                print(f"medlim: {escape_control(outcome.file)}: not stored: {escape_control(outcome.store_error)}",
                      file=sys.stderr)
        else:
            print(f"medlim: {escape_control(outcome.file)}: {outcome.error}: {escape_control(outcome.message)}",
                  file=sys.stderr)
    return bac_model, readouts


def _flag_text(change) -> str:
    if change is None:
        return ""
    return f"  Δ={change.delta:+.5f} ({'real' if change.is_real else change.flag})"


def _longitudinal(args: argparse.Namespace) -> int:
    from medlim.core.text import escape_control
    from medlim.mammography.exam import summarise_exams

    _bac_model, readouts = _readouts(args)
    summary = summarise_exams(readout for readout, _digest in readouts)
    for name in summary.unplaced:
        print(f"medlim: {escape_control(name)}: no patient, date, view or laterality in the file; not placed in an exam",
              file=sys.stderr)
    for exam in summary.exams:
        change = summary.change_before(exam)
        row = {
            **exam.to_dict(),
            "x": args.x,
            "change_from_previous": None if change is None else change.delta,
            "change_noise": None if change is None else change.noise,
            "change_is_real": None if change is None else change.is_real,
        }
        if args.jsonl:
            print(json.dumps(row), flush=True)
        else:
            print(f"{exam.patient_key} {exam.study_date}: ΣTAM_{args.x:g}/area={exam.total:.5f} "
                  f"over {exam.views_counted} views{_flag_text(change)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    """One report per exam of the given files, written as the page writes it."""
    from medlim.core.io.pseudonym import file_label
    from medlim.mammography.report import ReportedView, WeightsSummary, build_reports

    bac_model, readouts = _readouts(args)
    views = []
    for readout, digest in readouts:
        image = readout.view_name or file_label(readout.file, content_sha256=digest)
        views.append(ReportedView(image=image, readout=readout.with_file(image), content_sha256=digest))
    if not views:
        print("medlim: no file could be analysed; no report written", file=sys.stderr)
        return 1
    for report in build_reports(views, WeightsSummary.of(bac_model)):
        csv_path, json_path = report.write(args.out)
        print(json.dumps({"csv": str(csv_path), "json": str(json_path), "views": len(report.views)}) if args.jsonl
              else f"{csv_path}\n{json_path}", flush=True)
    return 0


def _history(args: argparse.Namespace) -> int:
    from medlim.core.store import open_store
    from medlim.core.weights import Registries, parse_model_spec
    from medlim.mammography.analysis import default_bac_weights
    from medlim.mammography.history import patient_history

    registries = Registries.load()
    spec = parse_model_spec(args.weights or default_bac_weights(registries))
    version = spec.version or registries.get(spec.name).version
    with open_store() as store:
        history = patient_history(store, args.patient_key, weights_name=spec.name, weights_version=version)
    _history_notes(history)
    for exam, row in zip(history.exams, history.rows()):
        if args.jsonl:
            print(json.dumps(row), flush=True)
        else:
            change = history.summary.change_before(exam)
            cutoffs = ", ".join(f"{t:g}" for t in row["thresholds"])
            print(f"{row['patient_key']} {row['study_date']}: ΣTAM_100/area={row['tam_100_per_breast_area_sum']:.5f} "
                  f"over {row['views_counted']} views (t={cutoffs}; analyses {row['analysis_ids']}){_flag_text(change)}")
    return 0


def _history_notes(history) -> None:
    """What a person should know when the history is empty or incomplete (on stderr)."""
    if not history.entries:
        print(f"medlim: no saved analyses of patient {history.patient_key} with {history.weights_label}", file=sys.stderr)
        if history.other_weights:
            print(f"medlim: saved with other weights: {', '.join(history.other_weights)} (choose with --weights)",
                  file=sys.stderr)
    if history.without_tam_100:
        print(f"medlim: {history.without_tam_100} image(s) were saved before TAM_100 was kept; analyse them again "
              "to bring them into the history", file=sys.stderr)
    for name in history.summary.unplaced:
        print(f"medlim: {name}: no date, view or laterality stored; not placed in an exam", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    if args.data is not None:
        return run_bac_data_evaluation(args)
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import evaluate_bac
    from medlim.mammography.recipe import HELDOUT_SEED, PhantomSpec, phantom_samples

    bac_model = load_bac_model(args.weights, device=args.device)
    sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    spec = PhantomSpec(seed=HELDOUT_SEED if args.seed is None else args.seed, count=args.n, sizes=sizes)
    if args.thresholds:
        if args.threshold is not None:
            raise ParameterError("give one --threshold or several --thresholds, not both.")
        return _sweep(args, bac_model, spec)
    summary, per_image = evaluate_bac(
        bac_model,
        phantom_samples(spec),
        threshold=args.threshold,
        x=args.x,
        progress=lambda done, name: print(f"[{done}/{spec.count}] {name}", file=sys.stderr, flush=True),
        pixel_spacing_mm=args.pixel_spacing,
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
    from medlim.mammography.recipe import phantom_samples
    from medlim.mammography.sweep import sweep_cutoffs

    sweep = sweep_cutoffs(
        bac_model,
        phantom_samples(spec),
        thresholds=parse_cutoffs(args.thresholds),
        source={"seed": spec.seed},
        x=args.x,
        progress=lambda done, name: print(f"[{done}/{spec.count}] {name}", file=sys.stderr, flush=True),
        pixel_spacing_mm=args.pixel_spacing,
    )
    return print_sweep(sweep, as_json=args.json)
