"""``medlim ood evaluate|score`` and ``medlim train tend|cvad`` (thesis §4.1–4.2).

``score`` prints one line per image (JSON lines with ``--jsonl``): file, score,
threshold, is_ood and the detector's parts (TEND ``p``, ``d``; CVAD ``rec``,
``dis``; AE ``rec``); a file that cannot be read gets ``file, error, message``
and the run goes on. Files are read, resized and scored in small batches, so
memory does not grow with their number (issue 14). ``--labels-from-folders``
labels each image ID or OOD by its folders (``XR_HUMERUS`` counts as class
``humerus``, :mod:`medlim.curation.ood.labels`) and, like ``--summary``, ends
with the numbers the OOD page shows (images, predicted OOD, AUROC and its
notes; :class:`medlim.curation.ood.service.OodReport`): ``# `` lines after the
table, or one ``{"summary": ...}`` object with ``--jsonl``. ``evaluate`` prints the
thesis's tables (AUROC, AUPR, FPR at 95 % TPR, the G-mean threshold/TPR/FPR/DIFF,
the stored threshold's rates, the validation-transform accuracies, the OOD
rate per class and per shift type), for held-out phantoms or a user's folder
(``--data``); ``--json`` prints them as one object.

Detectors are found in the shipped and the user registry
(:class:`medlim.core.weights.Registries`). ``train tend|cvad --data DIR``
trains on a user's folder under the training harness and writes to the user
registry (:func:`medlim.curation.ood.folder.train_on_folder`); without
``--data`` the phantom recipe reproduces the shipped detectors.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from medlim.cli.engine_options import add_engine_options, engine_of
from medlim.cli.evaluation_table import add_table_option
from medlim.cli.jobs import add_background_option
from medlim.cli.stats_option import on_off
from medlim.errors import ParameterError

__all__ = ["register", "add_train_parsers"]

#: The registry task of OOD detectors.
TASK = "ood-detection"


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-dir", default=None,
                        help="shipped registry folder (default: MEDLIM_WEIGHTS_DIR or weights/)")
    parser.add_argument("--models-dir", default=None,
                        help="user registry folder (default: MEDLIM_MODELS_DIR or MEDLIM_HOME/models)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ood", help="out-of-distribution scores with TEND, CVAD or the AE baseline")
    sub = parser.add_subparsers(dest="ood_command", metavar="ACTION")

    score = sub.add_parser("score", help="score images (files or folders) with a registered detector")
    score.add_argument("--detector", default=None,
                       help="model name, e.g. tend-humerus (NAME@VERSION or NAME:VERSION allowed); shipped or yours "
                            "(default: the ood-detection default model)")
    score.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    score.add_argument("--jsonl", action="store_true", help="JSON lines instead of a table")
    score.add_argument("--threshold", type=float, default=None, help="override the calibrated threshold")
    _stats_option(score)
    score.add_argument("--labels-from-folders", action="store_true",
                       help="label images ID when a folder names the detector's class (XR_HUMERUS, Humerus_images "
                            "and humerus all name 'humerus'), else OOD; add a label column and the AUROC")
    score.add_argument("--summary", action="store_true",
                       help="end with the summary: images, predicted OOD (and AUROC with --labels-from-folders)")
    _registry_options(score)
    score.add_argument("--pseudonymise-names", action="store_true",
                       help="name files by a keyed-hash label instead of their path")
    add_engine_options(score)
    score.set_defaults(func=_score)
    add_background_option(score, kind="ood.score")

    evaluate = sub.add_parser(
        "evaluate", help="thesis-protocol evaluation: one-vs-rest AUROC, AUPR, FPR@95, G-mean rates, Table 4.5 "
                         "transforms, per class and per shift type")
    evaluate.add_argument("--detector", default=None,
                          help="model name (NAME@VERSION allowed; default: the ood-detection default model)")
    evaluate.add_argument("--data", type=Path, default=None,
                          help="your labelled folder (class folders, or manifest.csv with file,class[,shift_type]): "
                               "the detector's ID classes against the others, a class matched tolerantly "
                               "(XR_HUMERUS, Humerus_images and humerus all name 'humerus'); default: held-out phantoms")
    evaluate.add_argument("--json", action="store_true", help="one JSON object instead of the tables")
    evaluate.add_argument("--skip-bad", action="store_true", help="leave out files with problems instead of refusing")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="phantom seed without --data (default 9000), and seed of the validation transforms")
    evaluate.add_argument("--n", type=int, default=60, help="phantoms per class when --data is omitted")
    evaluate.add_argument("--variability", type=float, default=None,
                          help="within-site variation of the phantoms (default: the detector's training data)")
    evaluate.add_argument("--n-shift", type=int, default=20,
                          help="without --data: held-out ID phantoms per named shift (blur, lowres, cast, noise, "
                               "grid, exposure, tint), severities spread evenly from 0.05 to 1 (default 20; 0 = none)")
    evaluate.add_argument("--compare", default="auto",
                          help="detectors reported beside this one per shift type: comma-separated names, 'auto' "
                               "(default: the registered TEND, CVAD and AE detectors of the same ID classes) "
                               "or 'none'")
    _stats_option(evaluate)
    _registry_options(evaluate)
    add_background_option(evaluate, kind="evaluate")
    add_table_option(evaluate, task="ood")
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


#: Training settings a command line may give: option dest → (flag, OodTrainingConfig field, kinds).
_SETTINGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "input_size": ("--input-size", "input_size", ("tend", "cvad")),
    "width": ("--width", "width", ("tend", "cvad")),
    "batch_size": ("--batch-size", "batch_size", ("tend", "cvad")),
    "lr": ("--lr", "lr", ("tend", "cvad")),
    "threads": ("--threads", "threads", ("tend", "cvad")),
    "margin": ("--margin", "margin", ("tend",)),
    "ae_epochs": ("--ae-epochs", "ae_epochs", ("tend",)),
    "epochs": ("--epochs", "tend_epochs", ("tend",)),
    "warmup_epochs": ("--warmup-epochs", "warmup_epochs", ("tend",)),
    "distortions": ("--distortions", "distortions", ("tend",)),
    "train_encoder": ("--train-encoder", "train_encoder", ("tend",)),
    "latent": ("--latent", "latent", ("cvad",)),
    "cvad_epochs": ("--epochs", "cvad_epochs", ("cvad",)),
    "disc_epochs": ("--disc-epochs", "disc_epochs", ("cvad",)),
    "latent_noise": ("--latent-noise", "latent_noise", ("cvad",)),
    "recon_weight": ("--recon-weight", "recon_weight", ("cvad",)),
}
_PHANTOM_ONLY = ("n_train", "n_calib", "n_heldout", "variability")


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``tend`` and ``cvad`` to ``medlim train`` (imports no torch: the settings are checked when used)."""
    for kind, text in (("tend", "TEND novelty detector + its AE baseline (thesis §4.1)"),
                       ("cvad", "CVAD cascade-VAE anomaly detector (thesis §4.2)")):
        p = sub.add_parser(kind, help=text, description=(
            f"{text}. With --data DIR: trained on your folder (checked as `medlim data check --task ood`; "
            "settings planned from the data, each overridable), validated against the folder's other classes "
            "(else generated distortions), registered in the user registry; the last line of stdout is "
            '{"registered": [...], "validation": {...}}. Without --data: the phantom recipe that reproduces '
            "the shipped detectors."))
        p.add_argument("--id-class", required=True,
                       help="in-distribution class(es), comma-separated; '!NAME' = every class but NAME; "
                            "for a plain folder of images (no classes), the one class its images are")
        p.add_argument("--data", type=Path, default=None,
                       help="your folder: DIR/<class>/*, DIR/manifest.csv (file,class[,patient]) or a plain folder "
                            "of one class's images; "
                            "default: phantoms generated from --seed")
        p.add_argument("--val", type=Path, default=None,
                       help="a validation folder (default: 20%% of --data, by patient when a patient column exists)")
        p.add_argument("--heldout", type=Path, default=None,
                       help="held-out folder evaluated after training; without --data default phantoms of seed 9000")
        p.add_argument("--max-minutes", type=float, default=None,
                       help="time budget of the whole command with --data (stops at an epoch boundary, keeps the "
                            "best validated state)")
        p.add_argument("--skip-bad", action="store_true",
                       help="leave out the rows with problems (reported) instead of refusing the dataset")
        p.add_argument("--stats", type=on_off, default=None, metavar="{on,off}",
                       help="with --data: fit acquisition statistics (noise, sharpness, grid lines, exposure at 256 "
                            "px) beside each detector, which then scores fused with them by default (default on, a "
                            "stated deviation for another site's images; off: the thesis's detector alone)")
        p.add_argument("--seed", type=int, default=None, help="split and training seed (default 0; phantoms 1)")
        p.add_argument("--n-train", type=int, default=None, help="ID training phantoms (without --data; 600)")
        p.add_argument("--n-calib", type=int, default=None, help="calibration phantoms per class (40)")
        p.add_argument("--n-heldout", type=int, default=None, help="held-out phantoms per class (60)")
        p.add_argument("--variability", type=float, default=None,
                       help="within-site variation of the phantoms in [0, 1] (1 = one real hospital's spread; "
                            "default 0 = fixed acquisition)")
        p.add_argument("--input-size", type=int, default=None,
                       help="model input side (default: planned from the data; phantoms 64; thesis 256)")
        p.add_argument("--width", type=int, default=None, help="base channels w (default 8; thesis 16)")
        p.add_argument("--batch-size", type=int, default=None, help="default: planned (phantoms 32)")
        p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
        if kind == "tend":
            p.add_argument("--margin", type=float, default=None,
                           help="margin R: 150, 250 or 500 (thesis choices; default: planned 500; phantoms 150)")
            p.add_argument("--ae-epochs", type=int, default=None)
            p.add_argument("--epochs", type=int, default=None, help="stage-2 epochs")
            p.add_argument("--warmup-epochs", type=int, default=None)
            p.add_argument("--distortions", default=None,
                           help="fake-OOD distortions, comma-separated (the thesis's six: barrel, perspective, arc, "
                                "polar, tile, affine; extra: spread, motion_blur, cut_paste, which resemble the "
                                "Table 4.5 noise, blur and random cut), or 'thesis' (the six) or 'all' (the nine)")
            p.add_argument("--train-encoder", action="store_true", default=None,
                           help="train the encoder in stage 2 too (the authors' code; planned with --data); "
                                "the thesis freezes it")
        else:
            p.add_argument("--latent", type=int, default=None, help="main latent K (branch 4K; default 256)")
            p.add_argument("--epochs", type=int, default=None, dest="cvad_epochs", help="generator epochs")
            p.add_argument("--disc-epochs", type=int, default=None)
            p.add_argument("--latent-noise", type=float, default=None)
            p.add_argument("--recon-weight", type=float, default=None,
                           help="1/(2σ²) of the Gaussian likelihood in each VAE loss (planned 300; phantoms 1)")
        p.add_argument("--name", default=None, help="registry name (default <kind>-<class>)")
        p.add_argument("--version", default=None, help="registry version (default: the next free one)")
        p.add_argument("--weights-dir", default=None,
                       help="write into this registry folder instead of the user registry (MEDLIM_MODELS_DIR)")
        p.set_defaults(func=_train, ood_kind=kind)


