"""``medlim train``: train on your folder (``--data DIR``) or reproduce the shipped weights from a seed.

Each room adds a subcommand. Trainers that learn from a user's folder use the
harness of :mod:`medlim.core.training` (dataset check, split, time budget,
best validated state, user registry) and print one JSON object
``{"registered": [...], "validation": {...}}`` as the last line of stdout;
progress goes to stderr.

``scunet`` and ``steatosis`` run the phantom recipe that reproduces the shipped
weights without ``--data`` (their recorded commands run unchanged), and train
on the user's folder with it (:mod:`medlim.mammography.folder`,
:mod:`medlim.microscopy.steatosis.folder`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from medlim.cli.jobs import add_background_option
from medlim.errors import ParameterError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on your folder (--data DIR), or on phantoms (reproduces the shipped weights)")
    sub = parser.add_subparsers(dest="train_command", metavar="MODEL")
    _add_scunet(sub)
    _add_steatosis(sub)
    from medlim.cli.ood import add_train_parsers

    add_train_parsers(sub)
    from medlim.cli.retrieval import add_train_parsers as add_retrieval_train_parsers

    add_retrieval_train_parsers(sub)
    for trainer in sub.choices.values():  # every `medlim train MODEL` can be queued as a job
        add_background_option(trainer, kind="train")
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def _add_data_options(p: argparse.ArgumentParser, *, folder: str, task_default: str, phantom_minutes: str = "") -> None:
    """The options every trainer on a user's folder takes (issue 12)."""
    p.add_argument("--data", type=Path, default=None,
                   help=f"your folder: {folder}; without it the phantom recipe of the shipped weights runs")
    p.add_argument("--val", type=Path, default=None,
                   help="a validation folder (default with --data: 20%% of --data, by patient when a patient "
                        "column exists)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="with --data: time budget of the whole command (preparation, training, validation, "
                        "evaluation); it stops at an epoch boundary and keeps the best validated state"
                        + phantom_minutes)
    p.add_argument("--skip-bad", action="store_true",
                   help="with --data: leave out the rows with problems (reported) instead of refusing the dataset")
    p.add_argument("--init", default=None,
                   help=f"weights to start from, NAME[:VERSION]; with --data the default is the task's default model "
                        f"({task_default}, see `medlim weights list`): fine-tuning; 'none' trains from scratch")
    p.add_argument("--weights-dir", default=None,
                   help="registry folder to write into (default: with --data the user registry "
                        "MEDLIM_MODELS_DIR; phantoms: the settings' weights folder)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")


def _add_scunet(sub: argparse._SubParsersAction) -> None:
    scunet = sub.add_parser("scunet", help="SCU-Net for breast arterial calcification (thesis §3.3)", description=(
        "SCU-Net for BAC. With --data DIR: fine-tuned (or trained) on your annotated views (image,mask manifest "
        "or a Decathlon dataset.json; DICOM or PNG, any size), settings planned from the data, validated on "
        "held-out patients, registered in the user registry; the last line of stdout is "
        '{"registered": [...], "validation": {...}}. Without --data: the phantom recipe of the shipped weights.'))
    _add_data_options(scunet, folder="DIR/manifest.csv with image,mask[,patient] or DIR/dataset.json",
                      task_default="scunet-bac")
    scunet.add_argument("--seed", type=int, default=None, help="split and training seed (default 0; phantoms 1)")
    scunet.add_argument("--epochs", type=int, default=None, help="default: planned (phantoms 30)")
    scunet.add_argument("--batch-size", type=int, default=None, help="default: planned (phantoms 16)")
    scunet.add_argument("--lr", type=float, default=None,
                        help="AdamW learning rate (default: planned, 3e-4 fine-tuning / 1e-3 fresh; phantoms 1e-3)")
    scunet.add_argument("--patch-size", type=int, default=None,
                        help="with --data: training crop side (default: planned, 512 on a GPU, 256 on a CPU)")
    scunet.add_argument("--steps-per-epoch", type=int, default=None, help="with --data: default planned")
    scunet.add_argument("--patience", type=int, default=None,
                        help="with --data: validations without a better whole-view score before training stops "
                             "(default: planned, about 250 optimisation steps and at least 5 validations)")
    scunet.add_argument("--val-views", type=int, default=None,
                        help="with --data: whole validation views scored at each validation, half with BAC "
                             "(default: planned, 8 on a CPU, 32 on a GPU; more views steady the choice and cost time)")
    scunet.add_argument("--loss", choices=("dice", "dice+bce", "dice+crop"), default=None,
                        help="with --data: training loss (default: planned; dice is the thesis's soft Dice over the "
                             "batch, dice+bce adds pixel-wise cross-entropy as nnU-Net does, dice+crop adds each "
                             "BAC crop's own Dice so that a few specks weigh like a long artery)")
    scunet.add_argument("--balance", choices=("patches", "views"), default=None,
                        help="with --data: how an epoch draws its BAC patches (default: planned, patches: each once; "
                             "views: every view's BAC patches weigh the same, so mild BAC is seen as often as heavy)")
    scunet.add_argument("--threads", type=int, default=None,
                        help="with --data on a CPU: torch threads (default: half the cores, at most 4)")
    scunet.add_argument("--name", default=None,
                        help="registry name (default with --data: scunet-bac-<dataset fingerprint>; "
                             "phantoms scunet-bac)")
    scunet.add_argument("--version", default=None, help="registry version (default with --data: the next free one; "
                                                        "phantoms 1)")
    scunet.add_argument("--preset", choices=("thesis", "thesis-unclipped"), default=None,
                        help="preprocessing for training and for the registered weights: the thesis preset "
                             "(1–99 %% breast stretch) or the same with a 1–100 %% stretch that never clips the "
                             "bright end (default: the starting weights'; fresh: thesis-unclipped; phantoms: thesis)")
    scunet.add_argument("--skip", choices=("authors", "black"), default=None,
                        help="background patches left out of training and inference: the authors' rule (mean ≤ 20 "
                             "or std ≤ 10) or only black patches (the thesis text); default: the starting weights', "
                             "else authors")
    scunet.add_argument("--n", type=int, default=None, help="phantoms: training images (320)")
    scunet.add_argument("--heldout-n", type=int, default=None, help="phantoms: held-out images for evaluation (24)")
    scunet.add_argument("--eval-seed", type=int, default=None,
                        help="phantoms: seed of the evaluation written into the manifest (default: the held-out "
                             "seed 90001; give the validation seed 80001 while choosing settings)")
    scunet.add_argument("--sizes", default=None, help="phantoms: sizes, comma-separated (full,full-small)")
    scunet.add_argument("--negative-fraction", type=float, default=None,
                        help="phantoms: BAC-free patches per BAC patch (0.5; 0 = thesis recipe)")
    scunet.add_argument("--workers", type=int, default=None, help="phantoms: processes generating phantoms")
    scunet.set_defaults(func=_train_scunet)


def _add_steatosis(sub: argparse._SubParsersAction) -> None:
    steatosis = sub.add_parser(
        "steatosis", help="Mask R-CNN for liver steatosis droplets on weak labels (thesis §3.2)", description=(
            "Mask R-CNN for steatosis droplets. With --data DIR: H&E images only, no annotation — the thesis's weak "
            "labels (on tiles of at most 1024 px), screened, teach the network, fine-tuned from the task's default "
            "model; validated by agreement with the weak labels of held-out images; registered in the user "
            "registry. Without --data: the phantom recipe of the shipped weights."))
    _add_data_options(steatosis, folder="H&E images (a plain folder, class folders or any manifest; masks are "
                                        "ignored)", task_default="maskrcnn-steatosis",
                      phantom_minutes="; phantoms: the optimisation's budget (the schedule anneals within it)")
    steatosis.add_argument("--seed", type=int, default=None, help="split and training seed (default 0; phantoms 11)")
    steatosis.add_argument("--tiles", type=int, default=None, help="phantoms: training phantoms (40)")
    steatosis.add_argument("--tile-size", type=int, default=None, help="phantoms: training phantom side in px (512)")
    steatosis.add_argument("--heldout-seed", type=int, default=None, help="phantoms: held-out seed (7)")
    steatosis.add_argument("--heldout-n", type=int, default=None, help="phantoms: held-out phantoms (8)")
    steatosis.add_argument("--backbone", default=None, choices=("resnet10", "resnet18", "resnet50"),
                           help="resnet50 = thesis; resnet10 = shipped (default; with --data only with --init none)")
    steatosis.add_argument("--iterations", type=int, default=None,
                           help="optimiser steps (default: planned with --data; phantoms 450, the shipped weights)")
    steatosis.add_argument("--steps-per-epoch", type=int, default=None, help="with --data: default planned")
    steatosis.add_argument("--batch-size", type=int, default=None, help="default: planned (phantoms 2)")
    steatosis.add_argument("--crop", type=int, default=None, help="training crop side in px (default planned; 256)")
    steatosis.add_argument("--lr", type=float, default=None,
                           help="AdamW peak learning rate (default planned: 2e-4 fine-tuning; phantoms 5e-4)")
    steatosis.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default 1)")
    steatosis.add_argument("--name", default=None,
                           help="registry name (default with --data: maskrcnn-steatosis-<dataset fingerprint>; "
                                "phantoms maskrcnn-steatosis)")
    steatosis.add_argument("--version", default=None,
                           help="registry version (default with --data: the next free one; phantoms 1)")
    steatosis.set_defaults(func=_train_steatosis)


