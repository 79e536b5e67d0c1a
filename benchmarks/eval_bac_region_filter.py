"""A site-trained BAC model with and without its region filter, on annotated views (issue 12; README, "A region
filter fitted on the site's own views").

One inference per view through the path of ``medlim bac evaluate``
(:func:`~medlim.mammography.evaluate.sweep_region_filter`, the weights' own gate and cut-off), then the thesis
protocol's summary twice: with the filter and without it. The filter is the weights' own (``params.region_filter``)
or, for weights whose trainer fitted one and did not keep it, the one recorded in
``metrics.region_filter_selection.filter`` — so the "what if" of a rejected filter is a command too.

Printed per setting: whole-image Dice and Jaccard over the views with BAC, pooled Dice, R² and relative bias of
TAM_100, the median false AM (mm²) of the BAC-free views and their summed false pixels. Run it on held-out
folders once; a folder looked at view by view is validation from then on.

Run: ``MEDLIM_MODELS_DIR=... python benchmarks/eval_bac_region_filter.py --weights NAME[:VERSION] FOLDER [...]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["figures", "main"]


def figures(views: Sequence[Any], *, threshold: float, x: float) -> dict[str, float | None]:
    """The summary the README's table reports, from per-view evaluations at one setting."""
    from medlim.mammography.evaluate import summarise

    summary = summarise(views, threshold=threshold, x=x)

    def num(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else round(float(value), 4)

    return {"dice": num(summary.whole_image["f1"]), "jaccard": num(summary.whole_image["jaccard"]),
            "dice_pooled": num(summary.whole_image_pooled["f1"]), "tam_100_r2": num(summary.agreement["tam_x"].r2),
            "tam_relative_bias": num(summary.tam_relative_bias),
            "false_am_mm2_median": num(summary.false_am_mm2_median),
            "false_px_bac_free": float(sum(v.predicted["am"] for v in views if not v.has_bac))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="annotated folders (image,mask manifests)")
    parser.add_argument("--weights", required=True, help="site-trained BAC weights NAME[:VERSION]")
    args = parser.parse_args(argv)

    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import check_evaluation_folder, read_annotated_view, sweep_region_filter
    from medlim.mammography.regions import region_filter_from_params

    model = load_bac_model(args.weights)
    region_filter, source = model.region_filter, "the weights' own (kept on validation)"
    if region_filter is None:
        record = dict(model.entry.metrics).get("region_filter_selection") or {}
        if "filter" not in record:
            print(f"{model.label} carries no region filter and records none fitted", file=sys.stderr)
            return 2
        region_filter = region_filter_from_params({"region_filter": record["filter"]})
        source = "fitted by the trainer and not kept (metrics.region_filter_selection.filter)"
    assert region_filter is not None

    def samples():
        for folder in args.folders:
            dataset, _, _ = check_evaluation_folder(folder, skip_bad=False, progress=None)
            for index in range(len(dataset)):
                yield read_annotated_view(dataset, index).sample()

    per = sweep_region_filter(model, samples(), region_filter=region_filter, cutoff=model.threshold,
                              gate=model.gate, progress=lambda done, _name: print(f"[{done}]", file=sys.stderr,
                                                                                  flush=True))
    out = {"weights": model.label, "filter": source, "cutoff": model.threshold,
           "gate": None if model.gate is None else model.gate.to_json(), "views": len(per[True]),
           "with_filter": figures(per[True], threshold=model.threshold, x=model.x),
           "without_filter": figures(per[False], threshold=model.threshold, x=model.x)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