def _id_classes(text: str) -> tuple[str, ...]:
    from medlim.phantoms.radiograph import BODY_PARTS

    text = text.strip()
    if text.startswith("!"):
        excluded = text[1:].strip()
        if excluded not in BODY_PARTS:
            raise ParameterError(f"--id-class {text!r}: {excluded!r} is not a phantom class ({', '.join(BODY_PARTS)}).")
        return tuple(b for b in BODY_PARTS if b != excluded)
    classes = tuple(c.strip() for c in text.split(",") if c.strip())
    if not classes:
        raise ParameterError(f"--id-class must name at least one class, {text!r} is given.")
    return classes


def _registries(args: argparse.Namespace):  # -> Registries
    from medlim.core.weights import Registries

    return Registries.load(weights_dir=getattr(args, "weights_dir", None), models_dir=getattr(args, "models_dir", None))


def _stats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", type=on_off, default=True, metavar="{on,off}",
                        help="a detector trained with acquisition statistics (noise, sharpness, grid lines, exposure "
                             "at 256 px) scores fused with them, with the fused threshold (default on, a stated "
                             "deviation for another site's images); off: the detector alone (the thesis). Detectors "
                             "without them score alone either way")


def _detector(args: argparse.Namespace):  # -> Detector
    from medlim.curation.ood.scoring import detector_from_entry
    from medlim.errors import WeightsError

    registries = _registries(args)
    if args.detector is not None:
        return detector_from_entry(registries.find(args.detector), stats=args.stats)
    entry = registries.default(TASK)
    if entry is None:
        raise WeightsError(f"no {TASK} model is marked default; name one with --detector NAME[@VERSION] "
                           "(see `medlim weights list`).")
    return detector_from_entry(entry, stats=args.stats)