def _refuse(args: argparse.Namespace, flags: tuple[str, ...], *, reason: str) -> None:
    """Refuse options that do not apply to the chosen mode (``flags`` are attribute names)."""
    given = [f"--{name.replace('_', '-')}" for name in flags
             if getattr(args, name, None) not in (None, False)]
    if given:
        raise ParameterError(f"{', '.join(given)} {reason}.")


def _write_registries(args: argparse.Namespace):  # -> Registries
    """Where a run on a user's folder writes: the user registry, or ``--weights-dir`` (checked writable)."""
    from medlim.core.weights import Registries

    registries = Registries.load(models_dir=args.weights_dir)
    registries.check_writable(allow_shipped_folder=args.weights_dir is not None)
    return registries


def _given(args: argparse.Namespace, options: tuple[tuple[str, str], ...]) -> list[tuple[str, Any]]:
    """``(flag, value)`` of the options given, for the recorded command."""
    return [(flag, getattr(args, dest)) for flag, dest in options if getattr(args, dest, None) not in (None, False)]


def _skip_rule(choice: str | None) -> bool | str | None:
    """``--skip authors|black`` as the weights' skip setting (True: the authors' rule), or None when not given."""
    return None if choice is None else (True if choice == "authors" else "black")


_SCUNET_PHANTOM_ONLY = ("n", "heldout_n", "eval_seed", "sizes", "negative_fraction", "workers")
_STEATOSIS_PHANTOM_ONLY = ("tiles", "tile_size", "heldout_seed", "heldout_n")
_DATA_ONLY = ("val", "skip_bad")


