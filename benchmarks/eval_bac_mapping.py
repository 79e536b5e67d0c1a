"""How a resampled view's map is brought back to its own, coarser grid: by each pixel's median (since 2026-12-08)
or by its mean (before), from one inference per view (issue 13; README, "Pixel spacing").

For each view, inference runs as ``medlim bac evaluate`` runs it
(:func:`~medlim.mammography.evaluate.predict_view`); the network's map, read through the weights' gate on its
own grid, is then brought back twice: by :func:`medlim.core.spacing.area_median` (what the weights do now,
:func:`~medlim.mammography.spacing.on_image_grid`) and by area-averaging (:func:`medlim.core.spacing.resample_to_shape`,
what they did before), the weights' region filter applied after either. A view that inference does not
resample, or that is finer than the weights' grid, reads the same both ways. Printed per mapping, over all
views and per source: whole-image Dice and Jaccard over the views with BAC, pooled Dice, R² and relative bias
of TAM_100, the median false AM of BAC-free views (:func:`eval_bac_region_filter.figures`).

Run: ``python benchmarks/eval_bac_mapping.py --weights scunet-bac-dr:3 --seed 90010 --seed 90011`` (family A
phantoms, ``--sizes small --n 8`` by default: 4×4-binned views at 0.28 mm) or with annotated folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["main", "two_mappings"]


def two_mappings(bac_model: Any, image: Any, scaled: Any) -> dict[str, Any]:
    """``{"median": prediction, "mean": prediction}`` on the view's grid from one inference ``scaled``."""
    from medlim.core.spacing import resample_to_shape
    from medlim.mammography.gating import gate_components
    from medlim.mammography.regions import apply_region_filter

    shape = (int(image.shape[0]), int(image.shape[1]))
    now = scaled.prediction
    network = scaled.network
    if network is None or network.probability.shape == shape:
        return {"median": now, "mean": now}
    gated = network.probability if bac_model.gate is None else gate_components(network.probability, bac_model.gate)
    coarser = shape[0] <= gated.shape[0] and shape[1] <= gated.shape[1]
    if not coarser:  # a finer grid: interpolated either way
        return {"median": now, "mean": now}
    mean = resample_to_shape(gated, shape)
    if bac_model.region_filter is not None:
        mean, _ = apply_region_filter(mean, now.preprocessed.grey, bac_model.region_filter,
                                      scaled.decision.pixel_spacing_mm)
    return {"median": now, "mean": replace(now, probability=mean)}


def _samples(args: argparse.Namespace) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``(source, sample)`` for every view: the phantom seeds', then the folders'."""
    from medlim.mammography.evaluate import check_evaluation_folder, read_annotated_view
    from medlim.mammography.recipe import PhantomSpec, phantom_samples

    for seed in args.seed:
        for sample in phantom_samples(PhantomSpec(seed=seed, count=args.n, sizes=tuple(args.sizes)), workers=1):
            yield f"seed {seed}", sample
    for folder in args.folders:
        dataset, _, _ = check_evaluation_folder(folder, skip_bad=False, progress=None)
        for index in range(len(dataset)):
            yield Path(folder).name, read_annotated_view(dataset, index).sample()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="annotated folders (image,mask manifests)")
    parser.add_argument("--weights", required=True, help="BAC weights NAME[:VERSION]")
    parser.add_argument("--seed", type=int, action="append", default=[], help="family A phantom seed (repeatable)")
    parser.add_argument("--n", type=int, default=8, help="phantom views per seed (default 8)")
    parser.add_argument("--sizes", nargs="+", default=["small"], help="phantom sizes (default: small, 0.28 mm)")
    args = parser.parse_args(argv)
    if not args.seed and not args.folders:
        parser.error("give --seed or annotated folders")

    from eval_bac_region_filter import figures

    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import evaluate_image, predict_view
    from medlim.mammography.preprocess import get_preset

    model = load_bac_model(args.weights)
    patch = get_preset(model.preset).patch_size
    per: dict[str, dict[str, list[Any]]] = {"median": {}, "mean": {}}
    for done, (source, (name, image, truth, *rest)) in enumerate(_samples(args), start=1):
        scaled, spacing = predict_view(model, image, rest[0] if rest else None)
        for key, prediction in two_mappings(model, image, scaled).items():
            per[key].setdefault(source, []).append(evaluate_image(
                name, prediction, truth, threshold=model.threshold, x=model.x, patch_size=patch, stride=448,
                pixel_spacing_mm=spacing))
        print(f"[{done}] {source} {name}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"weights": model.label, "cutoff": model.threshold}
    for key, by_source in per.items():
        every = [view for views in by_source.values() for view in views]
        out[key] = {"all": figures(every, threshold=model.threshold, x=model.x),
                    **{source: figures(views, threshold=model.threshold, x=model.x) for source, views in by_source.items()}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
