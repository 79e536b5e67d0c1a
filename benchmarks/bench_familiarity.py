"""Benchmark: what the training-data check (issue 13) adds to the quantification of one full-size mammogram.

One 4096×3328 phantom (``medlim.phantoms.mammogram``, seed 90001, the held-out
series) is analysed on the CPU with the shipped default BAC weights
(``analyse_mammogram``: preprocessing, inference, merging, quantification), with
the check stored beside the weights and with the same weights stripped of it, in
alternation, in one run. Prints the median seconds of each, their ratio (target
≤ 1.15 together with resampling, which is measured elsewhere), and the check's
own cost (features of the preprocessed image and the score) in milliseconds.

Run: ``.venv/bin/python benchmarks/bench_familiarity.py [--repeats N] [--device cpu]``
(a few minutes on 2 CPU cores: each analysis is a full-size SCU-Net pass).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.mammography.analysis import analyse_mammogram, load_bac_model
from medlim.mammography.familiarity import check_preprocessed
from medlim.mammography.preprocess import preprocess_image
from medlim.phantoms.mammogram import generate_mammogram

__all__ = ["main"]


def _record() -> ImageRecord:
    phantom = generate_mammogram(seed=90_001, index=2, size="full")
    grey = np.clip(np.rint(phantom.image * 255.0), 0, 255).astype(np.float32) / 255.0
    meta = ImageMetadata(source_format="png", modality="MG", view="MLO", laterality="L")
    return ImageRecord(pixels=grey, raw=grey, metadata=meta, name="phantom-full.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="analyses with and without the check (each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=None, help="NAME@VERSION (default: the task's default model)")
    args = parser.parse_args(argv)

    with_check = load_bac_model(args.weights, device=args.device)
    if with_check.familiarity is None:
        raise SystemExit(f"{with_check.label} carries no training-data check; nothing to measure")
    without = dataclasses.replace(with_check, familiarity=None)
    record = _record()
    analyse_mammogram(record, without)  # warm-up (first inference loads kernels)
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.repeats):
        for label, model in (("without", without), ("with", with_check)):
            started = time.perf_counter()
            analysis = analyse_mammogram(record, model)
            timings[label].append(time.perf_counter() - started)
    preprocessed = preprocess_image(record.to_uint8(), with_check.preset)
    check_ms = []
    for _ in range(20):
        started = time.perf_counter()
        check_preprocessed(with_check.familiarity, preprocessed)
        check_ms.append(1000.0 * (time.perf_counter() - started))
    base, checked = statistics.median(timings["without"]), statistics.median(timings["with"])
    print(f"{with_check.label} on {record.pixels.shape[0]}×{record.pixels.shape[1]} ({args.device}), "
          f"{args.repeats} analyses each")
    print(f"analysis without the check: {base:.2f} s (median; {', '.join(f'{t:.2f}' for t in timings['without'])})")
    print(f"analysis with the check:    {checked:.2f} s (median; {', '.join(f'{t:.2f}' for t in timings['with'])})")
    print(f"ratio with / without: {checked / base:.3f} (target ≤ 1.15 with resampling)")
    print(f"the check alone: {statistics.median(check_ms):.1f} ms median over 20 "
          f"({statistics.median(check_ms) / 1000.0 / base:.2%} of the analysis); "
          f"last score {analysis.unlike_training.score:.2f} (limit {analysis.unlike_training.threshold:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
