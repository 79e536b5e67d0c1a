"""Benchmark: MedShift scoring throughput and OTDD time (thesis ch. 5; issue 6 "Speed").

1. Scoring: external images streamed in batches through per-class detectors
   (CVAD at the default run-time sizes: 64 px, width 4, latent 32;
   untrained weights, same arithmetic) and the classifier G (ResNet-18, 32 px), as
   :func:`medlim.curation.shift.pipeline.score_external` does. Pixels come from
   a synthetic in-memory set (no decoding), so the figure is the models' rate.
   Reports images/s on the CPU and on CUDA when available, and the growth of
   the process's resident memory while streaming (bounded: one batch plus
   a score and C probabilities per image).
   The scoring figure is CVAD + G alone (``stats=False``); the acquisition
   statistics that ``medlim shift run`` fuses by default (issue 13) are timed
   on their own (``--stats-images``): 256 px images through
   :func:`medlim.curation.image_statistics.acquisition_feature_matrix`.
2. OTDD: 5,000 vs 5,000 samples of 512-d features with 7 classes:
   :func:`medlim.curation.shift.otdd.otdd` (exact inner W2 between class
   clouds + joint cost + exact outer OT) against the baseline, a plain exact
   ``ot.emd`` on the same joint cost matrix (cost built beforehand, not timed).

Run: ``python benchmarks/bench_shift.py [--images 20000] [--otdd-n 5000] [--threads=2] [--json]``.

Measured 2026-11-27 on the shared 2-core CPU (load average ≈ 11, so absolute
times are pessimistic), ``--images 5000 --otdd-n 5000 --threads=2``: scoring
30.1 images/s (7 CVAD detectors at 64 px + ResNet-18 G at 32 px), resident
memory +9.9 MB (mostly the 5,000 × 512 OTDD pool). OTDD 38.4 s (13.2 s of it
the 49 exact inner W2 problems) vs 18.1 s for the plain ``ot.emd`` on the
same 5,000 × 5,000 joint cost: ratio 2.12; both give 46.91. No CUDA device here.
Measured 2026-12-05 (load average ≈ 10), ``--images 200 --skip-otdd --stats-images 300
--threads=1``: scoring 33.5 images/s; acquisition statistics 14.9 images/s (67 ms per
256 px image; about 25 ms on the phantoms at a load average under 4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# BLAS threads as torch's (--threads, default 2), set before numpy loads: an unlimited
# OpenBLAS pool on a shared CPU made the small OTDD products ~30× slower here
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), "2"))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLASSES = ("hand", "finger", "wrist", "forearm", "elbow", "humerus", "shoulder")


class _SyntheticSet:
    """Duck-typed :class:`~medlim.curation.shift.data.ImageSet`: random pixels, made per batch."""

    def __init__(self, n: int, size: int) -> None:
        self.name = "synthetic"
        self.size = size
        self.classes = tuple(CLASSES[i % len(CLASSES)] for i in range(n))
        self.files = tuple(f"{c}/{i}" for i, c in enumerate(self.classes))
        self.class_names = tuple(sorted(CLASSES))
        self.shifted = None
        self.source = ""

    def __len__(self) -> int:
        return len(self.files)

    def read(self, positions, size: int) -> np.ndarray:
        rng = np.random.default_rng(int(positions[0]) if len(positions) else 0)
        return rng.random((len(positions), size, size), dtype=np.float32)


def _models(device: str, size: int):
    import torch

    from medlim.curation.ood.nets import CvadNet
    from medlim.curation.ood.scoring import Detector
    from medlim.curation.shift.classifier import build_classifier
    from medlim.curation.shift.detectors import ClassDetectors, DetectorConfig
    from medlim.curation.shift.pipeline import InternalModels, ShiftConfig

    torch.manual_seed(0)
    config = ShiftConfig(detector=DetectorConfig(input_size=size), stats=False)
    detectors = {}
    for name in CLASSES:
        net = CvadNet(channels=1, width=4, input_size=size, latent=32).to(device)
        detectors[name] = Detector("cvad", net, {"input_size": size, "rec_min": 0.0, "rec_max": 0.1}, threshold=1.0)
    classifier = build_classifier(len(CLASSES)).to(device).eval()
    models = InternalModels(detectors=ClassDetectors("cvad", detectors, {}, config.detector), classifier=classifier,
                            class_names=tuple(sorted(CLASSES)), features=np.zeros((1, 512), np.float32),
                            labels=np.zeros(1, np.int64), heldout_accuracy=float("nan"), n_images=0)
    return models, config


def bench_scoring(n: int, device: str, size: int = 64) -> dict:
    import psutil

    from medlim.curation.shift.pipeline import score_external

    models, config = _models(device, size)
    score_external(models, _SyntheticSet(512, size), config)  # warm-up
    process = psutil.Process()
    before = process.memory_info().rss
    start = time.perf_counter()
    scored = score_external(models, _SyntheticSet(n, size), config)
    seconds = time.perf_counter() - start
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    grown = process.memory_info().rss - before
    return {"device": device, "images": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1),
            "rss_growth_mb": round(grown / 2**20, 1), "pool_features": int(len(scored.pool))}


def bench_statistics(n: int, size: int = 256) -> dict:
    """Acquisition statistics of ``n`` synthetic images at ``size`` px (images/s, ms per image)."""
    from medlim.curation.image_statistics import acquisition_feature_matrix

    images = _SyntheticSet(n, size).read(list(range(n)), size)
    acquisition_feature_matrix(images[:8])  # warm-up
    start = time.perf_counter()
    acquisition_feature_matrix(images)
    seconds = time.perf_counter() - start
    return {"images": n, "size": size, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1),
            "ms_per_image": round(1000 * seconds / n, 2)}


def bench_otdd(n: int, dim: int = 512, classes: int = 7, seed: int = 0) -> dict:
    import ot

    from medlim.curation.shift.otdd import joint_cost, label_distances, otdd

    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (classes, dim))
    ya, yb = rng.integers(0, classes, n), rng.integers(0, classes, n)
    xa = centres[ya] + rng.normal(size=(n, dim))
    xb = centres[yb] + rng.normal(size=(n, dim)) + 0.5
    start = time.perf_counter()
    label_distances(xa, ya, xb, yb)
    label_seconds = time.perf_counter() - start
    start = time.perf_counter()
    value = otdd(xa, ya, xb, yb)
    otdd_seconds = time.perf_counter() - start
    cost = joint_cost(xa, ya, xb, yb)
    weights = np.full(n, 1.0 / n)
    start = time.perf_counter()
    plan = ot.emd(weights, weights, cost, numItermax=10_000_000)
    emd_seconds = time.perf_counter() - start
    baseline_value = float((plan * cost).sum())
    return {"n": n, "dim": dim, "classes": classes, "otdd": round(value, 4), "baseline_value": round(baseline_value, 4),
            "otdd_seconds": round(otdd_seconds, 2), "label_distance_seconds": round(label_seconds, 2),
            "plain_emd_seconds": round(emd_seconds, 2), "ratio_otdd_to_plain_emd": round(otdd_seconds / emd_seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="images streamed for the throughput")
    parser.add_argument("--otdd-n", type=int, default=5000, help="samples per side for OTDD")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (BLAS: give as --threads=N)")
    parser.add_argument("--stats-images", type=int, default=1000, help="images for the acquisition statistics (0: skip)")
    parser.add_argument("--skip-otdd", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "scoring": [bench_scoring(args.images, "cpu")]}
    if torch.cuda.is_available():
        result["scoring"].append(bench_scoring(args.images, "cuda"))
    if args.stats_images:
        result["statistics"] = bench_statistics(args.stats_images)
    if not args.skip_otdd:
        result["otdd"] = bench_otdd(args.otdd_n)
    if args.json:
        print(json.dumps(result))
    else:
        for row in result["scoring"]:
            print(f"scoring on {row['device']}: {row['images_per_s']} images/s "
                  f"({row['images']} in {row['seconds']} s, RSS +{row['rss_growth_mb']} MB)")
        if "statistics" in result:
            st = result["statistics"]
            print(f"acquisition statistics at {st['size']} px: {st['images_per_s']} images/s "
                  f"({st['ms_per_image']} ms per image)")
        if "otdd" in result:
            o = result["otdd"]
            print(f"OTDD {o['n']} vs {o['n']} × {o['dim']}-d: {o['otdd_seconds']} s "
                  f"(label W2 {o['label_distance_seconds']} s); plain ot.emd on the same cost {o['plain_emd_seconds']} s; "
                  f"ratio {o['ratio_otdd_to_plain_emd']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
