"""``medlim weights list|verify|import|set-default|reset-default|calibrate-familiarity``: both registries
from the command line.

Models are found in the shipped registry (``MEDLIM_WEIGHTS_DIR``, default
``weights/``) and the user registry (``MEDLIM_MODELS_DIR``, default
``MEDLIM_HOME/models``); ``list`` shows both with a column saying which, and
each task's default (issue 17). ``import`` writes to the user registry (or to
the folder ``--to DIR`` names) at the next free version unless ``--version``
is given, never replacing an entry of either registry. ``calibrate-familiarity``
(re)writes the "unlike my training data" check stored beside SCU-Net or
steatosis weights trained on phantoms medlim can regenerate (issue 13;
:mod:`medlim.core.familiarity`), or
with ``--check`` only compares it with the stored file. Calls the same
functions as the app (:mod:`medlim.core.weights`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from medlim.core.weights import IMPORTERS, Registries, Registry, import_checkpoint
from medlim.errors import ParameterError

__all__ = ["register"]


def _registries(args: argparse.Namespace) -> Registries:
    return Registries.load(weights_dir=args.weights_dir, models_dir=args.models_dir)


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ParameterError(f"--param must be KEY=VALUE (VALUE as JSON or text); {text!r} is given.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _thresholds_text(entry: Any) -> str:
    """``output=0.2,gate=0.2/0.95,regions=filtered``: the entry's thresholds, and its BAC gate (``params.gate``) and
    region filter (``params.region_filter``) when it has them."""
    from medlim.mammography.gating import gate_from_params

    parts = [f"{k}={v:g}" for k, v in entry.thresholds.items()]
    try:
        gate = gate_from_params(entry.params)
    except ParameterError:  # a malformed gate is refused when the weights are loaded, not in a listing
        gate = None
    if gate is not None:
        parts.append(f"gate={gate.floor:g}/{gate.seed:g}")
    if entry.params.get("region_filter") is not None:
        parts.append("regions=filtered")
    return ",".join(parts) or "-"


def _cmd_list(args: argparse.Namespace) -> int:
    registries = _registries(args)
    models = registries.models(args.task)
    if args.json:
        from medlim.core.model_catalogue import picker_caption

        # "caption": the line the pages show under their weights pickers, from the same function
        print(json.dumps([{**m.to_dict(), "caption": picker_caption(m.entry, source=m.source)} for m in models],
                         indent=2))
        return 0
    if not models:
        print(f"no weights registered in {registries.shipped.directory} or {registries.user.directory}")
        return 0
    header = ("NAME", "VERSION", "TASK", "SOURCE", "DEFAULT", "ARCHITECTURE", "PRESET", "OUTPUT", "THRESHOLDS", "FILE")
    rows = [
        (
            m.entry.name,
            m.entry.version,
            m.entry.task,
            m.source,
            "default" if m.task_default else "-",
            m.entry.architecture,
            m.entry.preset,
            m.entry.output_type,
            _thresholds_text(m.entry),
            m.entry.file,
        )
        for m in models
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _familiarity_status(entry: Any) -> tuple[bool, str]:
    """``(ok, text)`` for the training-data check stored with an entry ("" when it has none)."""
    path = entry.familiarity_path
    if path is None:
        return True, ""
    if not path.is_file():
        return False, f"; training-data check missing (file {path} not found)"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != entry.familiarity.get("sha256"):
        return False, (f"; training-data check mismatch (file {path} has sha256 {actual}, "
                       f"manifest says {entry.familiarity.get('sha256')})")
    return True, "; training-data check ok"


def _cmd_verify(args: argparse.Namespace) -> int:
    results = _registries(args).verify_all(args.names or None)
    all_ok = True
    for result in results:
        detail = "" if result.ok else f" (file {result.entry.path}"
        if result.status == "mismatch":
            detail += f" has sha256 {result.actual_sha256}, manifest says {result.entry.sha256})"
        elif result.status == "missing":
            detail += " not found)"
        check_ok, check_text = _familiarity_status(result.entry)
        all_ok = all_ok and result.ok and check_ok
        print(f"{result.entry.label}: {result.status}{detail}{check_text}")
    if not results:
        print("no weights registered")
    return 0 if all_ok else 1


def _calibrate_bac(entry: Any, args: argparse.Namespace) -> tuple[Any, str, dict[str, Any]]:
    """The check of phantom-trained SCU-Net weights, its command and its manifest summary."""
    from medlim.mammography.familiarity import (
        DEFAULT_CALIBRATION_N,
        DEFAULT_VALIDATION_N,
        calibrate_phantom_weights,
        calibration_command,
    )

    n = DEFAULT_CALIBRATION_N if args.n is None else args.n
    validation_n = DEFAULT_VALIDATION_N if args.validation_n is None else args.validation_n
    check = calibrate_phantom_weights(entry, n=n, validation_n=validation_n, workers=args.workers,
                                      progress=_described)
    return check, calibration_command(entry, n, validation_n), {"preset": entry.preset}


def _calibrate_steatosis(entry: Any, args: argparse.Namespace) -> tuple[Any, str, dict[str, Any]]:
    """The check of phantom-trained steatosis weights (every training tile), its command and its manifest summary."""
    from medlim.microscopy.steatosis.familiarity import (
        BLOCK,
        DEFAULT_VALIDATION_N,
        calibrate_phantom_weights,
        calibration_command,
    )

    if args.n is not None:
        raise ParameterError("--n applies to BAC weights; a steatosis check is fitted on every training tile.")
    validation_n = DEFAULT_VALIDATION_N if args.validation_n is None else args.validation_n
    check = calibrate_phantom_weights(entry, validation_n=validation_n, progress=_described)
    return check, calibration_command(entry, validation_n), {"block": BLOCK}


def _described(done: int, total: int) -> None:
    print(f"[{done}/{total}] images described", file=sys.stderr, flush=True)


def _cmd_calibrate_familiarity(args: argparse.Namespace) -> int:
    """Fit the training-data check of phantom-trained BAC or steatosis weights and store it beside them (or compare)."""
    from medlim.core.familiarity import attach_familiarity
    from medlim.mammography.analysis import BAC_TASK
    from medlim.microscopy.steatosis.folder import STEATOSIS_TASK

    entry = _registries(args).find(args.model)
    calibrators = {BAC_TASK: _calibrate_bac, STEATOSIS_TASK: _calibrate_steatosis}
    if entry.task not in calibrators:
        raise ParameterError(
            f"{entry.label} is a {entry.task} model; calibrate-familiarity calibrates {' and '.join(calibrators)} "
            "weights trained on phantoms (other models get their check when they are trained)."
        )
    check, command, extra = calibrators[entry.task](entry, args)
    text = check.to_json()
    if args.check:
        path = entry.familiarity_path
        same = path is not None and path.is_file() and path.read_text(encoding="utf-8") == text
        print(f"{entry.label}: training-data check {'reproduced exactly' if same else 'differs from the stored file'}"
              f" ({path})")
        return 0 if same else 1
    selection = check.selection
    summary = {
        "threshold": round(check.threshold, 4),
        "n_calibration": check.n_calibration,
        "calibration_seed": selection["calibration"]["seed"],
        "validation_seed": selection["validation"]["seed"],
        "n_validation": selection["validation"]["n"],
        "validation_flagged": selection.get("validation_flagged"),
        **extra,
    }
    updated = attach_familiarity(entry, check, command=command, summary=summary)
    print(json.dumps({"model": updated.label, "file": str(updated.familiarity_path), **updated.familiarity}, indent=2))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    thresholds = {"output": args.threshold} if args.threshold is not None else None
    params = dict(_parse_param(p) for p in args.param) if args.param else None
    entry = import_checkpoint(
        args.checkpoint,
        importer=args.importer,
        name=args.name,
        version=args.version,
        preset=args.preset,
        output_type=args.output_type,
        thresholds=thresholds,
        params=params,
        registry=Registry.load(args.to) if args.to is not None else _registries(args),
    )
    print(f"imported {args.checkpoint} as {entry.label} -> {entry.path} (sha256 {entry.sha256})")
    return 0


def _cmd_set_default(args: argparse.Namespace) -> int:
    entry = _registries(args).set_default(args.model, task=args.task)
    print(f"{entry.label} is now the default {entry.task} model")
    return 0


def _cmd_reset_default(args: argparse.Namespace) -> int:
    shipped = _registries(args).clear_default(args.task)
    now = shipped.label if shipped is not None else "none (no shipped default)"
    print(f"the default {args.task} model is the shipped one again: {now}")
    return 0


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--weights-dir", type=Path, default=None,
                     help="shipped registry folder (default: MEDLIM_WEIGHTS_DIR or weights/)")
    sub.add_argument("--models-dir", type=Path, default=None,
                     help="user registry folder (default: MEDLIM_MODELS_DIR or MEDLIM_HOME/models)")


def _add_import(commands: argparse._SubParsersAction) -> None:
    importing = commands.add_parser(
        "import", help="convert an external checkpoint into the user registry (explicit key mapping, strict load)"
    )
    importing.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    importing.add_argument("--importer", required=True, help=f"key mapping to use ({', '.join(sorted(IMPORTERS))})")
    importing.add_argument("--name", required=True, help="name of the new registry entry")
    importing.add_argument("--version", default=None,
                           help="version of the new entry (default: the next free one; a taken one is refused)")
    importing.add_argument("--preset", default=None, help="preprocessing preset (default: the importer's)")
    importing.add_argument("--output-type", choices=("raw", "probability"), default=None,
                           help="meaning of the output (default: the importer's)")
    importing.add_argument("--threshold", type=float, default=None,
                           help="cut-off on the model output (default: the importer's)")
    importing.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                           help="inference parameter (repeatable; VALUE parsed as JSON), replaces the importer's params")
    importing.add_argument("--to", type=Path, default=None,
                           help="write into this registry folder instead of the user registry (a maintainer's "
                                "folder; an entry of the same name and version there is replaced)")
    _common(importing)
    importing.set_defaults(func=_cmd_import)


def _add_calibrate(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate-familiarity",
        help="fit the 'unlike my training data' check of phantom-trained BAC or steatosis weights and store it "
             "beside them",
    )
    calibrate.add_argument("model", metavar="NAME@VERSION", help="the weights (NAME:VERSION, or NAME for its highest)")
    calibrate.add_argument("--n", type=int, default=None,
                           help="BAC: training phantoms to fit on (default 80, at most the training count); "
                                "steatosis: every training tile is used")
    calibrate.add_argument("--validation-n", type=int, default=None,
                           help="validation phantoms that choose the limit (BAC: seed 80001, default 50; "
                                "steatosis: seed 5, default 24)")
    calibrate.add_argument("--workers", type=int, default=None, help="processes generating phantoms (default: all CPUs)")
    calibrate.add_argument("--check", action="store_true",
                           help="only compare with the stored file (exit 1 when it differs); write nothing")
    _common(calibrate)
    calibrate.set_defaults(func=_cmd_calibrate_familiarity)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list, verify, import model weights and choose task defaults")
    parser.set_defaults(func=lambda _args: parser.print_help() or 1)
    commands = parser.add_subparsers(dest="weights_command", metavar="ACTION")

    listing = commands.add_parser("list", help="models of the shipped and the user registry, with each task's default")
    listing.add_argument("--task", default=None, help="only this task's models (e.g. ood-detection)")
    listing.add_argument("--json", action="store_true",
                         help="print the manifest entries as JSON, each with its source and task_default")
    _common(listing)
    listing.set_defaults(func=_cmd_list)

    verify = commands.add_parser("verify", help="check files against their sha256 (exit 1 on any mismatch)")
    verify.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: all)")
    _common(verify)
    verify.set_defaults(func=_cmd_verify)

    _add_import(commands)
    _add_calibrate(commands)

    default = commands.add_parser("set-default", help="make a model (shipped or yours) its task's default for you")
    default.add_argument("model", metavar="NAME@VERSION", help="the model (NAME:VERSION, or NAME for its highest version)")
    default.add_argument("--task", default=None, help="refuse unless the model is of this task")
    _common(default)
    default.set_defaults(func=_cmd_set_default)

    reset = commands.add_parser("reset-default", help="return a task to the shipped default")
    reset.add_argument("task", metavar="TASK", help="the task, e.g. bac-segmentation")
    _common(reset)
    reset.set_defaults(func=_cmd_reset_default)
