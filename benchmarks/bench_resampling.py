"""Benchmark: what pixel-spacing resampling and the training-data check add to a full-size mammogram (issue 13).

Named baseline: :func:`medlim.mammography.analysis.analyse_mammogram` on a
4096×3328 phantom at 0.07 mm (the weights' spacing) with the weights' spacing
removed from their input contract and no training-data check — the path
without either addition. Against it, in the same run and on the same CPU:

* ``resampled``: the same content binned 2×2 (2048×1664, stated 0.14 mm in the
  record), resampled ×2 to the weights' 0.07 mm for inference (the same
  4096×3328 grid the baseline predicts), the maps brought back (the probability by
  its upper median, ``medlim.core.spacing.area_median``, since 2026-12-08; the grey
  image area-averaged), readouts
  on the 2048×1664 grid, training-data check on — ratio target ≤ 1.15;
* ``same spacing``: the 0.07 mm image with the spacing decision and the check on
  (no resampling needed);

each the median of ``--repeats`` runs after one warm-up run, interleaved so that load on the shared
cores hits all paths alike; plus the parts alone (resampling in, mapping back,
the check).

Run: ``.venv/bin/python benchmarks/bench_resampling.py`` (a few minutes on 2 CPU
cores; the shipped default ``scunet-bac`` weights).

Measured 2026-12-05 (2 shared CPU cores at a load average of 13–15, torch 2
threads, scunet-bac v2, phantom seed 90001 index 0, ``--repeats 3``): baseline
34.7 s; resampled 37.2 s, ratio 1.07; same spacing 25.3 s, ratio 0.73 (single
runs swung by ±30 % with the load); the parts alone: resampling in 0.01 s,
mapping back 0.04 s, the check 0.04 s (0.3 % of the baseline).

Measured again 2026-12-08 after the map came back by its median (idle 2-core CPU, torch 2 threads, the
default scunet-bac-dr v3, ``--repeats 3``): baseline 10.7 s; resampled 9.7 s, ratio 0.91; same spacing
9.9 s, ratio 0.93; parts alone: resampling in 0.00 s, mapping back 0.31 s, the check 0.03 s (3.2 %).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.mammography.analysis import BacModel, analyse_mammogram, load_bac_model

__all__ = ["main"]


def _record(image: np.ndarray, spacing: float, name: str) -> ImageRecord:
    meta = ImageMetadata(source_format="dicom", modality="MG", view="MLO", laterality="R", bits_stored=8,
                         pixel_spacing_mm=(spacing, spacing), pixel_spacing_source="PixelSpacing")
    pixels = image.astype(np.float32) / 255.0
    return ImageRecord(pixels=pixels, raw=image.astype(np.float32), metadata=meta, name=name)


def _without_additions(bac_model: BacModel) -> BacModel:
    """The weights with no recorded spacing and no training-data check (the baseline path)."""
    contract = dataclasses.replace(bac_model.entry.input_contract, pixel_spacing_mm=None, spacing_range_mm=None)
    entry = dataclasses.replace(bac_model.entry, input_contract=contract)
    return dataclasses.replace(bac_model, entry=entry, familiarity=None)


def _timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def _parts(bac_model: BacModel, fine: np.ndarray, coarse: np.ndarray, analysis) -> dict[str, float]:
    """Seconds of each addition alone: resampling in, mapping back, the training-data check."""
    from medlim.core.spacing import resample_to_shape
    from medlim.mammography.familiarity import assess_mammogram
    from medlim.mammography.spacing import to_original_grid

    parts = {"resample_in": _timed(lambda: resample_to_shape(coarse, fine.shape))[0]}
    prediction = dataclasses.replace(analysis.prediction, probability=np.zeros(fine.shape, np.float32),
                                     preprocessed=dataclasses.replace(
                                         analysis.prediction.preprocessed,
                                         grey=resample_to_shape(analysis.prediction.preprocessed.grey, fine.shape),
                                         breast_mask=resample_to_shape(analysis.prediction.preprocessed.breast_mask,
                                                                       fine.shape)))
    parts["map_back"] = _timed(lambda: to_original_grid(prediction, coarse.shape))[0]
    if bac_model.familiarity is not None:
        parts["check"] = _timed(lambda: assess_mammogram(bac_model.familiarity, prediction.preprocessed))[0]
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="BAC weights (default: the task's default)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=90001)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import cv2

    from medlim.phantoms.mammogram import generate_mammogram

    bac_model = load_bac_model(args.weights, device="cpu")
    baseline_model = _without_additions(bac_model)
    phantom = generate_mammogram(seed=args.seed, index=0, size="full")
    fine = np.rint(np.clip(phantom.image, 0, 1) * 255).astype(np.uint8)
    coarse = cv2.resize(fine, (fine.shape[1] // 2, fine.shape[0] // 2), interpolation=cv2.INTER_AREA)
    runs = {
        "baseline (0.07 mm, no resampling, no check)": lambda: analyse_mammogram(
            _record(fine, 0.07, "fine"), baseline_model),
        "resampled (0.14 mm -> 0.07 mm, check on)": lambda: analyse_mammogram(_record(coarse, 0.14, "coarse"),
                                                                              bac_model),
        "same spacing (0.07 mm, check on)": lambda: analyse_mammogram(_record(fine, 0.07, "fine"), bac_model),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    results = {}
    runs["baseline (0.07 mm, no resampling, no check)"]()  # warm-up: first-call costs are no one's
    for repeat in range(args.repeats):
        for name, run in runs.items():
            elapsed, results[name] = _timed(run)
            seconds[name].append(elapsed)
            print(f"[{repeat + 1}/{args.repeats}] {name}: {elapsed:.1f} s", flush=True)
    base = statistics.median(seconds[next(iter(runs))])
    print(f"{bac_model.label}, CPU {args.threads} threads, image {fine.shape[0]}×{fine.shape[1]} "
          f"(binned {coarse.shape[0]}×{coarse.shape[1]}), median of {args.repeats}")
    for name in runs:
        median = statistics.median(seconds[name])
        print(f"  {name:48} {median:7.1f} s   ratio {median / base:.3f}")
    resampled = results["resampled (0.14 mm -> 0.07 mm, check on)"]
    parts = _parts(bac_model, fine, coarse, resampled)
    print("  parts alone: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
          + f" = {sum(parts.values()) / base:.3f} of the baseline")
    fine_am = results["same spacing (0.07 mm, check on)"].metrics.am_mm2
    print(f"  AM: {fine_am:.2f} mm² at 0.07 mm, {resampled.metrics.am_mm2:.2f} mm² from the 0.14 mm image "
          f"(t={resampled.metrics.threshold:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
