"""``medlim retrieval build|query|evaluate`` (thesis ch. 6); ``medlim train oscars|pms`` is :mod:`medlim.cli.train_retrieval`.

* ``build --data DIR --model NAME --index PATH``: encode a data folder, save the
  index file and record its items in the results store.
* ``query --index PATH --k K FILES...``: the top K of each query image; one line
  per neighbour with the caption the page shows under it (``#rank · labels ·
  cos 0.9810 · A 0.423``) and the file, or JSON lines (``query, rank, file, labels, score`` plus ``score_name``,
  ``item_id``, ``anomaly_score``, ``site``) with ``--jsonl``. The score is the
  cosine similarity for embedding models and the dissimilarity DS for PMS,
  weighted as ``--ds thesis|symmetric|unweighted`` says (default
  :data:`medlim.curation.retrieval.pms.DEFAULT_DS`; ``--unweighted`` is
  ``--ds unweighted``).
* ``evaluate``: the comparison tables (Tables 6.1–6.3 style) of the shipped
  models, from their manifest; ``--recompute`` re-runs the held-out
  evaluation with the shipped weights. ``evaluate --model NAME --data DIR``
  makes the same tables for registered models on a labelled folder
  (leave-one-out): P@K (precision) beside hit@K (the thesis's hit rate),
  S@K with an ``anomaly_score`` column; PMS with every ``--ds`` weighting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medlim.cli.engine_options import add_engine_options, engine_of
from medlim.cli.evaluation_table import add_table_option
from medlim.cli.jobs import add_background_option
from medlim.errors import ParameterError

__all__ = ["register", "add_train_parsers"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("retrieval", help="similar-image search with OSCARS or PMS (thesis ch. 6)")
    sub = parser.add_subparsers(dest="retrieval_command", metavar="ACTION")

    build = sub.add_parser("build", help="index a data folder with a retrieval model")
    build.add_argument("--data", type=Path, required=True,
                       help="folder with manifest.csv (file, class or labels, site, anomaly_score) or <class>/ folders")
    build.add_argument("--model", required=True, help="registered retrieval model, e.g. oscars-radiograph")
    build.add_argument("--index", type=Path, required=True, help="index file to write (.npz)")
    build.add_argument("--name", default=None, help="collection name in the store (default: the file stem)")
    build.add_argument("--kind", choices=("flat", "hnsw"), default="flat", help="exact (default) or HNSW search")
    build.add_argument("--append", action="store_true",
                       help="add the folder's new images to an existing index (ids continue; old ids unchanged)")
    build.add_argument("--weights-dir", default=None)
    add_engine_options(build)
    build.set_defaults(func=_build)
    add_background_option(build, kind="retrieval.build")

    query = sub.add_parser("query", help="top-K similar items of query images")
    query.add_argument("--index", type=Path, required=True)
    query.add_argument("--k", type=int, default=10)
    query.add_argument("files", nargs="+", help="query image files or folders")
    query.add_argument("--label", action="append", default=[], help="keep only items with this label (repeatable)")
    query.add_argument("--ds", choices=_DS_CHOICES, default=None,
                       help="PMS: DS weighting — thesis (eq. 6.5, weights p^q), symmetric (weights max(p^q, p^t): "
                            "a candidate's extra findings count; a deviation), unweighted (default: "
                            f"{_default_ds()})")
    query.add_argument("--unweighted", action="store_true", help="PMS: the same as --ds unweighted")
    query.add_argument("--jsonl", action="store_true", help="JSON lines instead of a table")
    query.add_argument("--weights-dir", default=None)
    query.set_defaults(func=_query)

    evaluate = sub.add_parser("evaluate", help="comparison tables of the shipped models, or of models on your data")
    evaluate.add_argument("--recompute", action="store_true",
                          help="re-run the held-out evaluation with the shipped weights (minutes on a CPU)")
    evaluate.add_argument("--model", action="append", default=[],
                          help="with --data: a registered retrieval model NAME[@VERSION] (repeatable, one per "
                               "method, e.g. NAME and NAME-triplet; or one PMS model)")
    evaluate.add_argument("--data", type=Path, default=None,
                          help="with --model: a labelled folder (class folders / file,class manifest, optional "
                               "anomaly_score column; PMS: file,labels manifest); leave-one-out over its images")
    evaluate.add_argument("--ds", choices=_DS_CHOICES, action="append", default=None,
                          help="with a PMS model: the DS weighting(s) to report (repeatable; default all three)")
    evaluate.add_argument("--skip-bad", action="store_true",
                          help="with --data: leave out rows with problems instead of refusing the folder")
    evaluate.add_argument("--json", action="store_true", help="JSON instead of Markdown tables")
    evaluate.add_argument("--weights-dir", default=None)
    add_background_option(evaluate, kind="evaluate")
    add_table_option(evaluate, task="retrieval")
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


_DS_CHOICES = ("thesis", "symmetric", "unweighted")


def _default_ds() -> str:
    from medlim.curation.retrieval.weighting import DEFAULT_DS

    return DEFAULT_DS


def _registry(args: argparse.Namespace):  # noqa: ANN202 - Registries is imported lazily
    """The shipped registry (``--weights-dir`` or the settings') with the user registry (MEDLIM_MODELS_DIR)."""
    from medlim.core.weights import Registries

    return Registries.load(weights_dir=args.weights_dir) if args.weights_dir else None


def _build(args: argparse.Namespace) -> int:
    from medlim.curation.retrieval.service import build_collection

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"encoded {done}/{total}", file=sys.stderr, flush=True)

    built = build_collection(args.data, args.model, args.index, name=args.name, registry=_registry(args),
                             kind=args.kind, append=args.append, progress=progress, engine=engine_of(args))
    print(json.dumps({"name": built.name, "index": str(built.path), "model": built.model, "count": built.count,
                      "dim": built.dim}))
    return 0


