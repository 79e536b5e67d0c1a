"""Benchmark: seconds per 1024×1376 fluorescence image on CPU (thesis §3.1 size).

Issue 4 ("Speed"): the thesis clumped-nuclei method (``segment_nuclei``) and the
marker-controlled watershed baseline (``watershed_nuclei``) are timed on the
same seeded phantoms (``generate_fluorescence``, generated once, not timed);
the script prints the median seconds per image of each and their ratio
(method / watershed).

Run: ``python benchmarks/bench_nuclei.py [--images 3] [--repeats 3] [--seed 7] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_seconds(fn, images, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            fn(image)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_nuclei
    from medlim.phantoms.fluorescence import generate_fluorescence

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    images = [generate_fluorescence(args.seed, index=i).image for i in range(args.images)]
    segment_nuclei(images[0])  # warm-up: imports, caches
    method = _median_seconds(segment_nuclei, images, args.repeats)
    baseline = _median_seconds(watershed_nuclei, images, args.repeats)
    result = {
        "image_size": list(images[0].shape[:2]),
        "images": args.images,
        "repeats": args.repeats,
        "thesis_seconds_per_image": round(method, 3),
        "watershed_seconds_per_image": round(baseline, 3),
        "ratio_thesis_to_watershed": round(method / baseline, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['image_size'][0]}×{result['image_size'][1]} on CPU: thesis method {method:.2f} s/image, "
            f"watershed {baseline:.2f} s/image, ratio {method / baseline:.2f}×"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
