"""Choose a shipped BAC network's cut-off and gate by the rule ``medlim train scunet`` applies to a site's model.

One ungated inference per annotated view (the path of ``medlim bac evaluate``:
:func:`~medlim.mammography.evaluate.sweep_cutoffs_and_gates`), every plain cut-off of the trainer's grid
(:data:`~medlim.mammography.selection.WHOLE_VIEW_CUTOFFS`) and every gate of
:func:`~medlim.mammography.gating.gate_grid` scored on the whole views, then
:func:`~medlim.mammography.selection.choose_setting`: the best plain cut-off (median false area on the
BAC-free views at most 0.5 mm², then the best Dice on the views with BAC), and a gate in its place only when
it scores higher *and* its mean false cost f / (f + 0.5 mm²) over the BAC-free views is no higher — the
mean sees the few views where a gate widens a confident false region, which the median does not (README,
"Gating"). Use it on validation folders only: the views it chooses on become validation data.

Printed per setting: Dice on the views with BAC (and per folder), the false area on the BAC-free views
(median / upper quartile / mean, mm²), the mean false cost and the TAM_100 bias; then the choice.

Run: ``python benchmarks/choose_bac_setting.py --weights scunet-bac-dr:2 FOLDER [FOLDER …] [--json]`` (each
folder an ``image,mask`` manifest or a phantom folder ``medlim data check --task bac`` takes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["main", "setting_rows"]


def _samples(folders: Sequence[str], names: list[str]) -> Iterator[tuple[Any, ...]]:
    """``(name, image, mask, spacing)`` of every annotated view of the folders; ``names`` gets each view's folder."""
    from medlim.mammography.evaluate import check_evaluation_folder, read_annotated_view

    for folder in folders:
        dataset, _, _ = check_evaluation_folder(folder, skip_bad=False, progress=None)
        for index in range(len(dataset)):
            view = read_annotated_view(dataset, index)
            names.append(Path(folder).name)
            yield f"{Path(folder).name}#{index}", view.image, view.mask, view.pixel_spacing_mm


def setting_rows(per_cutoff: dict, per_gate: dict, folders: Sequence[str]) -> list[dict[str, Any]]:
    """One row per setting: its score's figures, the false-area tail and Dice per folder."""
    from medlim.mammography.selection import whole_view_score

    rows = []
    scored: list[tuple[Any, float, Any]] = [(None, cutoff, views) for cutoff, views in per_cutoff.items()]
    scored += [(gate, gate.floor, views) for gate, views in per_gate.items()]
    for gate, cutoff, views in scored:
        free = [v.predicted["am"] * (v.pixel_area_mm2 or 0.0) for v in views if not v.has_bac]
        by_folder: dict[str, list[float]] = {}
        for folder, view in zip(folders, views):
            if view.has_bac:
                by_folder.setdefault(folder, []).append(float(view.whole["f1"]))
        score = whole_view_score(views, cutoff=cutoff, gate=gate)
        rows.append({**score.to_json(), "setting": f"t {cutoff:g}" if gate is None else
                     f"floor {gate.floor:g}, seed {gate.seed:g}",
                     "false_mm2_upper_quartile": float(np.percentile(free, 75)) if free else None,
                     "false_mm2_mean": float(np.mean(free)) if free else None,
                     "dice_by_folder": {k: round(float(np.mean(v)), 4) for k, v in by_folder.items()}})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import sweep_cutoffs_and_gates
    from medlim.mammography.gating import gate_grid
    from medlim.mammography.selection import WHOLE_VIEW_CUTOFFS, choose_setting

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="annotated validation folders")
    parser.add_argument("--weights", required=True, help="BAC weights NAME[:VERSION] (their own gate and filter set aside)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    bac_model = dataclasses.replace(load_bac_model(args.weights), gate=None, region_filter=None)
    folders: list[str] = []
    per_cutoff, per_gate = sweep_cutoffs_and_gates(
        bac_model, _samples(args.folders, folders), cutoffs=WHOLE_VIEW_CUTOFFS, gates=gate_grid(),
        progress=lambda done, name: print(f"[{done}] {name}", file=sys.stderr, flush=True))
    choice = choose_setting(per_cutoff, per_gate)
    rows = setting_rows(per_cutoff, per_gate, folders)
    decision = {"plain": choice.plain.to_json(), "kept_gate": None if choice.kept is None else choice.kept.to_json(),
                "chosen": choice.chosen.to_json()}
    if args.json:
        print(json.dumps({"rows": rows, "decision": decision, "views": len(folders)}))
        return 0
    for r in rows:
        folder_dice = " ".join(f"{k} {v:.3f}" for k, v in r["dice_by_folder"].items())
        tail = "n/a" if r["false_mm2_mean"] is None else (
            f"{r['whole_view_false_mm2_median']:.2f} / {r['false_mm2_upper_quartile']:.2f} / {r['false_mm2_mean']:.2f}")
        print(f"{r['setting']:24s} Dice {r['whole_view_dice_bac']:.3f} ({folder_dice})  false (median / upper quartile / "
              f"mean) {tail} mm²  mean cost {r['whole_view_false_penalty']:.4f}  bias {r['whole_view_tam_relative_bias']:+.0%}")
    chosen = choice.chosen
    what = f"t {chosen.cutoff:g}" if chosen.gate is None else f"floor {chosen.gate.floor:g}, seed {chosen.gate.seed:g}"
    print(f"best plain cut-off: t {choice.plain.cutoff:g}; chosen: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
