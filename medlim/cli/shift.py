"""``medlim shift run|tag|export|otdd``: MedShift from the command line (thesis ch. 5).

* ``run`` trains per-class detectors and G on ``--internal``, scores, groups
  and measures ``--external`` and writes ``report.json``, ``images.csv`` (file,
  class, score, group), ``topk.csv`` and HTML plots to ``--out``; scores and
  groups go to the results store (dataset = the external name or ``--dataset``).
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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from medlim.errors import ParameterError

if TYPE_CHECKING:
    from medlim.curation.shift.data import ImageSet

__all__ = ["register"]


def _k(value: str) -> int | str:
    if value == "auto":
        return "auto"
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--k must be 'auto' or a positive integer, {value!r} is given")
    return int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    from medlim.curation.shift.classifier import ARCHITECTURES
    from medlim.curation.shift.detectors import SHIFT_DETECTORS
    from medlim.curation.shift.grouping import GROUP_SCALES
    from medlim.curation.shift.pipeline import FEATURES

    parser = subparsers.add_parser("shift", help="MedShift: find, group and measure shift data in an external dataset")
    sub = parser.add_subparsers(dest="shift_command", metavar="ACTION")

    run = sub.add_parser("run", help="train on --internal, score and group --external, write the report")
    run.add_argument("--internal", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    run.add_argument("--external", required=True, help="folder DIR/<class>/* or phantom:SITE:SEED:PER_CLASS")
    run.add_argument("--detector", choices=SHIFT_DETECTORS, default="cvad", help="per-class detector (default cvad)")
    run.add_argument("--k", type=_k, default="auto", help="groups per class: auto (elbow rule) or N (thesis 5)")
    run.add_argument("--group-scale", choices=GROUP_SCALES, default="log",
                     help="k-means on log scores (default; a stated deviation) or raw scores (the thesis)")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--size", type=int, default=64,
                     help="detector input side in px: a multiple of 32 for CVAD, of 64 for TEND (default 64)")
    run.add_argument("--epochs", type=int, default=60, help="detector epochs (CVAD VAE / TEND autoencoder; default 60)")
    run.add_argument("--head-epochs", type=int, default=20, help="CVAD discriminator / TEND head epochs (default 20)")
    run.add_argument("--classifier", choices=ARCHITECTURES, default="resnet18", help="G's architecture")
    run.add_argument("--classifier-epochs", type=int, default=4, help="G's epochs (default 4)")
    run.add_argument("--features", choices=FEATURES, default="embedding", help="OTDD features (default embedding)")
    run.add_argument("--max-samples", type=int, default=500, help="OTDD samples per side and repeat (default 500)")
    run.add_argument("--repeats", type=int, default=10, help="OTDD repeats (default 10)")
    run.add_argument("--batch-size", type=int, default=256, help="images per streamed batch")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--threads", type=int, default=1, help="torch and BLAS CPU threads (default 1)")
    run.add_argument("--dataset", default=None, help="results-store name of the external dataset")
    run.add_argument("--no-store", action="store_true", help="do not write scores to the results store")
    run.set_defaults(func=_run)

    tag = sub.add_parser("tag", help="tag a whole score group keep or drop")
    tag.add_argument("--dataset", required=True)
    tag.add_argument("--group", type=int, required=True, help="group number (0 = lowest scores)")
    tag.add_argument("--class", dest="class_name", default=None, help="only this class (default: every class)")
    tag.add_argument("--tag", choices=("keep", "drop", "clear"), required=True)
    tag.add_argument("--detector", choices=SHIFT_DETECTORS, default="cvad")
    tag.set_defaults(func=_tag)

    export = sub.add_parser("export", help="write the curated manifest (kept images) after tagging")
    export.add_argument("--dataset", required=True)
    export.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    export.add_argument("--detector", choices=SHIFT_DETECTORS, default="cvad")
    export.add_argument("--drop-groups-from", type=int, default=None,
                        help="also leave out untagged images of groups ≥ this")
    export.set_defaults(func=_export)

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
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _blas_threads(threads: int) -> "contextlib.AbstractContextManager":
    # numpy's BLAS starts one thread per core by default; on a shared CPU that is many
    # times slower for the small products of OTDD. threadpoolctl comes with scikit-learn.
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def _progress_line() -> Callable[[str, int, int], None]:
    last = {"stage": None, "time": 0.0}

    def show(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last["stage"] or done == total or now - last["time"] > 2.0:
            print(f"\r{stage}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
            last.update(stage=stage, time=now)

    return show


def _run(args: argparse.Namespace) -> int:
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift
    from medlim.curation.shift.report import report_dict, save_result, write_outputs

    config = ShiftConfig(
        detector=DetectorConfig(kind=args.detector, input_size=args.size, epochs=args.epochs,
                                head_epochs=args.head_epochs, seed=args.seed, threads=args.threads),
        classifier=ClassifierConfig(architecture=args.classifier, epochs=args.classifier_epochs, seed=args.seed,
                                    threads=args.threads),
        k=args.k, group_scale=args.group_scale, features=args.features, otdd_max_samples=args.max_samples, otdd_repeats=args.repeats,
        batch_size=args.batch_size, seed=args.seed)
    internal = parse_dataset(args.internal)
    external = parse_dataset(args.external)
    started = time.monotonic()
    with _blas_threads(args.threads):
        result = run_shift(internal, external, config, log=lambda line: print(line, file=sys.stderr),
                           progress=_progress_line())
    paths = write_outputs(result, args.out)
    report = report_dict(result)
    if not args.no_store:
        from medlim.core.store import open_store
        from medlim.settings import get_settings

        with open_store() as store:
            name = save_result(store, result, home=get_settings().home, dataset=args.dataset)
        print(f"scores and groups stored as dataset {name!r}", file=sys.stderr)
    series = report["series"]
    print(json.dumps({"k": report["k"], "levels": series["levels"], "macro_f1": series["macro_f1"],
                      "otdd_mean": series["otdd_mean"], "otdd_std": series["otdd_std"],
                      "evidence": report["evidence"], "seconds": round(time.monotonic() - started, 1),
                      "outputs": {k: str(v) for k, v in paths.items()}}, indent=2))
    return 0


def _tag(args: argparse.Namespace) -> int:
    from medlim.core.store import open_store
    from medlim.core.store.curation import tag_group
    from medlim.curation.shift.report import method_name

    with open_store() as store:
        changed = tag_group(store, args.dataset, method=method_name(args.detector), class_name=args.class_name,
                            group=args.group, tag=None if args.tag == "clear" else args.tag)
    print(f"{changed} file(s) changed")
    return 0


def _export(args: argparse.Namespace) -> int:
    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, tag_map
    from medlim.curation.shift.report import curated_manifest, method_name, write_csv

    with open_store() as store:
        scores = get_scores(store, args.dataset, method=method_name(args.detector))
        tags = tag_map(store, args.dataset)
    if not scores:
        raise ParameterError(f"no {method_name(args.detector)} scores for dataset {args.dataset!r}; "
                             "run `medlim shift run` first.")
    rows = [{"file": s.file, "class": s.class_name, "score": s.score, "group": s.group} for s in scores]
    kept = curated_manifest(rows, tags, drop_groups_from=args.drop_groups_from)
    write_csv(kept, args.out, columns=["file", "class", "score", "group", "tag"])
    print(f"kept {len(kept)} of {len(rows)} images -> {args.out}")
    return 0


def _otdd(args: argparse.Namespace) -> int:
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.pipeline import dataset_otdd

    a, b = parse_dataset(args.a), parse_dataset(args.b)
    if args.per_class:
        return _otdd_per_class(a, b, args)
    with _blas_threads(args.threads):
        result, settings = dataset_otdd(a, b, features=args.features, size=args.size, max_samples=args.max_samples,
                                        repeats=args.repeats, seed=args.seed, classifier_epochs=args.classifier_epochs)
    output = {"otdd_mean": result.mean, "otdd_std": result.std, "repeats": result.repeats, "n_a": result.n_a,
              "n_b": result.n_b, "features": args.features, "settings": settings}
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(f"otdd_mean {result.mean:.6g}\notdd_std {result.std:.6g}\nrepeats {result.repeats}\n"
              f"n_a {result.n_a}\nn_b {result.n_b}\nfeatures {args.features}")
        print("settings " + json.dumps(settings))
    return 0


def _otdd_per_class(a: ImageSet, b: ImageSet, args: argparse.Namespace) -> int:
    from medlim.curation.shift.pipeline import dataset_otdd_per_class

    with _blas_threads(args.threads):
        results, positives_a, positives_b, settings = dataset_otdd_per_class(
            a, b, features=args.features, size=args.size, max_samples=args.max_samples, repeats=args.repeats,
            seed=args.seed, classifier_epochs=args.classifier_epochs)
    rows = {name: {"otdd_mean": r.mean, "otdd_std": r.std, "repeats": r.repeats, "n_a": r.n_a, "n_b": r.n_b,
                   "positives_a": positives_a[name], "positives_b": positives_b[name]}
            for name, r in results.items()}
    if args.json:
        print(json.dumps({"per_class": rows, "features": args.features, "settings": settings}, indent=2))
        return 0
    width = max(len("class"), *(len(name) for name in rows))
    print(f"{'class':<{width}}  otdd_mean   otdd_std  repeats  n_a  n_b  positives_a  positives_b")
    for name, row in rows.items():
        print(f"{name:<{width}}  {row['otdd_mean']:9.6g}  {row['otdd_std']:9.6g}  {row['repeats']:7d}  "
              f"{row['n_a']:3d}  {row['n_b']:3d}  {row['positives_a']:11d}  {row['positives_b']:11d}")
    print(f"features {args.features}")
    print("settings " + json.dumps(settings))
    return 0
