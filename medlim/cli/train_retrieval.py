"""``medlim train oscars|pms``: retrieval models on your folders (``--data``), or the phantom recipes (thesis ch. 6).

* ``oscars --data EXTERNAL --internal INTERNAL [--name NAME] [--methods oscars,triplet[,classification]]``:
  OSCARS with anomaly bins from per-class detectors trained on INTERNAL, and
  its baselines on the same backbone and budget
  (:func:`medlim.curation.retrieval.folder.train_oscars_on_folder`); registers
  ``NAME``, ``NAME-triplet`` (and ``NAME-classification``).
* ``pms --data DIR [--name NAME]``: PMS on a ``file,labels`` manifest
  (:func:`medlim.curation.retrieval.folder.train_pms_on_folder`).

Both take ``--val DIR``, ``--max-minutes M`` (the whole command), ``--skip-bad``,
``--seed`` and settings that override the plan; the last line of stdout is
``{"registered": [...], "validation": {...}}``, progress goes to stderr.
Without ``--data`` the phantom recipes that made the shipped weights run
(their recorded commands, e.g. ``medlim train oscars --seed 1``, unchanged).
No torch is imported until a command runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from medlim.errors import ParameterError

__all__ = ["register_train_commands"]

#: Options that only the phantom recipes take (attribute names).
_OSCARS_PHANTOM_ONLY = ("per_class", "internal_per_class", "heldout_per_class")
_PMS_PHANTOM_ONLY = ("n", "heldout_n", "label_set")
#: Options that only training on a folder takes.
_DATA_ONLY = ("val", "max_minutes", "skip_bad", "name", "version", "input_size", "width", "lr", "threads")


def register_train_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``oscars`` and ``pms`` to ``medlim train``."""
    _add_oscars(sub)
    _add_pms(sub)


def _add_common(p: argparse.ArgumentParser, *, folder: str) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help=f"your folder: {folder}; without it the phantom recipe of the shipped weights runs")
    p.add_argument("--val", type=Path, default=None,
                   help="a validation folder (default: 20%% of --data, by patient when a patient column exists)")
    p.add_argument("--name", default=None, help="registry name (default: <kind>-<dataset fingerprint>)")
    p.add_argument("--version", default=None, help="registry version (default: the next free one)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget of the whole command with --data (preparation, detectors, training, "
                        "validation, baselines); it stops at an epoch boundary and keeps the best validated state")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out the rows with problems (reported) instead of refusing the dataset")
    p.add_argument("--seed", type=int, default=None, help="split and training seed (default 0; phantoms 1)")
    p.add_argument("--input-size", type=int, default=None,
                   help="input side (default: planned from the data, 32–128 for OSCARS, 32–64 for PMS; phantoms 64; thesis 224)")
    p.add_argument("--width", type=int, default=None, help="ResNet-18 base width (default 16)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: half the cores, ≤ 4)")
    p.add_argument("--weights-dir", default=None,
                   help="registry folder to write into (default: with --data the user registry MEDLIM_MODELS_DIR; "
                        "phantoms: the settings' weights folder)")


def _add_oscars(sub: argparse._SubParsersAction) -> None:
    oscars = sub.add_parser(
        "oscars", help="OSCARS + plain-triplet (+ classification) embeddings (thesis §6.1)", description=(
            "OSCARS outlier-sensitive retrieval. With --data EXTERNAL --internal INTERNAL (class folders or "
            "file,class manifests): one anomaly detector per class trained on INTERNAL bins the external images; "
            "OSCARS and the plain triplet baseline (and the classification baseline with --methods "
            "oscars,triplet,classification) train on EXTERNAL with the same backbone and budget, validated by "
            "leave-one-out precision@10; registers NAME, NAME-triplet (and NAME-classification) in the user "
            'registry; the last line of stdout is {"registered": [...], "validation": {...}}. Without --data: '
            "the phantom recipe of the shipped weights."))
    _add_common(oscars, folder="EXTERNAL/<class>/* or EXTERNAL/manifest.csv (file,class[,patient])")
    oscars.add_argument("--internal", type=Path, default=None,
                        help="with --data: the internal folder (same classes) the anomaly detectors train on")
    oscars.add_argument("--methods", default=None,
                        help="comma-separated of oscars, triplet, classification (default with --data: "
                             "oscars,triplet; phantoms: all three)")
    oscars.add_argument("--epochs", type=int, default=None, help="embedding epochs (default: planned; phantoms 30)")
    oscars.add_argument("--anchors", type=int, default=None, help="with --data: anchors per batch (default 32)")
    oscars.add_argument("--detector-epochs", type=int, default=None,
                        help="with --data: generator epochs of each class's CVAD (discriminator: a third; default "
                             "planned)")
    oscars.add_argument("--augmentation", choices=("light", "strong"), default=None,
                        help="with --data: batch augmentation (default planned: strong — zoom, turns, contrast, "
                             "gamma, noise, blur, resolution; light: zoom-crop and contrast only)")
    oscars.add_argument("--mining", choices=("random", "semihard", "semihard-all"), default=None,
                        help="with --data: negatives of OSCARS and the triplet baseline (default planned: semihard-all, "
                             "which mines OSCARS's intra-class negative too; semihard: only the other-class one; "
                             "random: the thesis)")
    oscars.add_argument("--oscars-lambda", type=float, default=None,
                        help="with --data: OSCARS's λ, the weight of its intra-class hinge (Eq. 6.1; default planned: "
                             "0.2; the thesis 0.05); the triplet baseline has no such term")
    oscars.add_argument("--per-class", type=int, default=None, help="phantoms: external training phantoms per class (140)")
    oscars.add_argument("--internal-per-class", type=int, default=None,
                        help="phantoms: internal phantoms per class for the detectors (30)")
    oscars.add_argument("--heldout-per-class", type=int, default=None, help="phantoms: held-out phantoms per class (50)")
    oscars.set_defaults(func=_train_oscars)