def _settings(args: argparse.Namespace, kind: str) -> tuple[dict, list[tuple[str, object]]]:
    """Training settings given on the command line: config fields and the recorded ``(flag, value)`` pairs."""
    given, recorded = {}, []
    for dest, (flag, config_field, kinds) in _SETTINGS.items():
        value = getattr(args, dest, None)
        if kind not in kinds or value is None:
            continue
        if dest == "distortions":
            from medlim.curation.ood.distortions import distortion_names

            value = distortion_names(value)  # "thesis": the six warps without the Table 4.5 look-alikes
            recorded.append((flag, ",".join(value)))
        else:
            recorded.append((flag, value))
        given[config_field] = value
    return given, recorded


def _train(args: argparse.Namespace) -> int:
    from medlim.core.training import Deadline

    deadline = Deadline(args.max_minutes)  # the budget covers everything from here on
    if args.data is None:
        return _train_phantoms(args)
    from medlim.core.training import stderr_progress
    from medlim.curation.ood.folder import FolderRun, train_on_folder

    phantom_only = [f"--{name.replace('_', '-')}" for name in _PHANTOM_ONLY if getattr(args, name) is not None]
    if phantom_only:
        raise ParameterError(f"{', '.join(phantom_only)} only apply to phantoms (without --data).")
    kind = args.ood_kind
    given, recorded = _settings(args, kind)
    registries = _write_registries(args)
    run = FolderRun(kind=kind, data_dir=args.data, id_classes=args.id_class, val_dir=args.val,
                    heldout_dir=args.heldout, name=args.name, version=args.version,
                    seed=0 if args.seed is None else args.seed, skip_bad=args.skip_bad, overrides=given,
                    stats=args.stats is not False,
                    command_options=[("--name", args.name), ("--version", args.version),
                                     ("--max-minutes", args.max_minutes), ("--skip-bad", args.skip_bad),
                                     ("--seed", args.seed),
                                     ("--stats", None if args.stats is None else "on" if args.stats else "off"),
                                     *recorded])
    outcome = train_on_folder(run, registries=registries, deadline=deadline, progress=stderr_progress,
                              allow_shipped_folder=args.weights_dir is not None)
    outcome.emit()
    return 0


