"""Benchmark: MedShift streams an external set of 100,000 image files with bounded memory (thesis ch. 5; issue 6).

What runs, end to end through the code a curator uses:

1. Internal models: :func:`medlim.curation.shift.pipeline.fit_internal` on a
   small radiograph phantom set (7 classes × ``--internal-per-class``) trains
   one CVAD per class (64 px, width 4, latent 32 — the run-time sizes; few
   epochs, since speed and memory do not depend on how well it learned) and the
   ResNet-18 classifier G.
2. External files: ``--images`` distinct 8-bit PNG files are written to a temp
   folder ``DIR/<class>/<n>.png`` (``--file-size`` px). Each is one of
   ``--bases`` rendered external-site phantoms per class plus its own seeded
   ±noise, so every file is different and has to be decoded.
3. Streaming: :func:`medlim.curation.shift.data.folder_set` lists the folder
   and :func:`medlim.curation.shift.pipeline.score_external` reads, presets and
   scores it in batches of 256 (every image through its class's CVAD and G).
   The progress callback records the process's resident set size (RSS) at
   every batch; a sampling thread records the peak every 0.1 s.

Reports images/s (decode + preset + 7 detectors + G), the listing time, peak
RSS while the first ``--checkpoint`` images were scored and while the rest
were, and the progress calls. Memory that grows with the count is only the
per-image results (a score and C probabilities, ``8·(1 + C)`` bytes, plus the
file list) and the OTDD feature pool, capped at ``otdd_pool`` = 5,000 × 512
float32 (≈ 10 MB) — :func:`main` prints that expected growth next to the
measured one.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_shift_stream.py [--images 100000] [--checkpoint 10000]
[--file-size 128] [--keep DIR] [--json]``. Needs ≈ 2 GB of temp disk at 100,000 × 128 px (removed afterwards
unless ``--keep``).

Measured 2026-11-27 on the shared 2-core CPU (15-min load average 4.2), one torch thread, defaults
(100,000 PNGs of 128 px, 963 MB): listing 5.0 s; **116.0 images/s** (862 s; reading and presetting
alone 1,200 images/s, so the 7 CVADs and G take ~90 % of the time); RSS 1,053.2 MB before scoring,
1,053.6 MB at 10,240 images, 1,057.1 MB at 100,000 (+3.5 MB, within the 14.2 MB expected for the
per-image results and the 5,000-feature pool); peak RSS 1,117.4 MB up to 10,240 images and 1,120.8 MB
after (the ~64 MB above the steady value is one batch in flight); 391 progress calls, increasing,
the last (100000, 100000). The ~1 GB base is torch, the trained models and the internal set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MB = 2**20


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class _PeakSampler:
    """Samples the RSS every ``interval`` s in a thread; ``mark()`` starts a new window."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.windows: list[int] = [0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = _rss()
            if value > self.windows[-1]:
                self.windows[-1] = value
            self._stop.wait(self.interval)

    def mark(self) -> None:
        self.windows.append(_rss())

    def __enter__(self) -> "_PeakSampler":
        self.windows[-1] = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_external_files(root: Path, n: int, *, file_size: int, bases: int, seed: int = 202) -> dict:
    """Write ``n`` distinct PNGs under ``root/<class>/``: rendered external phantoms plus per-file noise."""
    import cv2

    from medlim.curation.ood.data import to_model_input
    from medlim.curation.shift.data import phantom_image_set

    start = time.perf_counter()
    source = phantom_image_set(seed=seed, per_class=bases, severity_range=(0.3, 1.0), shifted_fraction=0.5)
    classes = source.class_names
    rendered = {name: [] for name in classes}
    for position in range(len(source)):
        image = to_model_input(source.phantom.render(source.indices[position], source.classes[position]), file_size)
        rendered[source.classes[position]].append((image * 255.0).astype(np.int16))
    render_seconds = time.perf_counter() - start
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    written = 0
    for i in range(n):
        name = classes[i % len(classes)]
        base = rendered[name][(i // len(classes)) % bases]
        noisy = np.clip(base + rng.integers(-3, 4, base.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        path = root / name / f"{i:06d}.png"
        if not cv2.imwrite(str(path), noisy):
            raise OSError(f"could not write {path}")
        written += path.stat().st_size
    return {"files": n, "file_size_px": file_size, "bases_per_class": bases, "bytes": written,
            "render_seconds": round(render_seconds, 1), "write_seconds": round(time.perf_counter() - start, 1)}


def train_internal(per_class: int, epochs: int, seed: int = 101):
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import phantom_image_set
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, fit_internal

    config = ShiftConfig(detector=DetectorConfig(epochs=epochs, head_epochs=max(1, epochs // 2), threads=1),
                         classifier=ClassifierConfig(epochs=1, threads=1))
    internal = phantom_image_set(seed=seed, per_class=per_class, site="internal")
    start = time.perf_counter()
    models = fit_internal(internal, config)
    return models, config, time.perf_counter() - start


def stream(models, config, root: Path, checkpoint: int) -> dict:
    from medlim.curation.shift.data import folder_set
    from medlim.curation.shift.pipeline import score_external

    start = time.perf_counter()
    external = folder_set(root, name="bench-external")
    list_seconds = time.perf_counter() - start
    calls: list[tuple[str, int, int]] = []
    rss_at: dict[int, int] = {}

    with _PeakSampler() as sampler:
        rss_start = _rss()
        marked = False

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal marked
            calls.append((stage, done, total))
            rss_at[done] = _rss()
            if not marked and done >= checkpoint:
                sampler.mark()
                marked = True

        start = time.perf_counter()
        scored = score_external(models, external, config, progress=progress)
        seconds = time.perf_counter() - start
    n = len(scored.scores)
    dones = [d for _, d, _ in calls]
    at_checkpoint = min((d for d in dones if d >= checkpoint), default=dones[-1])
    first_peak = sampler.windows[0]
    rest_peak = max(sampler.windows[1:]) if len(sampler.windows) > 1 else first_peak
    classes = len(models.class_names)
    # what is meant to grow: a float64 score and C float64 probabilities per image, the pool features
    per_image = 8 * (1 + classes)
    pool_bytes = scored.pool_features.nbytes
    return {
        "images": n, "listing_seconds": round(list_seconds, 1), "scoring_seconds": round(seconds, 1),
        "images_per_s": round(n / seconds, 1),
        "progress_calls": len(calls), "progress_stages": sorted({s for s, _, _ in calls}),
        "progress_monotonic": all(b > a for a, b in zip(dones, dones[1:])), "progress_last": list(calls[-1][1:]),
        "rss_before_scoring_mb": round(rss_start / MB, 1),
        "rss_at_checkpoint_mb": round(rss_at[at_checkpoint] / MB, 1), "checkpoint_images": at_checkpoint,
        "rss_at_end_mb": round(rss_at[dones[-1]] / MB, 1),
        "peak_rss_first_part_mb": round(first_peak / MB, 1), "peak_rss_rest_mb": round(rest_peak / MB, 1),
        "expected_growth_checkpoint_to_end_mb": round(
            ((n - at_checkpoint) * per_image + pool_bytes * (1 - at_checkpoint / n)) / MB, 1),
        "pool_features": int(len(scored.pool)), "pool_mb": round(pool_bytes / MB, 1),
        "scores_finite": bool(np.isfinite(scored.scores).all()),
    }


def read_only_rate(root: Path, n: int, size: int) -> float:
    """Images/s of reading and presetting alone (the decode share of the scoring rate)."""
    from medlim.curation.shift.data import folder_set, iter_batches

    external = folder_set(root)
    positions = np.arange(min(n, len(external)))
    start = time.perf_counter()
    for _ in iter_batches(external, size=size, batch_size=256, positions=positions):
        pass
    return len(positions) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000, help="external image files to stream")
    parser.add_argument("--checkpoint", type=int, default=10_000, help="compare memory at this count with the end")
    parser.add_argument("--file-size", type=int, default=128, help="side of the PNG files in px (read at 64)")
    parser.add_argument("--bases", type=int, default=20, help="rendered phantoms per class the files vary")
    parser.add_argument("--internal-per-class", type=int, default=20, help="internal phantoms per class")
    parser.add_argument("--epochs", type=int, default=2, help="CVAD epochs (speed does not depend on them)")
    parser.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict = {"torch_threads": torch.get_num_threads()}
    models, config, train_seconds = train_internal(args.internal_per_class, args.epochs)
    result["train_seconds"] = round(train_seconds, 1)
    root = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="medlim-shift-stream-"))
    try:
        result["files"] = write_external_files(root, args.images, file_size=args.file_size, bases=args.bases)
        print(f"wrote {args.images} files ({result['files']['bytes'] / MB:.0f} MB) in "
              f"{result['files']['write_seconds']} s", file=sys.stderr, flush=True)
        result["stream"] = stream(models, config, root, args.checkpoint)
        result["read_only_images_per_s"] = round(read_only_rate(root, args.checkpoint, config.detector.input_size), 1)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["load_average_15min"] = round(os.getloadavg()[2], 2)  # the CPU is shared: context for the rate
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        s = result["stream"]
        print(f"{s['images']} files streamed at {s['images_per_s']} images/s ({s['scoring_seconds']} s; "
              f"read + preset alone {result['read_only_images_per_s']} images/s; listing {s['listing_seconds']} s)")
        print(f"RSS: {s['rss_before_scoring_mb']} MB before, {s['rss_at_checkpoint_mb']} MB at "
              f"{s['checkpoint_images']}, {s['rss_at_end_mb']} MB at the end (expected growth "
              f"{s['expected_growth_checkpoint_to_end_mb']} MB); peak {s['peak_rss_first_part_mb']} MB up to "
              f"{s['checkpoint_images']}, {s['peak_rss_rest_mb']} MB after; ru_maxrss {result['ru_maxrss_mb']} MB")
        print(f"progress: {s['progress_calls']} calls, stages {s['progress_stages']}, monotonic "
              f"{s['progress_monotonic']}, last {s['progress_last']}; load average {result['load_average_15min']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
