"""How much a BAC readout moves when the same view comes in another benign form (session-21 probe).

A radiologist reads TAM across a patient's years: a readout that jumps when the same breast is stored
mirrored, with another display tone curve or as a JPEG makes the history noise. Each view of the folders
is read once (its 8-bit grey image as the reader makes it, its pixel spacing), then each transform below is
applied to that image and the view analysed again through ``medlim bac quantify``'s path
(:func:`medlim.mammography.analysis.analyse_mammogram`, the spacing stated as the file's):

* ``mirror``: left and right swapped (the other breast's orientation: every archive holds both);
* ``flip``: top and bottom swapped; ``rot180``: both (a view stored upside down);
* ``gamma 0.7`` / ``gamma 1.4``: a display tone curve ``255 · (I / 255) ** γ`` (another VOI LUT);
* ``jpeg 85``: the view saved as a JPEG of quality 85.

For each model and transform: over the views whose AM is above 0 as given, the median and the largest
relative change of AM and TAM_100, and how many views change by more than 25 %. The models are compared
in one run on the same views (the first named is the baseline of the ratios). An analysis, not a choice:
nothing is chosen on it.

Run: ``python benchmarks/eval_bac_stability.py --weights scunet-bac-dr:3 scunet-bac-dr:2 FOLDERS``
(each folder an ``image,mask`` manifest or a phantom folder; masks are not used).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["TRANSFORMS", "Change", "changes", "main"]


def _gamma(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    return lambda image: table[image]


def _jpeg(image: np.ndarray) -> np.ndarray:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


#: name → the transform of an 8-bit grey view.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mirror": lambda image: image[:, ::-1],
    "flip": lambda image: image[::-1, :],
    "rot180": lambda image: image[::-1, ::-1],
    "gamma 0.7": _gamma(0.7),
    "gamma 1.4": _gamma(1.4),
    "jpeg 85": _jpeg,
}


@dataclass(frozen=True)
class Change:
    """One model's readouts of one view as given and under one transform."""

    model: str
    transform: str
    am: tuple[int, int]
    tam_100: tuple[int, int]

    def relative(self, which: str) -> float:
        before, after = getattr(self, which)
        return (after - before) / before


def _record(image: np.ndarray):  # noqa: ANN202 - an ImageRecord
    from PIL import Image

    from medlim.core.io import read_image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return read_image(buffer.getvalue(), name="view.png")


def _readouts(record, model, spacing) -> tuple[int, int]:  # noqa: ANN001
    from medlim.mammography.analysis import analyse_mammogram

    analysis = analyse_mammogram(record, model, x=100.0, pixel_spacing_mm=spacing)  # TAM_100, whatever the weights' X
    return int(analysis.metrics.am), int(analysis.metrics.tam_x)


def changes(folders: Sequence[Path], weights: Sequence[str], *, limit: int | None = None,
            progress: Callable[[str], None] | None = None) -> list[Change]:
    """Every model's readouts of every view as given and under every transform."""
    from medlim.core.datasets import open_dataset
    from medlim.core.io import read_image
    from medlim.mammography.analysis import load_bac_model

    models = {name: load_bac_model(name) for name in weights}
    out: list[Change] = []
    for folder in folders:
        dataset = open_dataset(folder, task="bac")
        for item in dataset.items[:limit]:
            record = read_image(item.image)
            spacing = record.metadata.pixel_spacing_mm
            image = record.to_uint8()
            if image.ndim == 3:
                image = np.rint(image.mean(axis=2)).astype(np.uint8)
            given = _record(image)
            for name, model in models.items():
                before = _readouts(given, model, spacing)
                for transform, apply in TRANSFORMS.items():
                    after = _readouts(_record(apply(image)), model, spacing)
                    out.append(Change(name, transform, (before[0], after[0]), (before[1], after[1])))
            if progress:
                progress(f"{dataset.display_name(item.image)} done")
    return out


def _table(found: list[Change], weights: Sequence[str]) -> list[str]:
    lines = ["| model | transform | views | AM: median / largest |change| | TAM_100: median / largest |change| "
             "| views changed > 25 % (AM / TAM_100) |", "| --- | --- | --- | --- | --- | --- |"]
    for name in weights:
        for transform in TRANSFORMS:
            rows = [c for c in found if c.model == name and c.transform == transform and c.am[0] > 0
                    and c.tam_100[0] > 0]
            if not rows:
                continue
            am = np.abs([c.relative("am") for c in rows])
            tam = np.abs([c.relative("tam_100") for c in rows])
            lines.append(f"| {name} | {transform} | {len(rows)} | {np.median(am):.0%} / {am.max():.0%} | "
                         f"{np.median(tam):.0%} / {tam.max():.0%} | {int((am > 0.25).sum())} / {int((tam > 0.25).sum())} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--weights", nargs="+", default=["scunet-bac-dr:3", "scunet-bac-dr:2"])
    parser.add_argument("--limit", type=int, default=None, help="views per folder (default: all)")
    args = parser.parse_args(argv)
    found = changes(args.folders, args.weights, limit=args.limit,
                    progress=lambda line: print(line, file=sys.stderr, flush=True))
    print("\n".join(_table(found, args.weights)))
    baseline = args.weights[0]
    for name in args.weights[1:]:
        ratio = [np.median(np.abs([c.relative("tam_100") for c in found if c.model == m and c.am[0] > 0
                                   and c.tam_100[0] > 0])) for m in (name, baseline)]
        print(f"median |change| of TAM_100 over every transform: {name} / {baseline} = "
              f"{ratio[0] / max(ratio[1], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
