"""``medlim train``: train on your folder (``--data DIR``) or reproduce the shipped weights from a seed.

Each room adds a subcommand. Trainers that learn from a user's folder use the
harness of :mod:`medlim.core.training` (dataset check, split, time budget,
best validated state, user registry) and print one JSON object
``{"registered": [...], "validation": {...}}`` as the last line of stdout;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on your folder (--data DIR), or on phantoms (reproduces the shipped weights)")
    sub = parser.add_subparsers(dest="train_command", metavar="MODEL")

    scunet = sub.add_parser("scunet", help="SCU-Net for breast arterial calcification (thesis §3.3)")
    scunet.add_argument("--seed", type=int, default=1, help="phantom series and training seed")
    scunet.add_argument("--n", type=int, default=320, help="training phantom images")
    scunet.add_argument("--heldout-n", type=int, default=24, help="held-out phantom images for evaluation")
    scunet.add_argument("--eval-seed", type=int, default=None,
                        help="phantom seed of the evaluation written into the manifest (default: the held-out "
                             "seed 90001; give the validation seed 80001 while choosing settings)")
    scunet.add_argument("--sizes", default="full,full-small", help="phantom sizes, comma-separated")
    scunet.add_argument("--epochs", type=int, default=30)
    scunet.add_argument("--batch-size", type=int, default=16)
    scunet.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (thesis 1e-3)")
    scunet.add_argument("--negative-fraction", type=float, default=0.5,
                        help="BAC-free patches per BAC patch (0 = thesis recipe; the authors' BCE_pos_all model used both)")
    scunet.add_argument("--name", default="scunet-bac")
    scunet.add_argument("--version", default="1")
    scunet.add_argument("--weights-dir", default=None, help="registry folder (default: settings)")
    scunet.add_argument("--device", default=None)
    scunet.add_argument("--workers", type=int, default=None, help="processes generating phantoms")
    scunet.add_argument("--preset", choices=("thesis", "thesis-unclipped"), default="thesis",
                        help="preprocessing for training and for the registered weights: the thesis preset "
                             "(1–99 %% breast stretch) or the same with a 1–100 %% stretch that never clips "
                             "the bright end, where calcifications are")
    scunet.add_argument("--init", default=None,
                        help="registered SCU-Net weights to start from (name or name:version), e.g. to fine-tune")
    scunet.add_argument("--skip", choices=("authors", "black"), default="authors",
                        help="background patches left out of training and inference: the authors' rule "
                             "(mean ≤ 20 or std ≤ 10; the default, which scunet-bac v1 was trained with) or only "
                             "black patches (the thesis text)")
    scunet.set_defaults(func=_train_scunet)

    steatosis = sub.add_parser("steatosis", help="Mask R-CNN for liver steatosis droplets on weak labels (thesis §3.2)")
    steatosis.add_argument("--seed", type=int, default=11, help="training phantom seed")
    steatosis.add_argument("--tiles", type=int, default=40, help="training phantoms (weak-labelled)")
    steatosis.add_argument("--tile-size", type=int, default=512, help="training phantom side in px")
    steatosis.add_argument("--heldout-seed", type=int, default=7)
    steatosis.add_argument("--heldout-n", type=int, default=8)
    steatosis.add_argument("--backbone", default="resnet10", choices=("resnet10", "resnet18", "resnet50"),
                           help="resnet50 = thesis; resnet10 = shipped (CPU budget, small file)")
    steatosis.add_argument("--iterations", type=int, default=450, help="optimiser steps (default 450, the shipped weights)")
    steatosis.add_argument("--max-minutes", type=float, default=0.0,
                           help="wall-time budget of the optimisation (the schedule anneals within it; 0 = none)")
    steatosis.add_argument("--batch-size", type=int, default=2)
    steatosis.add_argument("--crop", type=int, default=256, help="training crop side in px")
    steatosis.add_argument("--lr", type=float, default=5e-4, help="AdamW peak learning rate")
    steatosis.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    steatosis.add_argument("--name", default="maskrcnn-steatosis")
    steatosis.add_argument("--version", default="1")
    steatosis.add_argument("--weights-dir", default=None, help="registry folder (default: settings)")
    steatosis.add_argument("--device", default=None)
    steatosis.set_defaults(func=_train_steatosis)
    from medlim.cli.ood import add_train_parsers

    add_train_parsers(sub)
    from medlim.cli.retrieval import add_train_parsers as add_retrieval_train_parsers

    add_retrieval_train_parsers(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _train_scunet(args: argparse.Namespace) -> int:
    import json

    from medlim.core.weights import Registry
    from medlim.mammography.recipe import HELDOUT_SEED, PhantomSpec, train_and_register
    from medlim.mammography.train import TrainingConfig

    sizes = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    command = "medlim train scunet " + " ".join(
        shlex.quote(a) for a in sys.argv[sys.argv.index("scunet") + 1 :]
    ) if "scunet" in sys.argv else "medlim train scunet"
    entry, summary = train_and_register(
        train_spec=PhantomSpec(seed=args.seed, count=args.n, sizes=sizes),
        heldout_spec=PhantomSpec(seed=HELDOUT_SEED if args.eval_seed is None else args.eval_seed,
                                 count=args.heldout_n, sizes=sizes),
        config=TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed),
        negative_fraction=args.negative_fraction,
        name=args.name,
        version=args.version,
        command=command,
        registry=Registry.load(args.weights_dir) if args.weights_dir else None,
        device=args.device,
        workers=args.workers,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        skip=True if args.skip == "authors" else "black",
        preset=args.preset,
        init=args.init,
    )
    print(json.dumps({"name": entry.name, "version": entry.version, "file": entry.file, "metrics": entry.metrics}, indent=2))
    return 0


def _train_steatosis(args: argparse.Namespace) -> int:
    import json

    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.recipe import train_and_register
    from medlim.microscopy.steatosis.train import SteatosisTrainingConfig

    command = "medlim train steatosis " + " ".join(
        shlex.quote(a) for a in sys.argv[sys.argv.index("steatosis") + 1 :]
    ) if "steatosis" in sys.argv else "medlim train steatosis"
    entry = train_and_register(
        seed=args.seed, tiles=args.tiles, tile_size=args.tile_size,
        heldout_seed=args.heldout_seed, heldout_n=args.heldout_n, backbone=args.backbone,
        config=SteatosisTrainingConfig(iterations=args.iterations, batch_size=args.batch_size, crop=args.crop,
                                       learning_rate=args.lr, seed=args.seed, threads=args.threads,
                                       max_seconds=60.0 * args.max_minutes if args.max_minutes > 0 else None),
        name=args.name, version=args.version, command=command,
        registry=Registry.load(args.weights_dir) if args.weights_dir else None,
        device=args.device,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps({"name": entry.name, "version": entry.version, "file": entry.file, "metrics": entry.metrics}, indent=2))
    return 0
