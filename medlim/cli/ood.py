"""``medlim ood evaluate|score`` and ``medlim train tend|cvad`` (thesis §4.1–4.2).

``score`` prints one line per image (JSON lines with ``--jsonl``): file, score,
threshold, is_ood and the detector's parts (TEND ``p``, ``d``; CVAD ``rec``,
``dis``; AE ``rec``); a file that cannot be read gets ``file, error, message``
and the run goes on. Files are read, resized and scored in small batches, so
memory does not grow with their number (issue 14). ``evaluate`` prints AUROC,
AUPR, FPR at 95 % TPR, the G-mean threshold/TPR/FPR/DIFF and the
validation-transform accuracies as JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from medlim.errors import ParameterError

__all__ = ["register", "add_train_parsers"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ood", help="out-of-distribution scores with TEND, CVAD or the AE baseline")
    sub = parser.add_subparsers(dest="ood_command", metavar="ACTION")

    score = sub.add_parser("score", help="score images (files or folders) with a registered detector")
    score.add_argument("--detector", required=True, help="registry name, e.g. tend-hand (name@version allowed)")
    score.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    score.add_argument("--jsonl", action="store_true", help="JSON lines instead of a table")
    score.add_argument("--threshold", type=float, default=None, help="override the calibrated threshold")
    score.add_argument("--weights-dir", default=None, help="registry folder (default: settings)")
    score.add_argument("--pseudonymise-names", action="store_true",
                       help="name files by a keyed-hash label instead of their path")
    score.set_defaults(func=_score)

    evaluate = sub.add_parser("evaluate", help="held-out evaluation (one-vs-rest / rest-vs-one, Table 4.5 transforms)")
    evaluate.add_argument("--detector", required=True)
    evaluate.add_argument("--data", type=Path, default=None,
                          help="folder DIR/<class>/* (internal-site rows); default: held-out phantoms")
    evaluate.add_argument("--seed", type=int, default=None, help="phantom seed when --data is omitted (default 9000)")
    evaluate.add_argument("--n", type=int, default=60, help="phantoms per class when --data is omitted")
    evaluate.add_argument("--variability", type=float, default=None,
                          help="within-site variation of the phantoms (default: the detector's training data)")
    evaluate.add_argument("--weights-dir", default=None)
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``tend`` and ``cvad`` to ``medlim train``."""
    from medlim.curation.ood.train import MARGINS

    for kind, text in (("tend", "TEND novelty detector + its AE baseline (thesis §4.1)"),
                       ("cvad", "CVAD cascade-VAE anomaly detector (thesis §4.2)")):
        p = sub.add_parser(kind, help=text)
        p.add_argument("--id-class", required=True,
                       help="in-distribution class(es), comma-separated; '!NAME' = every phantom class but NAME")
        p.add_argument("--data", type=Path, default=None,
                       help="folder DIR/<class>/*.png (+ manifest.csv); default: phantoms generated from --seed")
        p.add_argument("--heldout", type=Path, default=None, help="held-out folder; default: phantoms of seed 9000")
        p.add_argument("--seed", type=int, default=1, help="phantom and training seed")
        p.add_argument("--n-train", type=int, default=600, help="ID training phantoms (without --data)")
        p.add_argument("--n-calib", type=int, default=40, help="calibration phantoms per class")
        p.add_argument("--n-heldout", type=int, default=60, help="held-out phantoms per class")
        p.add_argument("--variability", type=float, default=0.0,
                       help="within-site variation of the training, calibration and held-out phantoms in [0, 1] "
                            "(1 = one real hospital's spread; default 0 = fixed acquisition)")
        p.add_argument("--input-size", type=int, default=64, help="model input side (shipped 64; thesis 256)")
        p.add_argument("--width", type=int, default=8, help="base channels w (thesis 16)")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        if kind == "tend":
            p.add_argument("--margin", type=float, default=150.0, choices=MARGINS, help="margin R")
            p.add_argument("--ae-epochs", type=int, default=30)
            p.add_argument("--epochs", type=int, default=30, help="stage-2 epochs")
            p.add_argument("--warmup-epochs", type=int, default=5)
            p.add_argument("--distortions", default=None,
                           help="fake-OOD distortions, comma-separated (default: the thesis's six; extra: "
                                "spread, motion_blur, cut_paste)")
            p.add_argument("--train-encoder", action="store_true",
                           help="train the encoder in stage 2 too (the authors' code); the thesis freezes it")
        else:
            p.add_argument("--latent", type=int, default=256, help="main latent K (branch 4K)")
            p.add_argument("--epochs", type=int, default=40, help="generator epochs")
            p.add_argument("--disc-epochs", type=int, default=12)
            p.add_argument("--latent-noise", type=float, default=1.0)
            p.add_argument("--recon-weight", type=float, default=1.0,
                           help="1/(2σ²) of the Gaussian likelihood in each VAE loss (1 = σ² 0.5)")
        p.add_argument("--name", default=None, help="registry name (default <kind>-<class>)")
        p.add_argument("--version", default="1")
        p.add_argument("--weights-dir", default=None)
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


