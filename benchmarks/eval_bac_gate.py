"""Choose a BAC model's gate (hysteresis floor and seed) on annotated validation views (issue 13, "BAC errors").

One inference per view (the path of ``medlim bac evaluate``:
:func:`~medlim.mammography.spacing.predict_at_model_spacing`, with the weights' own gate
switched off), then, for each plain cut-off and each (floor, seed) pair of a fixed grid,
:func:`~medlim.mammography.gating.gate_components` and:

* the mean whole-image Dice of the views with BAC (and per folder);
* the median false area (mm²) of the BAC-free views, and beside it the upper quartile and
  the mean (the rule reads the median only; the tail shows in the other two — README, "Gating");
* the area bias (Σ predicted − Σ true BAC area) / Σ true over the views with BAC.

The rule is the one every shipped BAC cut-off has followed: the highest Dice among the
settings whose median false area is at most 0.5 mm² (issue 13's target), the least false
area when none is. Use it on validation folders only: the views it chooses on become
validation data.

Run: ``python benchmarks/eval_bac_gate.py --weights scunet-bac-dr:2 VAL_B VAL_A`` (each
folder an ``image,mask`` manifest or a phantom folder ``medlim data check --task bac`` takes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medlim.mammography.gating import ComponentGate, gate_components, gate_grid  # noqa: E402
from medlim.mammography.selection import FALSE_AREA_SCALE_MM2  # noqa: E402

__all__ = ["GateRow", "gate_rows", "choose", "main"]

#: The plain cut-offs of the sweep of 2026-12-07 (the gates: :func:`~medlim.mammography.gating.gate_grid`).
PLAIN = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Issue 13's target for the median false area on BAC-free views (the trainer's, mm²).
FALSE_AREA_MM2 = FALSE_AREA_SCALE_MM2


@dataclass(frozen=True)
class View:
    """One validation view's probability map (ungated, on its grid), truth and pixel area; ``network``: the
    network's output when inference resampled the view (a gate is applied there, as the weights apply it)."""

    folder: str
    probability: np.ndarray
    truth: np.ndarray
    pixel_mm2: float
    network: Any = None

    def gated(self, gate: ComponentGate) -> np.ndarray:
        """The map read through ``gate`` as weights carrying it read it (:func:`~medlim.mammography.spacing.on_image_grid`)."""
        if self.network is None:
            return gate_components(self.probability, gate)
        from medlim.mammography.spacing import on_image_grid

        return on_image_grid(self.network, self.truth.shape, gate=gate, region_filter=None, spacing_mm=None)[0].probability


@dataclass(frozen=True)
class GateRow:
    """One setting's figures: ``gate`` is ``None`` for a plain cut-off ``cutoff``."""

    cutoff: float
    gate: ComponentGate | None
    dice: float
    dice_by_folder: dict[str, float]
    false_mm2_median: float | None
    area_bias: float | None
    false_mm2_upper_quartile: float | None = None
    false_mm2_mean: float | None = None

    def label(self) -> str:
        return f"t {self.cutoff:g}" if self.gate is None else f"floor {self.gate.floor:g}, seed {self.gate.seed:g}"


def _row(views: Sequence[View], cutoff: float, gate: ComponentGate | None) -> GateRow:
    dice: list[float] = []
    by_folder: dict[str, list[float]] = {}
    false: list[float] = []
    predicted_area = true_area = 0.0
    for view in views:
        p = view.probability if gate is None else view.gated(gate)
        mask = p > cutoff
        if view.truth.any():
            overlap = float(np.count_nonzero(mask & view.truth))
            d = 2.0 * overlap / (np.count_nonzero(mask) + np.count_nonzero(view.truth))
            dice.append(d)
            by_folder.setdefault(view.folder, []).append(d)
            predicted_area += np.count_nonzero(mask) * view.pixel_mm2
            true_area += np.count_nonzero(view.truth) * view.pixel_mm2
        else:
            false.append(np.count_nonzero(mask) * view.pixel_mm2)
    return GateRow(cutoff=cutoff, gate=gate, dice=float(np.mean(dice)) if dice else float("nan"),
                   dice_by_folder={k: float(np.mean(v)) for k, v in by_folder.items()},
                   false_mm2_median=float(np.median(false)) if false else None,
                   area_bias=predicted_area / true_area - 1.0 if true_area else None,
                   false_mm2_upper_quartile=float(np.percentile(false, 75)) if false else None,
                   false_mm2_mean=float(np.mean(false)) if false else None)