def _write_registries(args: argparse.Namespace):  # -> Registries
    """Where a training run writes: the user registry, or ``--weights-dir`` when given (checked writable)."""
    from medlim.core.weights import Registries

    registries = Registries.load(models_dir=args.weights_dir)
    registries.check_writable(allow_shipped_folder=args.weights_dir is not None)
    return registries


def _phantom_names(kind: str, id_classes: tuple[str, ...], name: str | None) -> dict[str, str]:
    """The registry names :func:`medlim.curation.ood.recipe.train_and_register` gives (``ae`` for TEND too)."""
    suffix = "-".join(id_classes) if len(id_classes) <= 2 else f"{len(id_classes)}classes"
    names = {kind: name or f"{kind}-{suffix}"}
    if kind == "tend":
        names["ae"] = f"ae-{suffix}" if name is None else f"{name}-ae"
    return names


def _train_phantoms(args: argparse.Namespace) -> int:
    """The phantom recipe (reproduces the shipped detectors from their recorded commands)."""
    from medlim.core.training import TrainingOutcome, stderr_progress
    from medlim.curation.ood.recipe import DataSpec, train_and_register
    from medlim.curation.ood.train import OodTrainingConfig

    user_only = [flag for flag, value in (("--val", args.val), ("--max-minutes", args.max_minutes),
                                          ("--skip-bad", args.skip_bad or None), ("--stats", args.stats))
                 if value is not None]
    if user_only:
        raise ParameterError(f"{', '.join(user_only)} apply to training on your folder (--data DIR); the phantom "
                             "recipe runs its recorded epochs.")
    kind = args.ood_kind
    seed = 1 if args.seed is None else args.seed
    given, _ = _settings(args, kind)
    id_classes = _id_classes(args.id_class)
    registries = _write_registries(args)
    names = _phantom_names(kind, id_classes, args.name)
    if args.version is not None:
        version = args.version
        for model_name in names.values():
            registries.claim(model_name, version)
    else:
        version = max((registries.next_version(n) for n in names.values()), key=int)
    argv = sys.argv[sys.argv.index(kind) + 1 :] if kind in sys.argv else []
    command = f"medlim train {kind} " + " ".join(shlex.quote(a) for a in argv)
    defaults = DataSpec()
    results = train_and_register(
        kind,
        id_classes=id_classes,
        data_spec=DataSpec(heldout_dir=args.heldout, seed=seed,
                           n_train=args.n_train if args.n_train is not None else defaults.n_train,
                           n_calib=args.n_calib if args.n_calib is not None else defaults.n_calib,
                           n_heldout=args.n_heldout if args.n_heldout is not None else defaults.n_heldout,
                           variability=args.variability if args.variability is not None else 0.0),
        config=OodTrainingConfig(**given, seed=seed),
        name=args.name,
        version=version,
        command=command.strip(),
        registry=registries.user,
        log=stderr_progress,
    )
    entries = tuple(entry for entry, _ in results.values())
    outcome = TrainingOutcome(
        registered=entries,
        validation={e.name: e.metrics["calibration"] for e in entries},
        extra={"heldout": {e.name: {m: e.metrics["heldout"][m] for m in ("auroc", "aupr", "fpr_at_95_tpr",
                                                                          "transform_accuracy")}
                           for e in entries}},
    )
    outcome.emit()
    return 0


