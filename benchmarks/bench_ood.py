"""Benchmark: images per second scored by TEND and CVAD against the AE baseline (issue 5, "Speed").

Scores the same batch of preset radiograph phantoms (at the detector's input
size, already in memory, so image reading is not timed) with each detector's
:meth:`medlim.curation.ood.scoring.Detector.parts` + score, and prints images/s
(median of the repeats) and the ratio to the AE baseline's rate. Detectors come
from the weights registry (default: the shipped ``ae-humerus``, ``tend-humerus``,
``cvad-humerus``); with ``--untrained`` the shipped architectures are built
with random weights, so the benchmark also runs before any training.
On a CUDA machine the same is measured on the GPU (after a warm-up, with
``torch.cuda.synchronize``) unless ``--cpu-only``.

Run: ``python benchmarks/bench_ood.py [--n 256] [--repeats 5] [--threads 1] [--id-class humerus]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _detectors(id_class: str, untrained: bool, device: str) -> dict[str, object]:
    from medlim.core.weights import Registry
    from medlim.curation.ood.nets import build_cvad, build_ood_autoencoder, build_tend
    from medlim.curation.ood.scoring import Detector, detector_from_entry

    if untrained:
        common = {"input_size": 64, "id_classes": [id_class]}
        return {
            "ae": Detector("ae", build_ood_autoencoder(width=8).to(device), common, threshold=0.0),
            "tend": Detector("tend", build_tend(width=8).to(device), {**common, "weight": 0.5, "margin": 150.0},
                             threshold=0.0),
            "cvad": Detector("cvad", build_cvad(width=8, latent=256).to(device),
                             {**common, "rec_min": 0.0, "rec_max": 0.1}, threshold=0.0),
        }
    registry = Registry.load()
    return {kind: detector_from_entry(registry.get(f"{kind}-{id_class}"), device=device) for kind in ("ae", "tend", "cvad")}


def _rate(detector: object, images: np.ndarray, repeats: int, device: str) -> float:
    import torch

    detector.score(images[:8])  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        detector.score(images)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--id-class", default="humerus")
    parser.add_argument("--untrained", action="store_true", help="random weights (no registry needed)")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()

    import torch

    from medlim.curation.ood.data import phantom_set
    from medlim.phantoms.radiograph import BODY_PARTS

    torch.set_num_threads(args.threads)
    per_class = -(-args.n // len(BODY_PARTS))
    images = phantom_set(seed=4242, per_class=per_class, body_parts=BODY_PARTS, size=64).images[: args.n]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    print(f"{len(images)} images of 64×64, {args.repeats} repeats, torch {torch.__version__}, "
          f"{args.threads} CPU thread(s)")
    for device in devices:
        detectors = _detectors(args.id_class, args.untrained, device)
        rates = {kind: _rate(d, images, args.repeats, device) for kind, d in detectors.items()}
        name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
        for kind, rate in rates.items():
            print(f"{device:4s} ({name}) {kind:4s}: {rate:9.1f} images/s   {rate / rates['ae']:.2f}× the AE baseline")


if __name__ == "__main__":
    main()
