"""``medlim retrieval build|query|evaluate`` and ``medlim train oscars|pms`` (thesis ch. 6).

* ``build --data DIR --model NAME --index PATH``: encode a data folder, save the
  index file and record its items in the results store.
* ``query --index PATH --k K FILES...``: the top K of each query image; one line
  per neighbour with the caption the page shows under it (``#rank · labels ·
  cos 0.9810 · A 0.423``) and the file, or JSON lines (``query, rank, file, labels, score`` plus ``score_name``,
  ``item_id``, ``anomaly_score``, ``site``) with ``--jsonl``. The score is the
  cosine similarity for embedding models and the dissimilarity DS for PMS.
* ``evaluate``: the comparison tables (Tables 6.1–6.3 style) of the shipped
  models, from their manifest; ``--recompute`` re-runs the held-out
  evaluation with the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

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
    build.set_defaults(func=_build)

    query = sub.add_parser("query", help="top-K similar items of query images")
    query.add_argument("--index", type=Path, required=True)
    query.add_argument("--k", type=int, default=10)
    query.add_argument("files", nargs="+", help="query image files or folders")
    query.add_argument("--label", action="append", default=[], help="keep only items with this label (repeatable)")
    query.add_argument("--unweighted", action="store_true", help="PMS: unweighted DS")
    query.add_argument("--jsonl", action="store_true", help="JSON lines instead of a table")
    query.add_argument("--weights-dir", default=None)
    query.set_defaults(func=_query)

    evaluate = sub.add_parser("evaluate", help="comparison tables of the shipped retrieval models")
    evaluate.add_argument("--recompute", action="store_true",
                          help="re-run the held-out evaluation with the shipped weights (minutes on a CPU)")
    evaluate.add_argument("--json", action="store_true", help="JSON instead of Markdown tables")
    evaluate.add_argument("--weights-dir", default=None)
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _registry(args: argparse.Namespace):  # noqa: ANN202 - Registry is imported lazily
    from medlim.core.weights import Registry

    return Registry.load(args.weights_dir) if args.weights_dir else None


def _build(args: argparse.Namespace) -> int:
    from medlim.curation.retrieval.service import build_collection

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"encoded {done}/{total}", file=sys.stderr, flush=True)

    built = build_collection(args.data, args.model, args.index, name=args.name, registry=_registry(args),
                             kind=args.kind, append=args.append, progress=progress)
    print(json.dumps({"name": built.name, "index": str(built.path), "model": built.model, "count": built.count,
                      "dim": built.dim}))
    return 0


def _query(args: argparse.Namespace) -> int:
    from medlim.core.io import read_image
    from medlim.core.io.files import IMAGE_SUFFIXES, collect_files
    from medlim.curation.retrieval.service import query_collection

    files = collect_files(args.files, suffixes=IMAGE_SUFFIXES)
    images = [read_image(f).pixels for f in files]
    results = query_collection(args.index, images, k=args.k, names=[str(f) for f in files],
                               require_labels=args.label, weighted=not args.unweighted, registry=_registry(args))
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
    """Add ``oscars`` and ``pms`` to ``medlim train``."""
    oscars = sub.add_parser("oscars", help="OSCARS + plain-triplet + classification embeddings (thesis §6.1)")
    oscars.add_argument("--seed", type=int, default=1, help="phantom and training seed")
    oscars.add_argument("--per-class", type=int, default=140, help="external training phantoms per class")
    oscars.add_argument("--internal-per-class", type=int, default=30, help="internal phantoms per class (detectors)")
    oscars.add_argument("--heldout-per-class", type=int, default=50, help="held-out external phantoms per class")
    oscars.add_argument("--methods", default="oscars,triplet,classification", help="comma-separated")
    oscars.add_argument("--epochs", type=int, default=30)
    oscars.add_argument("--weights-dir", default=None)
    oscars.set_defaults(func=_train_oscars)

    pms = sub.add_parser("pms", help="PMS multi-label retrieval on chest phantoms (thesis §6.2)")
    pms.add_argument("--seed", type=int, default=1)
    pms.add_argument("--n", type=int, default=1200, help="training phantoms")
    pms.add_argument("--heldout-n", type=int, default=600, help="held-out phantoms")
    pms.add_argument("--warmup-epochs", type=int, default=5, help="thesis 5")
    pms.add_argument("--epochs", type=int, default=10, help="joint epochs after the warm-up (thesis 10)")
    pms.add_argument("--label-set", choices=("chest8", "mimic14"), default="chest8",
                     help="chest phantom labels: chest8 (8 independent findings, default) or mimic14 (the 14 "
                          "MIMIC-CXR classes with hierarchy and co-occurrence); recorded in the manifest")
    pms.add_argument("--weights-dir", default=None)
    pms.set_defaults(func=_train_pms)


def _command(name: str) -> str:
    argv = sys.argv[sys.argv.index(name) + 1 :] if name in sys.argv else []
    return " ".join(["medlim", "train", name, *(shlex.quote(a) for a in argv)])


def _train_oscars(args: argparse.Namespace) -> int:
    from medlim.curation.retrieval.recipe import train_oscars_family
    from medlim.curation.retrieval.train import RetrievalTrainingConfig

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    run = train_oscars_family(seed=args.seed, per_class=args.per_class, internal_per_class=args.internal_per_class,
                              heldout_per_class=args.heldout_per_class, methods=methods,
                              config=RetrievalTrainingConfig(seed=args.seed, epochs=args.epochs),
                              registry=_registry(args), command=_command("oscars"),
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({m: {"name": e.name, "version": e.version, "file": e.file, "heldout": run.metrics[m]}
                      for m, e in run.entries.items()}, indent=1))
    return 0


def _train_pms(args: argparse.Namespace) -> int:
    from medlim.curation.retrieval.recipe import train_pms_recipe
    from medlim.curation.retrieval.train import RetrievalTrainingConfig

    entry, results, _ = train_pms_recipe(
        seed=args.seed, n=args.n, heldout_n=args.heldout_n, label_set=args.label_set,
        config=RetrievalTrainingConfig(seed=args.seed, epochs=args.epochs, warmup_epochs=args.warmup_epochs),
        registry=_registry(args), command=_command("pms"), log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({"name": entry.name, "version": entry.version, "file": entry.file, "heldout": results}, indent=1))
    return 0