def _registry(directory: str | None):  # -> Registry
    from medlim.core.weights import Registry

    return Registry.load(directory) if directory else Registry.load()


def _detector(spec: str, weights_dir: str | None):
    from medlim.curation.ood.scoring import load_detector

    name, _, version = spec.partition("@")
    return load_detector(name, version=version or None, registry=_registry(weights_dir))


def _train(args: argparse.Namespace) -> int:
    from medlim.curation.ood.recipe import DataSpec, train_and_register
    from medlim.curation.ood.train import OodTrainingConfig

    kind = args.ood_kind
    options = dict(input_size=args.input_size, width=args.width, batch_size=args.batch_size, lr=args.lr,
                   seed=args.seed, threads=args.threads)
    if kind == "tend":
        options.update(margin=args.margin, ae_epochs=args.ae_epochs, tend_epochs=args.epochs,
                       warmup_epochs=args.warmup_epochs, train_encoder=args.train_encoder)
        if args.distortions:
            options["distortions"] = tuple(name.strip() for name in args.distortions.split(",") if name.strip())
    else:
        options.update(latent=args.latent, cvad_epochs=args.epochs, disc_epochs=args.disc_epochs,
                       latent_noise=args.latent_noise, recon_weight=args.recon_weight)
    argv = sys.argv[sys.argv.index(kind) + 1 :] if kind in sys.argv else []
    command = f"medlim train {kind} " + " ".join(shlex.quote(a) for a in argv)
    results = train_and_register(
        kind,
        id_classes=_id_classes(args.id_class),
        data_spec=DataSpec(data_dir=args.data, heldout_dir=args.heldout, seed=args.seed, n_train=args.n_train,
                           n_calib=args.n_calib, n_heldout=args.n_heldout, variability=args.variability),
        config=OodTrainingConfig(**options),
        name=args.name,
        version=args.version,
        command=command.strip(),
        registry=_registry(args.weights_dir),
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    summary = {k: {"name": e.name, "version": e.version, "file": e.file, "threshold": e.thresholds["score"],
                   "heldout": {m: e.metrics["heldout"][m] for m in ("auroc", "aupr", "fpr_at_95_tpr", "transform_accuracy")}}
               for k, (e, _) in results.items()}
    print(json.dumps(summary, indent=2))
    return 0


def _score(args: argparse.Namespace) -> int:
    from medlim.core.batch import json_line, plan_files, progress_printer
    from medlim.curation.ood.data import list_image_files
    from medlim.curation.ood.scoring import PART_NAMES, score_files

    detector = _detector(args.detector, args.weights_dir)
    files = plan_files(list_image_files(args.paths), pseudonymise=args.pseudonymise_names)
    if not files:
        raise ParameterError(f"no images found in {args.paths}.")
    rows = score_files(detector, [(f.name, f.path) for f in files], threshold=args.threshold,
                       progress=progress_printer(len(files)), pseudonymised=args.pseudonymise_names)
    parts = PART_NAMES[detector.kind]
    if not args.jsonl:
        print("\t".join(["file", "score", "threshold", "is_ood", *parts]), flush=True)
    for row in rows:
        print(json_line(row) if args.jsonl else _table_line(row, parts), flush=True)
    return 0


def _table_line(row: dict, parts: tuple[str, ...]) -> str:
    """One tab-separated line; names and messages with control characters escaped (no forged lines or cells)."""
    from medlim.core.text import escape_control

    name = escape_control(row["file"])
    if "error" in row:
        return f"{name}\t{row['error']}: {escape_control(row['message'])}"
    return "\t".join([name, f"{row['score']:.5f}", f"{row['threshold']:.5f}", str(row["is_ood"]),
                      *(f"{row[p]:.5f}" for p in parts)])


def _evaluate(args: argparse.Namespace) -> int:
    from medlim.curation.ood.data import phantom_set, read_folder
    from medlim.curation.ood.evaluate import evaluate_detector
    from medlim.curation.ood.recipe import HELDOUT_SEED
    from medlim.phantoms.radiograph import BODY_PARTS

    detector = _detector(args.detector, args.weights_dir)
    seed = HELDOUT_SEED if args.seed is None else args.seed
    if args.data is not None:
        data = read_folder(args.data, size=detector.input_size, sites=("internal",))
    else:
        if args.n < 1:
            raise ParameterError(f"--n must be at least 1, {args.n} is given.")
        variability = args.variability
        if variability is None:
            variability = float(detector.params.get("data", {}).get("variability", 0.0))
        data = phantom_set(seed=seed, per_class=args.n, body_parts=BODY_PARTS, size=detector.input_size,
                           variability=variability)
    evaluation = evaluate_detector(detector, data, seed=seed)
    print(json.dumps({"detector": detector.name, **evaluation.to_dict()}, indent=2))
    return 0