def gate_rows(views: Sequence[View]) -> list[GateRow]:
    """Every plain cut-off of :data:`PLAIN`, then every (floor, seed) of the grid at cut-off = floor."""
    rows = [_row(views, t, None) for t in PLAIN]
    rows += [_row(views, gate.floor, gate) for gate in gate_grid()]
    return rows


def choose(rows: Sequence[GateRow]) -> GateRow:
    """The highest Dice among rows within :data:`FALSE_AREA_MM2`; the least false area when none is."""
    within = [r for r in rows if r.false_mm2_median is None or r.false_mm2_median <= FALSE_AREA_MM2]
    if within:
        return max(within, key=lambda r: r.dice)
    return min(rows, key=lambda r: (r.false_mm2_median, -r.dice))


def read_views(weights: str, folders: Sequence[str]) -> list[View]:
    """One ungated inference per annotated view of each folder, as ``medlim bac evaluate --data`` runs it
    (:func:`~medlim.mammography.evaluate.predict_view`); a view without a spacing counts its area in px."""
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import check_evaluation_folder, predict_view, read_annotated_view

    model = dataclasses.replace(load_bac_model(weights), gate=None)
    views = []
    for folder in folders:
        dataset, _, _ = check_evaluation_folder(folder, skip_bad=False, progress=None)
        for index in range(len(dataset)):
            view = read_annotated_view(dataset, index)
            scaled, spacing = predict_view(model, view.image, view.pixel_spacing_mm)
            if spacing is None:
                print(f"{Path(folder).name}: a view states no pixel spacing; its false area counts pixels, not mm²",
                      file=sys.stderr)
            area = 1.0 if spacing is None else float(spacing[0] * spacing[1])
            network = None if scaled.network is scaled.prediction else scaled.network  # resampled: keep its own grid
            views.append(View(Path(folder).name, scaled.prediction.probability, view.mask, area, network))
            print(f"[{len(views)}] {Path(folder).name}", file=sys.stderr, flush=True)
    return views


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="annotated validation folders")
    parser.add_argument("--weights", required=True, help="BAC weights NAME[:VERSION] (their own gate is switched off)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    rows = gate_rows(read_views(args.weights, args.folders))
    chosen = choose(rows)
    if args.json:
        print(json.dumps({"rows": [{"setting": r.label(), "dice": r.dice, "dice_by_folder": r.dice_by_folder,
                                    "false_mm2_median": r.false_mm2_median,
                                    "false_mm2_upper_quartile": r.false_mm2_upper_quartile,
                                    "false_mm2_mean": r.false_mm2_mean, "area_bias": r.area_bias} for r in rows],
                          "chosen": chosen.label()}))
        return 0
    for r in rows:
        folders = " ".join(f"{k} {v:.3f}" for k, v in r.dice_by_folder.items())
        false = "n/a" if r.false_mm2_median is None else (
            f"{r.false_mm2_median:.2f} / {r.false_mm2_upper_quartile:.2f} / {r.false_mm2_mean:.2f}")
        bias = "n/a" if r.area_bias is None else f"{r.area_bias:+.0%}"
        print(f"{r.label():24s} Dice {r.dice:.3f} ({folders})  false (median / upper quartile / mean) {false} mm²  "
              f"bias {bias}")
    print(f"chosen (best Dice with median false area ≤ {FALSE_AREA_MM2:g} mm²): {chosen.label()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
