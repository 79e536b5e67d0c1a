"""The acquisition statistics alone: does a site's other acquisition stand out? (issues 12–13, validation)

A robust Gaussian reference (:func:`medlim.curation.image_statistics.fit_acquisition_reference`) is fitted
on the statistics of a training folder's images; its distances then rank two test folders — unseen images
of the training site (ID) against another site's images of the same class (OOD) — by AUROC, once with the
first version's 17 statistics (:data:`~medlim.curation.image_statistics.FIRST_FEATURES`) and once with all
of today's (:data:`~medlim.curation.image_statistics.ACQUISITION_FEATURES`), and each statistic on its own
(the larger of AUROC and 1 − AUROC: which way it moves does not matter to the distance).

On 2026-12-06 (validation folders only; training folders of 230 internal humerus radiographs): family B
(``medlim phantom radiograph-b``, training seed 42001, test seeds 42002 internal / 42003 external, severity
0.5) 0.778 with the first 17 → 1.000 with all 25; family A (``medlim phantom radiograph --variability 1``,
seeds 41001 / 41002 / 41003) 0.970 → 0.974. Family B's images are clipped — air black, bone white — so
the first version's noise figures read 0 on every image there.

Run: ``.venv/bin/python benchmarks/eval_acquisition_statistics.py TRAIN ID_TEST OOD_TEST [--json]``
(folders any layout ``medlim data check`` reads; seconds for a few hundred 256 px images).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medlim.curation.image_statistics import ACQUISITION_FEATURES, FIRST_FEATURES, fit_acquisition_reference
from medlim.curation.ood.acquisition import statistics_features
from medlim.curation.ood.calibration import ood_metrics
from medlim.curation.ood.data import read_folder

__all__ = ["main", "compare"]


def _features(folder: Path) -> np.ndarray:
    return statistics_features(read_folder(folder, size=256).images)


def compare(train: np.ndarray, id_test: np.ndarray, ood_test: np.ndarray) -> dict[str, object]:
    """AUROCs of the reference's distance with the first and with all statistics, and of each statistic."""
    labels = np.r_[np.zeros(len(id_test), int), np.ones(len(ood_test), int)]
    test = np.r_[id_test, ood_test]
    first = list(range(len(FIRST_FEATURES)))
    result: dict[str, object] = {
        "first_17": ood_metrics(labels, fit_acquisition_reference(train[:, first]).score(test[:, first])).auroc,
        f"all_{len(ACQUISITION_FEATURES)}": ood_metrics(labels, fit_acquisition_reference(train).score(test)).auroc,
    }
    single = {}
    for column, name in enumerate(ACQUISITION_FEATURES):
        auroc = ood_metrics(labels, test[:, column]).auroc
        single[name] = max(auroc, 1.0 - auroc)
    result["each"] = single
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="the training site's images (the reference)")
    parser.add_argument("id_test", type=Path, help="unseen images of the training site")
    parser.add_argument("ood_test", type=Path, help="another site's images")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    result = compare(_features(args.train), _features(args.id_test), _features(args.ood_test))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"statistics alone, AUROC: first 17 {result['first_17']:.3f}, "
          f"all {len(ACQUISITION_FEATURES)} {result[f'all_{len(ACQUISITION_FEATURES)}']:.3f}")
    for name, auroc in result["each"].items():  # type: ignore[union-attr]
        print(f"  {name:34s} {auroc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
