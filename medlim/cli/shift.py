"""``medlim shift check|run|show|topk|tag|export|otdd``: MedShift from the command line (thesis ch. 5).

* ``check`` prints what a run of ``--internal`` against ``--external`` will use, as the
  Curation page shows it above "Train and score": images per class in each, the folder
  files left out because they are no image (with why), and what would stop the run;
  ``--json`` prints one object. Exit status 0 when the run can start, 1 when it cannot.
  Only first bytes are read (:func:`~medlim.curation.shift.check.check_shift_data`).
* ``run`` prints the same check to stderr first and stops there on a problem; then it
  trains per-class detectors and G on ``--internal``, scores, groups
  and measures ``--external`` and writes ``report.json``, ``images.csv`` (file,
  class, score, group), ``topk.csv`` and HTML plots to ``--out``; scores and
  groups go to the results store (dataset = the external name or ``--dataset``).
  An image whose pixels do not decode (a truncated PNG) is left out when read, with
  one stderr line (its pseudonymous label in a job's log), and the run goes on.
  A name holding a run already is refused unless ``--replace`` is given
  (the old run's scores and tags are then deleted). Its defaults are
  :class:`~medlim.curation.shift.service.ShiftRunConfig`'s, the page's too.
* ``show`` prints a stored run's numbers as the Curation page shows them
  (images, k, tags, AUROC, the group table, the OTDD and macro-F1 curves).
* ``topk`` prints a stored run's TOP-k table (thesis Table 5.2), as the page does.
* ``tag`` tags a whole score group keep/drop in the store.
* ``export`` writes the curated manifest: images not tagged ``drop`` (and,
  with ``--drop-groups-from G``, untagged images of groups ≥ G left out too).
* ``otdd`` measures two class-folder datasets: ``otdd_mean, otdd_std, repeats,
  n_a, n_b, features`` and the settings used; ``--per-class`` measures each
  label separately (has it / has it not: multi-label data such as chest X-rays,
  whose findings come from a ``labels`` manifest column; else the classes).

Datasets are folders ``DIR/<class>/*`` or generated phantoms ``phantom:SITE:SEED:PER_CLASS``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.cli.engine_options import add_engine_options, engine_of
from medlim.cli.jobs import add_background_option
from medlim.cli.stats_option import on_off
from medlim.errors import ParameterError

if TYPE_CHECKING:
    from medlim.curation.shift.check import LeftOutImage
    from medlim.curation.shift.data import ImageSet

__all__ = ["register"]


def _k(value: str) -> int | str:
    if value == "auto":
        return "auto"
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--k must be 'auto' or a positive integer, {value!r} is given")
    return int(value)


def _add_run(sub: argparse._SubParsersAction) -> None:
    from medlim.curation.shift.classifier import ARCHITECTURES
    from medlim.curation.shift.detectors import SHIFT_DETECTORS
    from medlim.curation.shift.grouping import GROUP_ANCHORS, GROUP_SCALES
    from medlim.curation.shift.otdd import FEATURES
    from medlim.curation.shift.service import ShiftRunConfig

    d = ShiftRunConfig()  # the one set of defaults (the page's widgets start at them too)
    run = sub.add_parser("run", help="train on --internal, score and group --external, write the report")
    run.add_argument("--internal", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    run.add_argument("--external", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    run.add_argument("--detector", choices=SHIFT_DETECTORS, default=d.detector, help=f"per-class detector (default {d.detector})")
    run.add_argument("--stats", type=on_off, default=d.stats, metavar="{on,off}",
                     help="fuse the detector's score with acquisition statistics at 256 px (default on, a stated "
                          "deviation for mild shifts; off: the thesis)")
    run.add_argument("--k", type=_k, default=d.k, help=f"groups per class: auto (elbow rule) or N (thesis 5; default {d.k})")
    run.add_argument("--group-scale", choices=GROUP_SCALES, default=d.group_scale,
                     help="k-means on log scores (default; a stated deviation) or raw scores (the thesis)")
    run.add_argument("--group-anchor", choices=GROUP_ANCHORS, default=d.group_anchor,
                     help="threshold (default; a stated deviation): each class's lowest group is exactly its images "
                          "below the class detector's calibrated threshold, k-means groups the rest; none: k-means "
                          "of all scores (the thesis)")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--size", type=int, default=d.size,
                     help=f"detector input side in px: a multiple of 32 for CVAD, of 64 for TEND (default {d.size})")
    run.add_argument("--epochs", type=int, default=d.epochs,
                     help=f"detector epochs (CVAD VAE / TEND autoencoder; default {d.epochs})")
    run.add_argument("--head-epochs", type=int, default=d.head_epochs,
                     help=f"CVAD discriminator / TEND head epochs (default {d.head_epochs})")
    run.add_argument("--classifier", choices=ARCHITECTURES, default=d.classifier, help="G's architecture")
    run.add_argument("--classifier-epochs", type=int, default=d.classifier_epochs,
                     help=f"G's epochs (default {d.classifier_epochs})")
    run.add_argument("--features", choices=FEATURES, default=d.features, help=f"OTDD features (default {d.features})")
    run.add_argument("--max-samples", dest="otdd_max_samples", type=int, default=d.otdd_max_samples,
                     help=f"OTDD samples per side and repeat (default {d.otdd_max_samples})")
    run.add_argument("--repeats", dest="otdd_repeats", type=int, default=d.otdd_repeats,
                     help=f"OTDD repeats (default {d.otdd_repeats})")
    run.add_argument("--batch-size", type=int, default=d.batch_size, help="images per streamed batch")
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--threads", type=int, default=d.threads, help=f"torch and BLAS CPU threads (default {d.threads})")
    run.add_argument("--dataset", default=None, help="results-store name of the external dataset")
    run.add_argument("--replace", action="store_true",
                     help="replace the run saved under that name (its scores and keep/drop tags are deleted)")
    run.add_argument("--no-store", action="store_true", help="do not write scores to the results store")
    add_engine_options(run)  # the scoring stage (external images) scales out; training stays in this process
    run.set_defaults(func=_run)
    add_background_option(run, kind="shift.run")


def _add_check(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="what a run will use: images per class, files left out, problems")
    check.add_argument("--internal", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    check.add_argument("--external", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_check)


def _add_stored(sub: argparse._SubParsersAction) -> None:
    from medlim.curation.shift.detectors import SHIFT_DETECTORS

    show = sub.add_parser("show", help="a stored run's numbers, as the Curation page shows them")
    show.add_argument("--dataset", required=True)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)
    topk = sub.add_parser("topk", help="a stored run's TOP-k table (thesis Table 5.2)")
    topk.add_argument("--dataset", required=True)
    topk.add_argument("--json", action="store_true", help="print JSON")
    topk.set_defaults(func=_topk)

    detector_help = "the run's detector (default: the one in its saved report, else cvad)"
    tag = sub.add_parser("tag", help="tag a whole score group keep or drop")
    tag.add_argument("--dataset", required=True)
    tag.add_argument("--group", type=int, required=True, help="group number (0 = lowest scores)")
    tag.add_argument("--class", dest="class_name", default=None, help="only this class (default: every class)")
    tag.add_argument("--tag", choices=("keep", "drop", "clear"), required=True)
    tag.add_argument("--detector", choices=SHIFT_DETECTORS, default=None, help=detector_help)
    tag.set_defaults(func=_tag)

    export = sub.add_parser("export", help="write the curated manifest (kept images) after tagging")
    export.add_argument("--dataset", required=True)
    export.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    export.add_argument("--detector", choices=SHIFT_DETECTORS, default=None, help=detector_help)
    export.add_argument("--drop-groups-from", type=int, default=None,
                        help="also leave out untagged images of groups ≥ this")
    export.set_defaults(func=_export)


def _add_otdd(sub: argparse._SubParsersAction) -> None:
    from medlim.curation.shift.otdd import FEATURES

    otdd = sub.add_parser("otdd", help="OTDD between two class-folder datasets (mean ± std over repeats)")
    otdd.add_argument("a", help="dataset A (folder or phantom spec)")
    otdd.add_argument("b", help="dataset B (folder or phantom spec)")
    otdd.add_argument("--features", choices=FEATURES, default="pixels",
                      help="pixels, or embedding of a ResNet-18 G trained on A (default pixels)")
    otdd.add_argument("--size", type=int, default=32, help="image side in px (default 32)")
    otdd.add_argument("--max-samples", type=int, default=500, help="samples per side and repeat (default 500)")
    otdd.add_argument("--repeats", type=int, default=10, help="repeats (default 10)")
    otdd.add_argument("--classifier-epochs", type=int, default=6, help="G's epochs for --features embedding")
    otdd.add_argument("--seed", type=int, default=0)
    otdd.add_argument("--threads", type=int, default=1, help="torch and BLAS CPU threads (default 1)")
    otdd.add_argument("--per-class", action="store_true",
                      help="one OTDD per label (binary has / has not; multi-label manifests: column 'labels', A|B)")
    otdd.add_argument("--json", action="store_true", help="print JSON")
    otdd.set_defaults(func=_otdd)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("shift", help="MedShift: find, group and measure shift data in an external dataset")
    sub = parser.add_subparsers(dest="shift_command", metavar="ACTION")
    _add_check(sub)
    _add_run(sub)
    _add_stored(sub)
    _add_otdd(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _progress_line() -> Callable[[str, int, int], None]:
    last: dict[str, Any] = {"stage": None, "time": 0.0}

    def show(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last["stage"] or done == total or now - last["time"] > 2.0:
            print(f"\r{stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
            last.update(stage=stage, time=now)

    return show


def _run(args: argparse.Namespace) -> int:
    from medlim.curation.shift.check import check_shift_data
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.report import ShiftReport, save_result, write_outputs
    from medlim.curation.shift.service import (
        ShiftRunConfig,
        check_run_name,
        run_configured,
    )

    config = ShiftRunConfig.from_options(args)
    internal = parse_dataset(args.internal)
    external = parse_dataset(args.external)
    check = check_shift_data(internal, external)  # what `medlim shift check` and the page show, before training
    print("\n".join(check.lines()), file=sys.stderr)
    if not check.ok:
        raise ParameterError(check.problems[0])
    name = None
    if not args.no_store:  # a taken name is refused before minutes of training, not after
        from medlim.core.store import open_store

        with open_store() as store:
            name = check_run_name(store, args.dataset or external.name, replace=args.replace)
    started = time.monotonic()
    result = run_configured(internal, external, config, log=lambda line: print(line, file=sys.stderr),
                            progress=_progress_line(), engine=engine_of(args))
    _say_decode_left_out(check.left_out, result.left_out)
    paths = write_outputs(result, args.out)
    report = ShiftReport.from_result(result)
    if name is not None:
        from medlim.core.store import open_store
        from medlim.settings import get_settings

        with open_store() as store:
            name = save_result(store, result, home=get_settings().home, dataset=name, replace=args.replace)
        print(f"scores and groups stored as dataset {name!r}", file=sys.stderr)
    evidence = None if report.evidence is None else report.evidence.to_json()
    summary = {"k": report.k, "levels": report.levels, "macro_f1": report.macro_f1, "otdd_mean": report.otdd_mean,
               "otdd_std": report.otdd_std, "evidence": evidence, "seconds": round(time.monotonic() - started, 1),
               "left_out": {dataset: sum(item.dataset == dataset for item in result.left_out)
                            for dataset in ("internal", "external")},
               "outputs": {k: str(v) for k, v in paths.items()}}
    print(json.dumps(_json_safe(summary), indent=2))
    return 0


def _say_decode_left_out(listed: Sequence[LeftOutImage], used: Sequence[LeftOutImage]) -> None:
    """After a run: how many images of each folder were left out while read (not decodable), beside the listing's."""
    for dataset in ("internal", "external"):
        read = [item for item in used if item.dataset == dataset and item not in listed]
        if read:  # each had its line when it was read (the pipeline's log)
            every = sum(item.dataset == dataset for item in used)
            print(f"{len(read)} of the {dataset} folder's images could not be decoded and were left out "
                  f"({every} left out in all).", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from medlim.curation.shift.check import check_shift_data
    from medlim.curation.shift.data import parse_dataset

    check = check_shift_data(parse_dataset(args.internal), parse_dataset(args.external))
    if args.json:
        print(json.dumps(check.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(check.lines()))
    return 0 if check.ok else 1


def _json_safe(value: Any) -> Any:
    """NaN → ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _stored_run(name: str) -> Any:
    from medlim.core.store import open_store
    from medlim.curation.shift.service import open_run
    from medlim.settings import get_settings

    with open_store() as store:
        return open_run(store, get_settings().home, name)


def _show(args: argparse.Namespace) -> int:
    run = _stored_run(args.dataset)
    summary = run.summary()
    if args.json:
        print(json.dumps(_json_safe(summary), indent=2))
        return 0
    auroc = "–" if summary["auroc"] is None else f"{summary['auroc']:.3f}"
    print(f"dataset {run.name}\nexternal images {run.images}\ngroups per class (k) {run.report.k}\n"
          f"tagged {run.tagged}\nAUROC vs known shift {auroc}")
    if run.report.group_anchor == "threshold":
        print("group 0 of each class: its images below the class detector's calibrated threshold ("
              + ", ".join(f"{name} {value:.4g}" for name, value in sorted(run.report.group_floors.items())) + ")")
    print(f"{'class':<12} {'group':>5} {'images':>6} {'min score':>10} {'max score':>10} {'keep':>4} {'drop':>4}")
    for g in run.group_table():
        print(f"{g.class_name:<12} {g.group:>5} {g.images:>6} {g.min_score:>10.4f} {g.max_score:>10.4f} "
              f"{g.keep:>4} {g.drop:>4}")
    curve = summary["otdd"]
    for level, mean, std, f1 in zip(curve["levels"], curve["otdd_mean"], curve["otdd_std"], curve["macro_f1"]):
        print(f"TOP {level}: OTDD {mean:.4f} ± {std:.4f}, macro-F1 {f1:.4f}")
    if run.shift_types is not None:  # issue 13: detection per shift type
        print(f"per shift type (share above each class detector's calibrated threshold / AUROC against the "
              f"{run.shift_types.source}):")
        print("\n".join(run.shift_types.lines()))
    return 0


def _topk(args: argparse.Namespace) -> int:
    rows = _stored_run(args.dataset).topk_table()
    if args.json:
        print(json.dumps(_json_safe([row.to_json() for row in rows]), indent=2))
        return 0
    print(f"{'subset':<7} {'class':<12} {'precision':>9} {'recall':>9} {'f1':>9} {'auc':>9} {'images':>6}")
    for row in rows:
        print(f"{row.subset:<7} {row.class_name:<12} {row.precision:>9.4f} {row.recall:>9.4f} {row.f1:>9.4f} "
              f"{row.auc:>9.4f} {row.images:>6}")
    return 0


def _method(dataset: str, detector: str | None) -> str:
    """The store method of ``dataset``'s run: ``--detector``'s, else its saved report's, else CVAD's."""
    from medlim.curation.shift.report import load_report, method_name
    from medlim.settings import get_settings

    if detector is not None:
        return method_name(detector)
    report = load_report(get_settings().home, dataset)
    return report.method if report is not None else method_name("cvad")


def _tag(args: argparse.Namespace) -> int:
    from medlim.core.store import open_store
    from medlim.core.store.curation import tag_group

    with open_store() as store:
        changed = tag_group(store, args.dataset, method=_method(args.dataset, args.detector),
                            class_name=args.class_name, group=args.group,
                            tag=None if args.tag == "clear" else args.tag)
    print(f"{changed} file(s) changed")
    return 0


def _export(args: argparse.Namespace) -> int:
    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, tag_map
    from medlim.curation.shift.report import CURATED_COLUMNS, curated_rows, write_csv

    with open_store() as store:
        method = _method(args.dataset, args.detector)
        scores = get_scores(store, args.dataset, method=method)
        tags = tag_map(store, args.dataset)
    if not scores:
        raise ParameterError(f"no {method} scores for dataset {args.dataset!r}; run `medlim shift run` first.")
    kept = curated_rows(scores, tags, drop_groups_from=args.drop_groups_from)
    write_csv(kept, args.out, columns=list(CURATED_COLUMNS))
    print(f"kept {len(kept)} of {len(scores)} images -> {args.out}")
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _say_listing_left_out(a: ImageSet, b: ImageSet) -> None:
    """One stderr line per file of either folder left out at listing (no image the reader takes), as a run says."""
    from medlim.curation.shift.check import LeftOutImage

    for image_set in (a, b):
        for file, why in image_set.left_out:
            _stderr(LeftOutImage(dataset=image_set.name, file=file, why=why).line())


def _otdd(args: argparse.Namespace) -> int:
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.distance import dataset_otdd
    from medlim.curation.shift.service import blas_threads

    a, b = parse_dataset(args.a), parse_dataset(args.b)
    _say_listing_left_out(a, b)
    if args.per_class:
        return _otdd_per_class(a, b, args)
    with blas_threads(args.threads):
        measured = dataset_otdd(a, b, features=args.features, size=args.size, max_samples=args.max_samples,
                                repeats=args.repeats, seed=args.seed, classifier_epochs=args.classifier_epochs,
                                log=_stderr)
    if args.json:
        print(json.dumps(measured.to_json(), indent=2))
    else:
        r = measured.result
        print(f"otdd_mean {r.mean:.6g}\notdd_std {r.std:.6g}\nrepeats {r.repeats}\n"
              f"n_a {r.n_a}\nn_b {r.n_b}\nfeatures {measured.features}")
        print("settings " + json.dumps(dict(measured.settings)))
    return 0


def _otdd_per_class(a: ImageSet, b: ImageSet, args: argparse.Namespace) -> int:
    from medlim.curation.shift.distance import dataset_otdd_per_class
    from medlim.curation.shift.service import blas_threads

    with blas_threads(args.threads):
        measured = dataset_otdd_per_class(a, b, features=args.features, size=args.size, max_samples=args.max_samples,
                                          repeats=args.repeats, seed=args.seed,
                                          classifier_epochs=args.classifier_epochs, log=_stderr)
    if args.json:
        print(json.dumps(measured.to_json(), indent=2))
        return 0
    width = max(len("class"), *(len(item.label) for item in measured.labels))
    print(f"{'class':<{width}}  otdd_mean   otdd_std  repeats  n_a  n_b  positives_a  positives_b")
    for item in measured.labels:
        r = item.result
        print(f"{item.label:<{width}}  {r.mean:9.6g}  {r.std:9.6g}  {r.repeats:7d}  "
              f"{r.n_a:3d}  {r.n_b:3d}  {item.positives_a:11d}  {item.positives_b:11d}")
    print(f"features {measured.features}")
    print("settings " + json.dumps(dict(measured.settings)))
    return 0