def _add_pms(sub: argparse._SubParsersAction) -> None:
    pms = sub.add_parser(
        "pms", help="PMS multi-label retrieval (thesis §6.2)", description=(
            "PMS multi-label retrieval. With --data DIR (manifest.csv with file,labels, labels joined by '|'; "
            "the label set is the manifest's labels): warm-up epochs fill the memory bank, joint epochs are "
            "validated by full-match precision@10 with the default DS; registered in the user registry; the last "
            'line of stdout is {"registered": [...], "validation": {...}}. Without --data: the phantom recipe of '
            "the shipped weights."))
    _add_common(pms, folder="DIR/manifest.csv (file,labels[,patient])")
    pms.add_argument("--warmup-epochs", type=int, default=None, help="warm-up epochs (default: planned; phantoms 5)")
    pms.add_argument("--epochs", type=int, default=None, help="joint epochs after the warm-up (planned; phantoms 10)")
    pms.add_argument("--batch-size", type=int, default=None, help="with --data: default planned (32)")
    pms.add_argument("--n", type=int, default=None, help="phantoms: training phantoms (1200)")
    pms.add_argument("--heldout-n", type=int, default=None, help="phantoms: held-out phantoms (600)")
    pms.add_argument("--label-set", choices=("chest8", "mimic14"), default=None,
                     help="phantoms: chest8 (8 independent findings, default) or mimic14 (the 14 MIMIC-CXR classes "
                          "with hierarchy and co-occurrence); recorded in the manifest")
    pms.set_defaults(func=_train_pms)


def _refuse(args: argparse.Namespace, flags: tuple[str, ...], *, reason: str) -> None:
    given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name, None) not in (None, False)]
    if given:
        raise ParameterError(f"{', '.join(given)} {reason}.")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(flag, value)`` of the options given, for the recorded command (never a path)."""
    return [(f"--{n.replace('_', '-')}", getattr(args, n)) for n in names if getattr(args, n, None) not in (None, False)]


def _write_registries(args: argparse.Namespace):  # -> Registries
    """Where a run on a user's folder writes: the user registry, or ``--weights-dir`` (checked writable)."""
    from medlim.core.weights import Registries

    registries = Registries.load(models_dir=args.weights_dir)
    registries.check_writable(allow_shipped_folder=args.weights_dir is not None)
    return registries