def _query(args: argparse.Namespace) -> int:
    from medlim.core.io import read_image
    from medlim.core.io.files import IMAGE_SUFFIXES, collect_files
    from medlim.curation.retrieval.service import query_collection

    if args.unweighted and args.ds not in (None, "unweighted"):
        raise ParameterError(f"--unweighted and --ds {args.ds} contradict each other; give one.")
    ds = "unweighted" if args.unweighted else (args.ds or _default_ds())
    files = collect_files(args.files, suffixes=IMAGE_SUFFIXES)
    images = [read_image(f).pixels for f in files]
    results = query_collection(args.index, images, k=args.k, names=[str(f) for f in files],
                               require_labels=args.label, ds=ds, registry=_registry(args))
    for result in results:
        for hit in result.neighbours:
            if args.jsonl:
                print(json.dumps(hit.to_dict()))
            else:  # the caption the page writes under each neighbour, then the file
                print(f"{hit.query}\t{hit.caption}\t{hit.file}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from medlim.curation.retrieval.recipe import recompute_tables
    from medlim.curation.retrieval.service import evaluation_tables

    if args.model or args.data is not None:
        return _evaluate_folder(args)
    if args.ds:
        raise ParameterError("--ds applies with --model NAME --data DIR (the shipped tables show every weighting).")
    registry = _registry(args)
    tables = recompute_tables(registry=registry) if args.recompute else evaluation_tables(registry=registry)
    if not tables:
        print("medlim: no retrieval models are registered; run `medlim train oscars` / `medlim train pms`.",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{"title": t.title, "rows": t.records(), "notes": list(t.notes)} for t in tables], indent=1))
    else:
        print("\n\n".join(t.to_markdown() for t in tables))
    return 0


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``oscars`` and ``pms`` to ``medlim train`` (kept for callers; see :mod:`medlim.cli.train_retrieval`)."""
    from medlim.cli.train_retrieval import register_train_commands

    register_train_commands(sub)


def _evaluate_folder(args: argparse.Namespace) -> int:
    from medlim.core.training import stderr_progress
    from medlim.curation.retrieval.folder import evaluate_on_folder

    if not args.model or args.data is None or args.recompute:
        raise ParameterError("evaluate a model on your data with both --model NAME and --data DIR (not --recompute).")
    result = evaluate_on_folder(args.model, args.data, weightings=tuple(args.ds or _DS_CHOICES), registry=_registry(args),
                                skip_bad=args.skip_bad, progress=stderr_progress)
    if args.json:
        print(json.dumps(result.to_json(), allow_nan=False, ensure_ascii=False))
    else:
        print("\n\n".join(t.to_markdown() for t in result.tables))
    return 0