def _score(args: argparse.Namespace) -> int:
    from medlim.core.batch import json_line, progress_printer
    from medlim.curation.ood.scoring import PART_NAMES
    from medlim.curation.ood.service import inputs_from_paths, score_inputs

    detector = _detector(args)
    inputs = inputs_from_paths(args.paths, pseudonymise=args.pseudonymise_names)
    if not inputs:
        raise ParameterError(f"no images found in {args.paths}.")
    columns = [*PART_NAMES[detector.kind], *(["label"] if args.labels_from_folders else [])]
    if not args.jsonl:
        print("\t".join(["file", "score", "threshold", "is_ood", *columns]), flush=True)

    def show(row: dict) -> None:
        print(json_line(row) if args.jsonl else _table_line(row, columns), flush=True)

    report = score_inputs(detector, inputs, threshold=args.threshold, label_folders=args.labels_from_folders,
                          pseudonymised=args.pseudonymise_names, progress=progress_printer(len(inputs)),
                          on_row=show, engine=engine_of(args))
    if args.summary or args.labels_from_folders:
        if args.jsonl:
            print(json.dumps({"summary": report.summary()}), flush=True)
        else:
            from medlim.core.text import escape_control

            print("\n".join(escape_control(line) for line in report.summary_lines()), flush=True)
    return 0


def _table_line(row: dict, parts: Sequence[str]) -> str:
    """One tab-separated line; names and messages with control characters escaped (no forged lines or cells)."""
    from medlim.core.text import escape_control

    name = escape_control(row["file"])
    if "error" in row:
        return f"{name}\t{row['error']}: {escape_control(row['message'])}"
    return "\t".join([name, f"{row['score']:.5f}", f"{row['threshold']:.5f}", str(row["is_ood"]),
                      *(f"{row[p]:.5f}" if isinstance(row[p], float) else str(row[p]) for p in parts)])