def _methods(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if text is None:
        return default
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _train_oscars(args: argparse.Namespace) -> int:
    from medlim.core.training import Deadline

    deadline = Deadline(args.max_minutes)  # the budget covers everything from here on
    if args.data is None:
        _refuse(args, _DATA_ONLY + ("internal", "anchors", "detector_epochs", "augmentation", "mining",
                               "oscars_lambda"),
                reason="apply to training on your folders (--data EXTERNAL --internal INTERNAL)")
        return _oscars_phantoms(args)
    from medlim.core.training import stderr_progress
    from medlim.curation.retrieval.folder import DEFAULT_METHODS, OscarsFolderRun, train_oscars_on_folder

    _refuse(args, _OSCARS_PHANTOM_ONLY, reason="only apply to phantoms (without --data)")
    if args.oscars_lambda is not None and not 0.0 <= args.oscars_lambda <= 1.0:
        raise ParameterError(f"--oscars-lambda must be in [0, 1] (the thesis 0.05), {args.oscars_lambda:g} is given.")
    if args.internal is None:
        raise ParameterError("--data needs --internal INTERNAL: the internal folder whose per-class anomaly "
                             "detectors give OSCARS its bins (thesis §6.1.2).")
    overrides = {"input_size": args.input_size, "width": args.width, "lr": args.lr, "threads": args.threads,
                 "epochs": args.epochs, "anchors": args.anchors, "detector_epochs": args.detector_epochs,
                 "augmentation": args.augmentation, "mining": args.mining, "oscars_weight": args.oscars_lambda}
    methods = _methods(args.methods, DEFAULT_METHODS)
    recorded = [*_given(args, ("name", "version", "max_minutes", "skip_bad", "seed")),
                *([("--methods", ",".join(methods))] if args.methods is not None else []),
                *_given(args, ("input_size", "width", "lr", "threads", "epochs", "anchors", "detector_epochs",
                               "augmentation", "mining", "oscars_lambda"))]
    run = OscarsFolderRun(data_dir=args.data, internal_dir=args.internal, val_dir=args.val, name=args.name,
                          version=args.version, methods=methods, seed=0 if args.seed is None else args.seed,
                          skip_bad=args.skip_bad, overrides=overrides, command_options=recorded)
    outcome = train_oscars_on_folder(run, registries=_write_registries(args), deadline=deadline,
                                     progress=stderr_progress, allow_shipped_folder=args.weights_dir is not None)
    outcome.emit()
    return 0


def _train_pms(args: argparse.Namespace) -> int:
    from medlim.core.training import Deadline

    deadline = Deadline(args.max_minutes)  # the budget covers everything from here on
    if args.data is None:
        _refuse(args, _DATA_ONLY + ("batch_size",), reason="apply to training on your folder (--data DIR)")
        return _pms_phantoms(args)
    from medlim.core.training import stderr_progress
    from medlim.curation.retrieval.folder import PmsFolderRun, train_pms_on_folder

    _refuse(args, _PMS_PHANTOM_ONLY, reason="only apply to phantoms (without --data)")
    overrides = {"input_size": args.input_size, "width": args.width, "lr": args.lr, "threads": args.threads,
                 "epochs": args.epochs, "warmup_epochs": args.warmup_epochs, "batch_size": args.batch_size}
    recorded = _given(args, ("name", "version", "max_minutes", "skip_bad", "seed", "input_size", "width", "lr",
                             "threads", "warmup_epochs", "epochs", "batch_size"))
    run = PmsFolderRun(data_dir=args.data, val_dir=args.val, name=args.name, version=args.version,
                       seed=0 if args.seed is None else args.seed, skip_bad=args.skip_bad, overrides=overrides,
                       command_options=recorded)
    outcome = train_pms_on_folder(run, registries=_write_registries(args), deadline=deadline,
                                  progress=stderr_progress, allow_shipped_folder=args.weights_dir is not None)
    outcome.emit()
    return 0


def _phantom_registry(args: argparse.Namespace):  # -> Registry | None
    from medlim.core.weights import Registry

    return Registry.load(args.weights_dir) if args.weights_dir else None


def _command(name: str) -> str:
    argv = sys.argv[sys.argv.index(name) + 1 :] if name in sys.argv else []
    return " ".join(["medlim", "train", name, *(shlex.quote(a) for a in argv)])


def _value(given: Any, default: Any) -> Any:
    return default if given is None else given


def _oscars_phantoms(args: argparse.Namespace) -> int:
    """The phantom recipe (reproduces the shipped OSCARS family from its recorded command)."""
    from medlim.core.training import TrainingOutcome, stderr_progress
    from medlim.curation.retrieval import recipe
    from medlim.curation.retrieval.train import EMBEDDING_METHODS, RetrievalTrainingConfig

    seed = _value(args.seed, 1)
    run = recipe.train_oscars_family(
        seed=seed, per_class=_value(args.per_class, 140), internal_per_class=_value(args.internal_per_class, 30),
        heldout_per_class=_value(args.heldout_per_class, 50), methods=_methods(args.methods, EMBEDDING_METHODS),
        config=RetrievalTrainingConfig(seed=seed, epochs=_value(args.epochs, 30)), registry=_phantom_registry(args),
        command=_command("oscars"), log=stderr_progress)
    entries = tuple(run.entries.values())
    outcome = TrainingOutcome(registered=entries, validation={},
                              extra={"heldout": {e.name: run.metrics[m] for m, e in run.entries.items()}})
    outcome.emit()
    return 0


def _pms_phantoms(args: argparse.Namespace) -> int:
    """The phantom recipe (reproduces the shipped PMS weights from their recorded command)."""
    from medlim.core.training import TrainingOutcome, stderr_progress
    from medlim.curation.retrieval import recipe
    from medlim.curation.retrieval.train import RetrievalTrainingConfig

    seed = _value(args.seed, 1)
    entry, results, _ = recipe.train_pms_recipe(
        seed=seed, n=_value(args.n, 1200), heldout_n=_value(args.heldout_n, 600),
        label_set=_value(args.label_set, "chest8"),
        config=RetrievalTrainingConfig(seed=seed, epochs=_value(args.epochs, 10),
                                       warmup_epochs=_value(args.warmup_epochs, 5)),
        registry=_phantom_registry(args), command=_command("pms"), log=stderr_progress)
    outcome = TrainingOutcome(registered=(entry,), validation={}, extra={"heldout": {entry.name: results}})
    outcome.emit()
    return 0
