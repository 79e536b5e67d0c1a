"""Radiographs: train on one phantom family, test on the other (issues 12 and 13).

Family A is ``medlim phantom radiograph`` (with ``--variability 1``, as the
shipped OOD detectors were trained); family B is ``medlim phantom
radiograph-b``, a second generator written from a description (another limb
model and acquisition chain). For each family the same trainers run with the
same default settings and the same wall-clock budget, through the user-data
path (``medlim train ... --data DIR``, as a site would use it, not the phantom
recipe of the shipped weights); each model is then evaluated on held-out
images of *both* families, giving a 2 x 2 table per model:

* OOD (thesis §4.1/§4.2): TEND (and CVAD) with humerus as the in-distribution
  class, trained on 200 + 30 humerus images (20 % held for validation) with
  30 images of each other body part (validation and early stopping only);
  evaluated one-vs-rest (humerus against the six other body parts) by AUROC
  on 40 held-out images per class
  (``medlim ood evaluate --detector NAME --data DIR --compare none``).
* Retrieval (thesis ch. 5): OSCARS and its plain triplet baseline trained on an
  external-site folder (60 per class) with per-class detectors from an
  internal-site folder (40 per class); evaluated by leave-one-out P@10 over the
  body parts on 40 held-out external-site images per class
  (``medlim retrieval evaluate --model NAME --model NAME-triplet --data DIR``).

Seeds: training 31001 (humerus) / 31002 (all parts) / 32001 (retrieval
internal) / 32002 (retrieval external); held-out 39001 (OOD) / 39002
(retrieval). The same seeds are used for both families (different
generators, so different images). Nothing is tuned on the held-out sets: the
trainers run with their planned defaults, only ``--max-minutes`` is set.

The budgets are wall-clock, so on a shared machine the number of epochs
reached depends on the load; the table prints the epochs each run reached
(from the trainer's validation record) and the script prints ``uptime``.

Run (models go to ``$MEDLIM_HOME/models``, never to ``weights/``)::

    MEDLIM_HOME=/tmp/xfam-home nice -n 10 .venv/bin/python benchmarks/eval_radiograph_families.py

``--both`` also trains every model on the two families' training folders merged
(family "AB": the domain-randomised variant, tested on each family's held-out set).

Options: ``--train-seed S`` (the trainers' split and training seed, default 0;
seed 1 was run as a replicate), ``--minutes-tend 6 --minutes-cvad 4
--minutes-oscars 6`` (the defaults), ``--no-cvad``, ``--no-retrieval``,
``--work DIR`` (keep the generated data), ``--json``. With the defaults it runs
a few tens of minutes on 2 CPU cores (30 min on 2026-12-05, load average 3-12).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDLIM = [sys.executable, "-m", "medlim"]

#: Phantom command of each family (site and size are added per set).
FAMILIES = {"A": ["phantom", "radiograph", "--variability", "1"], "B": ["phantom", "radiograph-b"]}
BODY_PARTS = ("hand", "finger", "wrist", "forearm", "elbow", "humerus", "shoulder")
ID_CLASS = "humerus"
SIZE = 64
SEEDS = {"train_id": 31001, "train_all": 31002, "ret_internal": 32001, "ret_external": 32002,
         "heldout_ood": 39001, "heldout_ret": 39002}


class CommandFailed(RuntimeError):
    """A medlim command exited with an error (its message is the command's last stderr lines)."""


def _run(args: list[str], *, log: list[str]) -> str:
    """Run ``medlim ARGS``, echo the command, return stdout (raise :class:`CommandFailed` with stderr)."""
    line = "medlim " + " ".join(args)
    log.append(line)
    print(f"$ {line}", file=sys.stderr, flush=True)
    done = subprocess.run([*MEDLIM, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    print(done.stderr[-1500:], file=sys.stderr, flush=True)  # the trainers' last progress lines
    if done.returncode != 0:
        raise CommandFailed(f"`{line}` failed with code {done.returncode}: {done.stderr.strip()[-600:]}")
    return done.stdout


def _last_json(stdout: str) -> dict:
    """The last line of stdout that parses as a JSON object (the trainers' record)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise RuntimeError(f"no JSON record in the output:\n{stdout[-2000:]}")


def _phantoms(family: str, out: Path, *, n: int, seed: int, site: str = "internal",
              body_part: str | None = None, log: list[str]) -> Path:
    """Generate ``n`` family phantoms of 64 px into ``out`` (class folders + manifest.csv)."""
    args = [*FAMILIES[family], "--out", str(out), "--n", str(n), "--seed", str(seed), "--site", site,
            "--size", str(SIZE), "--quiet"]
    if body_part:
        args += ["--body-part", body_part]
    _run(args, log=log)
    return out


def _merge(sources: list[Path], out: Path) -> Path:
    """Copy the class folders of ``sources`` into ``out`` (file names prefixed by family and source, no manifest)."""
    for source in sources:
        for image in sorted(source.glob("*/*.png")):
            target = out / image.parent.name / f"{source.parent.name}_{source.name}_{image.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, target)
    return out


def _epochs(record: dict, name: str) -> str:
    """``run/planned (best b)`` epochs of model ``name`` from the trainer's validation record."""
    validation = record.get("validation", {})
    fit = validation.get(name) or next((v for k, v in validation.items() if k.startswith(name)), None)
    if not isinstance(fit, dict) or "epochs_run" not in fit:
        return "—"
    return f"{fit['epochs_run']}/{fit['epochs_planned']} (best {fit['best_epoch']})"


def _auroc(stdout: str) -> float:
    report = json.loads(stdout)
    return float(report["auroc"])


def _p_at_10(stdout: str) -> dict[str, float]:
    """P@10 per method (``{"OSCARS": ..., "triplet": ...}``) from ``retrieval evaluate --json``."""
    found: dict[str, float] = {}
    for table in json.loads(stdout)["tables"]:
        for row in table["rows"]:
            if "precision@10" in row:
                found.setdefault(str(row["method"]), float(row["precision@10"]))
    if not found:
        raise RuntimeError(f"no precision@10 in the retrieval report: {stdout[:2000]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes-tend", type=float, default=6.0)
    parser.add_argument("--minutes-cvad", type=float, default=4.0)
    parser.add_argument("--minutes-oscars", type=float, default=6.0)
    parser.add_argument("--no-cvad", action="store_true", help="skip the CVAD rows")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the OSCARS / triplet rows")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="pass --seed to every trainer (split and training seed; default: the trainers' 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every set size (smoke tests)")
    parser.add_argument("--tag", default=time.strftime("%m%d%H%M"), help="suffix of the registered names")
    parser.add_argument("--work", type=Path, default=None, help="keep the generated data here")
    parser.add_argument("--both", action="store_true",
                        help="also train on both families' training folders merged (family AB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if "MEDLIM_HOME" not in os.environ:
        raise SystemExit("set MEDLIM_HOME (the user registry the models go to), e.g. MEDLIM_HOME=/tmp/xfam-home")

    seed_args = [] if args.train_seed is None else ["--seed", str(args.train_seed)]

    def n(count: int) -> int:
        return max(1, round(count * args.scale))

    work = args.work or Path(tempfile.mkdtemp(prefix="medlim-xfam-"))
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    started = time.time()
    data: dict[tuple[str, str], Path] = {}
    for family in FAMILIES:
        root = work / family
        ood_id = _phantoms(family, root / "tr_humerus", n=n(200), seed=SEEDS["train_id"], body_part=ID_CLASS, log=log)
        ood_all = _phantoms(family, root / "tr_all", n=n(30) * 7, seed=SEEDS["train_all"], log=log)
        data[family, "ood_train"] = _merge([ood_id, ood_all], root / "ood_train")
        data[family, "ood_heldout"] = _phantoms(family, root / "ood_heldout", n=n(40) * 7,
                                                seed=SEEDS["heldout_ood"], log=log)
        if not args.no_retrieval:
            data[family, "ret_internal"] = _phantoms(family, root / "ret_internal", n=n(40) * 7,
                                                     seed=SEEDS["ret_internal"], log=log)
            data[family, "ret_external"] = _phantoms(family, root / "ret_external", n=n(60) * 7,
                                                     seed=SEEDS["ret_external"], site="external", log=log)
            data[family, "ret_heldout"] = _phantoms(family, root / "ret_heldout", n=n(40) * 7,
                                                    seed=SEEDS["heldout_ret"], site="external", log=log)

    trained_families = [*FAMILIES, *(["AB"] if args.both else [])]
    if args.both:
        for key in ("ood_train", "ret_internal", "ret_external"):
            if ("A", key) in data:
                data["AB", key] = _merge([data["A", key], data["B", key]], work / "AB" / key)
    rows: list[dict] = []
    detectors = [("tend", args.minutes_tend)] + ([] if args.no_cvad else [("cvad", args.minutes_cvad)])
    for kind, minutes in detectors:
        for trained_on in trained_families:
            name = f"xfam-{kind}-{trained_on}-{args.tag}"
            t0 = time.time()
            try:
                record = _last_json(_run(["train", kind, "--data", str(data[trained_on, "ood_train"]),
                                          "--id-class", ID_CLASS, "--max-minutes", f"{minutes:g}",
                                          "--name", name, *seed_args], log=log))
            except CommandFailed as failure:
                record = {"failed": str(failure)}
            seconds = time.time() - t0
            load = os.getloadavg()[0]
            for tested_on in FAMILIES:
                value = None
                if "failed" not in record:
                    value = _auroc(_run(["ood", "evaluate", "--detector", name, "--data",
                                         str(data[tested_on, "ood_heldout"]), "--compare", "none", "--json"],
                                        log=log))
                rows.append({"task": "OOD one-vs-rest AUROC", "model": kind.upper(), "trained_on": trained_on,
                             "tested_on": tested_on, "value": value, "epochs": _epochs(record, name),
                             "train_s": round(seconds), "load1": round(load, 1), "record": record})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    if not args.no_retrieval:
        for trained_on in trained_families:
            name = f"xfam-oscars-{trained_on}-{args.tag}"
            t0 = time.time()
            try:
                record = _last_json(_run(["train", "oscars", "--data", str(data[trained_on, "ret_external"]),
                                          "--internal", str(data[trained_on, "ret_internal"]),
                                          "--max-minutes", f"{args.minutes_oscars:g}", "--name", name, *seed_args],
                                         log=log))
            except CommandFailed as failure:
                record = {"failed": str(failure)}
            seconds = time.time() - t0
            load = os.getloadavg()[0]
            for tested_on in FAMILIES:
                found = {"OSCARS": None, "triplet": None}
                if "failed" not in record:
                    found = _p_at_10(_run(["retrieval", "evaluate", "--model", name, "--model", f"{name}-triplet",
                                           "--data", str(data[tested_on, "ret_heldout"]), "--json"], log=log))
                for model, value in sorted(found.items()):
                    method = "triplet" if "triplet" in model.lower() else \
                        "OSCARS" if "oscars" in model.lower() else model
                    rows.append({"task": "retrieval P@10", "model": method, "trained_on": trained_on,
                                 "tested_on": tested_on, "value": value,
                                 "epochs": _epochs(record, name if method == "OSCARS" else f"{name}-triplet"),
                                 "train_s": round(seconds), "load1": round(load, 1), "record": record})
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    if args.json:
        print(json.dumps({"rows": rows, "commands": log, "minutes": (time.time() - started) / 60,
                          "uptime": uptime, "work": str(work)}, indent=1))
    else:
        print("| Task | Model | Trained on | Tested on family A | Tested on family B | Epochs reached | Train s | load (1 min) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for key in dict.fromkeys((r["task"], r["model"], r["trained_on"]) for r in rows):
            cells = {r["tested_on"]: r for r in rows if (r["task"], r["model"], r["trained_on"]) == key}
            first = next(iter(cells.values()))
            a, b = (f"{cells[f]['value']:.3f}" if cells[f]["value"] is not None else "failed" for f in ("A", "B"))
            print(f"| {key[0]} | {key[1]} | family {key[2]} | {a} | {b} "
                  f"| {first['epochs']} | {first['train_s']} | {first['load1']} |")
        print(f"\n{(time.time() - started) / 60:.1f} min; {uptime}; data in {work}")
        for row in rows:
            if "failed" in row["record"] and row["tested_on"] == "A":
                print(f"family {row['trained_on']} {row['model']}: {row['record']['failed']}")
        print("\n".join(f"  {line}" for line in log), file=sys.stderr)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