def _evaluate(args: argparse.Namespace) -> int:
    from medlim.core.training import stderr_progress
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.ood.evaluate import evaluate_detector, evaluation_lines
    from medlim.curation.ood.recipe import HELDOUT_SEED
    from medlim.curation.ood.shift_types import shifted_phantom_set
    from medlim.phantoms.radiograph import BODY_PARTS

    detector = _detector(args)
    seed = HELDOUT_SEED if args.seed is None else args.seed
    read: dict[int, object] = {}  # the folder as read at each input side
    named: dict[str, object] = {}  # --data: the folder's fingerprint and images (never its path)
    if args.n_shift < 0:
        raise ParameterError(f"--n-shift must be 0 or more, {args.n_shift} is given.")
    if args.data is not None:
        from medlim.curation.ood.folder import evaluation_data

        data = evaluation_data(args.data, size=detector.read_size, skip_bad=args.skip_bad,
                               progress=stderr_progress)
        read[detector.read_size] = data
        named["data"] = {"fingerprint": data.fingerprint,
                         "images": len(data.clean) + (0 if data.shifted is None else len(data.shifted))}
        evaluation = evaluate_detector(detector, data.clean, seed=seed, shifted=data.shifted,
                                       shift_types=data.shift_types)
    else:
        if args.n < 1:
            raise ParameterError(f"--n must be at least 1, {args.n} is given.")
        variability = args.variability
        if variability is None:
            variability = float(detector.params.get("data", {}).get("variability", 0.0))
        phantoms = phantom_set(seed=seed, per_class=args.n, body_parts=BODY_PARTS, size=detector.read_size,
                               variability=variability)
        moved = shifted_phantom_set(seed=seed, per_type=args.n_shift, body_parts=detector.id_classes,
                                    size=detector.read_size, variability=variability) \
            if args.n_shift and set(detector.id_classes) <= set(BODY_PARTS) else None
        evaluation = evaluate_detector(detector, phantoms, seed=seed, shifted=moved.images if moved else None,
                                       shift_types=moved.shift_types if moved else ())
    table = _shift_comparison(args, detector, seed, read) if evaluation.shift_types else None
    if args.json:
        print(json.dumps({"detector": detector.name, "acquisition_statistics": detector.fused, **named,
                          **evaluation.to_dict(),
                          **({"shift_types": table.to_dict()} if table is not None else {})}, indent=2))
    else:
        lines = evaluation_lines(evaluation, detector=detector.name + (" + acquisition statistics" if detector.fused
                                                                       else ""))
        if table is not None and len(table.detectors) > 1:
            lines += ["", "per shift type, detectors side by side (share detected at each one's calibrated "
                          "threshold / AUROC against the ID images):", *table.lines()]
        print("\n".join(lines))
    return 0


def _compared(args: argparse.Namespace, detector):  # -> list[Detector]
    """The evaluated detector followed by those ``--compare`` names (``auto``: same ID classes)."""
    from medlim.curation.ood.scoring import detector_from_entry
    from medlim.curation.ood.shift_types import companion_entries

    choice = (args.compare or "auto").strip()
    if choice == "none":
        return [detector]
    registries = _registries(args)
    if choice == "auto":
        entries = companion_entries(registries.list(TASK), id_classes=detector.id_classes,
                                    exclude=detector.name.split("@")[0])
    else:
        entries = tuple(registries.find(name.strip()) for name in choice.split(",") if name.strip())
    return [detector, *(detector_from_entry(entry, stats=args.stats) for entry in entries)]


def _shift_comparison(args: argparse.Namespace, detector, seed: int, read: dict):  # -> ShiftTypeTable
    """Per-shift-type rows of the detector and its companions on the evaluation's images (``read``: the
    folder already read, by input side)."""
    from medlim.curation.ood.shift_types import ShiftedSet, compare_shift_types, phantom_shift_comparison

    detectors = _compared(args, detector)
    if args.data is None:
        return phantom_shift_comparison(detectors, seed=seed, per_class=args.n, per_type=args.n_shift,
                                        variability=args.variability)
    import numpy as np

    from medlim.curation.ood.folder import evaluation_data

    def data_at(size: int):  # -> EvaluationData
        if size not in read:
            read[size] = evaluation_data(args.data, size=size, skip_bad=args.skip_bad)
        return read[size]

    def shifted(size: int) -> ShiftedSet:
        data = data_at(size)
        return ShiftedSet(data.shifted, data.shift_types, np.full(len(data.shift_types), np.nan))

    return compare_shift_types(detectors, reference=lambda size: data_at(size).clean, shifted=shifted,
                               source=f"dataset {data_at(detector.read_size).fingerprint}")  # never the folder's name
