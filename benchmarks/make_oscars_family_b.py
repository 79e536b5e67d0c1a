"""A family B external folder for OSCARS: unshifted images plus every named shift at spread severities.

``medlim phantom radiograph-b --site external`` draws no shifts of its own, so this folder is put together
from several runs of it: ``--plain`` unshifted images (seed BASE) and ``--each`` images for every named
shift (blur, lowres, cast, noise, grid, exposure) at severities 0.1, 0.3, 0.5, 0.7 and 0.9 (seeds BASE + 1
… BASE + 30), with a ``manifest.csv`` of ``file,class,anomaly_score,shift_type`` (``anomaly_score`` = the
severity, 0 when unshifted) — what ``medlim retrieval evaluate`` reads for S@K.

Used on 2026-12-06 for the OSCARS held-out figures of the README ("OSCARS on your folders"): training
``OUT 61000 --plain 420 --each 14`` (840 images), test ``OUT 63000 --plain 140 --each 7`` (350 images); the
internal folder is ``medlim phantom radiograph-b --n 1400 --seed 62000 --site internal``.

Run: ``.venv/bin/python benchmarks/make_oscars_family_b.py OUT BASE --plain N --each M``.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path

SHIFTS = ("blur", "lowres", "cast", "noise", "grid", "exposure")
SEVERITIES = (0.1, 0.3, 0.5, 0.7, 0.9)


def main() -> None:
    from medlim.cli import main as medlim

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("base", type=int)
    parser.add_argument("--plain", type=int, required=True)
    parser.add_argument("--each", type=int, required=True)
    args = parser.parse_args()
    parts = [("plain", None, 0.0, args.plain)] + [(f"{s}{int(v * 10)}", s, v, args.each)
                                                  for s in SHIFTS for v in SEVERITIES]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for k, (tag, shift, severity, n) in enumerate(parts):
            part = Path(scratch) / tag
            argv = ["phantom", "radiograph-b", "--out", str(part), "--n", str(n), "--seed", str(args.base + k),
                    "--site", "external", "--quiet"]
            if shift:
                argv += ["--shift", shift, "--severity", str(severity)]
            assert medlim(argv) == 0
            with (part / "manifest.csv").open(newline="") as handle:
                for row in csv.DictReader(handle):
                    name = f"{row['class']}/{tag}_{Path(row['file']).name}"
                    (args.out / row["class"]).mkdir(parents=True, exist_ok=True)
                    shutil.copy(part / row["file"], args.out / name)
                    rows.append({"file": name, "class": row["class"], "anomaly_score": severity,
                                 "shift_type": shift or ""})
    with (args.out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "class", "anomaly_score", "shift_type"])
        writer.writeheader()
        writer.writerows(rows)
    print(len(rows))


if __name__ == "__main__":
    main()
