"""Where a BAC model's errors fall on annotated phantom views (issue 13, "BAC errors").

Both mammogram phantom families write, beside each view's BAC mask, a
look-alike code mask (``lookalike_mask``: benign calcifications, clusters,
ligaments or tissue strands, skin, clips, …; codes in
:data:`medlim.phantoms.mammogram.LOOKALIKE_CODES` and
:data:`medlim.phantoms.family_b.lookalikes.LOOKALIKE_CODES`). Given the masks a
model predicted (``medlim bac quantify FOLDER --out MASKS``), this splits, per
phantom folder and BAC grade:

* recall and Dice of the BAC pixels (under-counting shows as low recall);
* the false-positive pixels into those within 3 px of true BAC (a wider or
  shifted outline), those on a look-alike (within 3 px of it, by type), and
  the rest (tissue, edges).

Run: ``medlim bac quantify DIR... --weights NAME --no-store --out MASKS`` then
``python benchmarks/eval_bac_errors.py MASKS DIR...`` (seconds). Use it on
validation folders: an analysis that changes a choice makes its data validation.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medlim.phantoms.family_b.lookalikes import LOOKALIKE_CODES as CODES_B  # noqa: E402
from medlim.phantoms.mammogram import LOOKALIKE_CODES as CODES_A  # noqa: E402

__all__ = ["ViewErrors", "view_errors", "main"]

#: Pixels around true BAC or a look-alike within which a false positive is put down to it.
NEAR_PX = 3


@dataclass(frozen=True)
class ViewErrors:
    """One view's pixel counts: truth, prediction, true positives, false positives and where those lie."""

    grade: str
    truth: int
    predicted: int
    true_positive: int
    false_positive: int
    near_bac: int
    on_lookalike: dict[int, int]


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def view_errors(truth: np.ndarray, predicted: np.ndarray, codes: np.ndarray, *, grade: str) -> ViewErrors:
    """Split one view's errors (``truth``/``predicted`` bool ``[H, W]``, ``codes`` uint8 look-alike codes).

    A false positive near true BAC counts there; any other near a look-alike
    counts for the lowest code it is near (each pixel once).
    """
    false_positive = predicted & ~truth
    near_bac = _near(truth, NEAR_PX)
    rest = false_positive & ~near_bac
    on = {}
    for code in np.unique(codes[codes > 0]):
        hit = rest & _near(codes == code, NEAR_PX)
        on[int(code)] = int(np.count_nonzero(hit))
        rest &= ~hit
    return ViewErrors(grade=grade, truth=int(truth.sum()), predicted=int(predicted.sum()),
                      true_positive=int((truth & predicted).sum()), false_positive=int(false_positive.sum()),
                      near_bac=int((false_positive & near_bac).sum()), on_lookalike=on)


def _read(path: Path) -> np.ndarray:
    """A phantom mask PNG as stored (masks 0/255, look-alike codes 0–9)."""
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise SystemExit(f"cannot read {path}")
    return array if array.ndim == 2 else array[..., 0]


def _predicted_mask(masks: Path, folder: Path, stem: str) -> Path | None:
    """The mask ``medlim bac quantify --out MASKS`` wrote for ``folder/stem``: ``<stem>_bac.png``, or, when several
    input folders hold that stem, ``<folder>__<stem>_bac.png`` (:func:`medlim.core.paths.output_stems`)."""
    for name in (f"{stem}_bac.png", f"{folder.name}__{stem}_bac.png"):
        if (masks / name).exists():
            return masks / name
    found = sorted(masks.rglob(f"{stem}_bac.png"))  # masks sorted into sub-folders by hand
    return found[0] if found else None


def _folder_errors(folder: Path, masks: Path) -> tuple[str, list[ViewErrors]]:
    """The folder's family (``"A"``, or ``"B"`` when its manifest has BAC grades) and its views' errors."""
    rows = list(csv.DictReader((folder / "manifest.csv").open(newline="")))
    family = "B" if rows and "bac_grade" in rows[0] else "A"
    out = []
    for row in rows:
        image = row.get("image") or row["file"]
        path = _predicted_mask(masks, folder, Path(image).stem)
        if path is None:
            print(f"no predicted mask for {Path(image).stem} in {masks}", file=sys.stderr)
            continue
        truth = _read(folder / (row.get("mask") or row["bac_mask"])) > 0
        codes = _read(folder / row["lookalike_mask"])
        predicted = _read(path) > 0
        grade = row.get("bac_grade") or ("bac" if truth.any() else "none")
        out.append(view_errors(truth, predicted, codes, grade=grade))
    return family, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masks", type=Path, help="folder of <stem>_bac.png predicted masks (bac quantify --out)")
    parser.add_argument("folders", type=Path, nargs="+", help="phantom folders (manifest.csv with look-alike masks)")
    args = parser.parse_args(argv)
    names = {"A": {v: k for k, v in CODES_A.items()}, "B": {v: k for k, v in CODES_B.items()}}
    lookalike_total: dict[tuple[str, int], int] = defaultdict(int)
    print(f"{'folder':10} {'grade':9} {'views':>5} {'recall':>7} {'Dice':>6} {'FP px':>9} {'near BAC':>9} "
          f"{'look-alike':>10} {'other':>7}")
    for folder in args.folders:
        groups: dict[str, list[ViewErrors]] = defaultdict(list)
        family, views_of_folder = _folder_errors(folder, args.masks)
        for view in views_of_folder:
            groups[view.grade].append(view)
            for code, count in view.on_lookalike.items():
                lookalike_total[(family, code)] += count
        for grade, views in sorted(groups.items()):
            truth, pred = sum(v.truth for v in views), sum(v.predicted for v in views)
            tp, fp = sum(v.true_positive for v in views), sum(v.false_positive for v in views)
            near, look = sum(v.near_bac for v in views), sum(sum(v.on_lookalike.values()) for v in views)
            recall = f"{tp / truth:.3f}" if truth else "—"
            dice = f"{2 * tp / (truth + pred):.3f}" if truth + pred else "—"
            share = (lambda n: f"{n / fp:.0%}") if fp else (lambda n: "—")
            print(f"{folder.name[:10]:10} {grade:9} {len(views):5d} {recall:>7} {dice:>6} {fp:9d} {share(near):>9} "
                  f"{share(look):>10} {share(fp - near - look):>7}")
    for family in ("A", "B"):
        counts = {code: n for (f, code), n in lookalike_total.items() if f == family}
        total = sum(counts.values())
        if total:
            print(f"family {family}, false positives on look-alikes by type: " + ", ".join(
                f"{names[family].get(code, code)} {count} px ({count / total:.0%})"
                for code, count in sorted(counts.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