def _train_scunet(args: argparse.Namespace) -> int:
    from medlim.core.training import Deadline

    deadline = Deadline(args.max_minutes)  # the budget covers everything from here on
    if args.data is None:
        _refuse(args, _DATA_ONLY + ("max_minutes", "patch_size", "steps_per_epoch", "threads", "patience",
                                    "val_views", "loss", "balance"),
                reason="apply to training on your folder (--data DIR)")
        return _train_scunet_phantoms(args)
    from medlim.core.training import stderr_progress
    from medlim.mammography.folder import ScunetRun, train_scunet_on_folder

    _refuse(args, _SCUNET_PHANTOM_ONLY, reason="only apply to phantoms (without --data)")
    overrides = {"patch_size": args.patch_size, "batch_size": args.batch_size, "learning_rate": args.lr,
                 "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "threads": args.threads,
                 "patience": args.patience, "whole_view_views": args.val_views, "loss": args.loss,
                 "positive_balance": args.balance}
    recorded = _given(args, (("--name", "name"), ("--version", "version"), ("--max-minutes", "max_minutes"),
                             ("--skip-bad", "skip_bad"), ("--seed", "seed"), ("--preset", "preset"),
                             ("--skip", "skip"), ("--epochs", "epochs"), ("--batch-size", "batch_size"),
                             ("--lr", "lr"), ("--patch-size", "patch_size"), ("--steps-per-epoch", "steps_per_epoch"),
                             ("--threads", "threads"), ("--patience", "patience"), ("--val-views", "val_views"),
                             ("--loss", "loss"), ("--balance", "balance")))
    run = ScunetRun(data_dir=args.data, val_dir=args.val, init=args.init, name=args.name, version=args.version,
                    seed=0 if args.seed is None else args.seed, skip_bad=args.skip_bad, device=args.device,
                    preset=args.preset, skip=_skip_rule(args.skip),
                    overrides=overrides, command_options=recorded)
    outcome = train_scunet_on_folder(run, registries=_write_registries(args), deadline=deadline,
                                     progress=stderr_progress, allow_shipped_folder=args.weights_dir is not None)
    outcome.emit()
    return 0


def _train_scunet_phantoms(args: argparse.Namespace) -> int:
    """The phantom recipe (reproduces the shipped SCU-Net weights from their recorded commands)."""
    import json

    from medlim.core.weights import Registry
    from medlim.mammography.recipe import HELDOUT_SEED, PhantomSpec, train_and_register
    from medlim.mammography.train import TrainingConfig

    seed = 1 if args.seed is None else args.seed
    sizes = tuple(s.strip() for s in (args.sizes or "full,full-small").split(",") if s.strip())
    command = "medlim train scunet " + " ".join(
        shlex.quote(a) for a in sys.argv[sys.argv.index("scunet") + 1 :]
    ) if "scunet" in sys.argv else "medlim train scunet"
    entry, _summary = train_and_register(
        train_spec=PhantomSpec(seed=seed, count=320 if args.n is None else args.n, sizes=sizes),
        heldout_spec=PhantomSpec(seed=HELDOUT_SEED if args.eval_seed is None else args.eval_seed,
                                 count=24 if args.heldout_n is None else args.heldout_n, sizes=sizes),
        config=TrainingConfig(epochs=30 if args.epochs is None else args.epochs,
                              batch_size=16 if args.batch_size is None else args.batch_size,
                              learning_rate=1e-3 if args.lr is None else args.lr, seed=seed),
        negative_fraction=0.5 if args.negative_fraction is None else args.negative_fraction,
        name=args.name or "scunet-bac",
        version=args.version or "1",
        command=command,
        registry=Registry.load(args.weights_dir) if args.weights_dir else None,
        device=args.device,
        workers=args.workers,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        skip="black" if args.skip == "black" else True,
        preset=args.preset or "thesis",
        init=None if args.init is None or args.init.lower() == "none" else args.init,
    )
    print(json.dumps({"name": entry.name, "version": entry.version, "file": entry.file, "metrics": entry.metrics}, indent=2))
    return 0


def _train_steatosis(args: argparse.Namespace) -> int:
    from medlim.core.training import Deadline

    deadline = Deadline(args.max_minutes)  # the budget covers everything from here on
    if args.data is None:
        _refuse(args, _DATA_ONLY + ("init", "steps_per_epoch"), reason="apply to training on your folder (--data DIR)")
        return _train_steatosis_phantoms(args)
    from medlim.core.training import stderr_progress
    from medlim.microscopy.steatosis.folder import SteatosisRun, train_steatosis_on_folder

    _refuse(args, _STEATOSIS_PHANTOM_ONLY, reason="only apply to phantoms (without --data)")
    if args.backbone is not None and (args.init or "").lower() != "none":
        raise ParameterError("--backbone applies to a fresh network (--init none); fine-tuning keeps the starting "
                             "weights' backbone.")
    overrides = {"iterations": args.iterations, "batch_size": args.batch_size, "crop": args.crop,
                 "learning_rate": args.lr, "threads": args.threads, "steps_per_epoch": args.steps_per_epoch}
    recorded = _given(args, (("--name", "name"), ("--version", "version"), ("--max-minutes", "max_minutes"),
                             ("--skip-bad", "skip_bad"), ("--seed", "seed"), ("--backbone", "backbone"),
                             ("--iterations", "iterations"), ("--steps-per-epoch", "steps_per_epoch"),
                             ("--batch-size", "batch_size"), ("--crop", "crop"), ("--lr", "lr"),
                             ("--threads", "threads")))
    run = SteatosisRun(data_dir=args.data, val_dir=args.val, init=args.init, backbone=args.backbone or "resnet10",
                       name=args.name, version=args.version, seed=0 if args.seed is None else args.seed,
                       skip_bad=args.skip_bad, device=args.device, overrides=overrides, command_options=recorded)
    outcome = train_steatosis_on_folder(run, registries=_write_registries(args), deadline=deadline,
                                        progress=stderr_progress, allow_shipped_folder=args.weights_dir is not None)
    outcome.emit()
    return 0


def _train_steatosis_phantoms(args: argparse.Namespace) -> int:
    """The phantom recipe (reproduces the shipped steatosis weights from their recorded commands)."""
    import json

    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.recipe import train_and_register
    from medlim.microscopy.steatosis.train import SteatosisTrainingConfig

    def value(given: Any, default: Any) -> Any:
        return default if given is None else given

    seed = value(args.seed, 11)
    command = "medlim train steatosis " + " ".join(
        shlex.quote(a) for a in sys.argv[sys.argv.index("steatosis") + 1 :]
    ) if "steatosis" in sys.argv else "medlim train steatosis"
    minutes = args.max_minutes or 0.0  # phantoms: the optimisation's budget (the schedule anneals within it)
    entry = train_and_register(
        seed=seed, tiles=value(args.tiles, 40), tile_size=value(args.tile_size, 512),
        heldout_seed=value(args.heldout_seed, 7), heldout_n=value(args.heldout_n, 8),
        backbone=value(args.backbone, "resnet10"),
        config=SteatosisTrainingConfig(iterations=value(args.iterations, 450), batch_size=value(args.batch_size, 2),
                                       crop=value(args.crop, 256), learning_rate=value(args.lr, 5e-4), seed=seed,
                                       threads=value(args.threads, 1),
                                       max_seconds=60.0 * minutes if minutes > 0 else None),
        name=args.name or "maskrcnn-steatosis", version=args.version or "1", command=command,
        registry=Registry.load(args.weights_dir) if args.weights_dir else None,
        device=args.device,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps({"name": entry.name, "version": entry.version, "file": entry.file, "metrics": entry.metrics}, indent=2))
    return 0
