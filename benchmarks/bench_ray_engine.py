"""Benchmark: images per second of the local engine against the Ray engine with 1 and 2 model workers (issue 15).

Two batch workloads, each read from files on disk, as the commands read them:

* BAC quantify: small phantom mammograms (``medlim phantom mammogram --size small``,
  1024×832 DICOM) through :func:`medlim.mammography.batch.quantify_files` with a
  randomly initialised SCU-Net (the speed does not depend on the weights), no store;
* OOD scoring: 64 px radiograph phantoms (PNG) through
  :func:`medlim.curation.ood.scoring.score_files` with an untrained TEND (width 8).

Each runs on the local engine (this process, torch's default threads), then on
a local Ray session (started once, outside the timings) with 1 and with 2 model
workers of one torch thread each. Printed per run: end-to-end images/s (worker
start-up and model loading included) and steady-state images/s (between the
first and the last result, start-up left out), and the ratios of both against
the local engine, then the 2-worker ÷ 1-worker ratio (issue 15's target for BAC
on a 2-core machine: ≥ 1.3). Each engine runs ``--repeats`` times in turn and
the best rates are kept. The results of every run are checked against the
local ones (same readouts, same scores).

Run: ``.venv/bin/python benchmarks/bench_ray_engine.py [--bac 32] [--ood 1024] [--repeats 2] [--reading-tasks]``
(a few minutes on 2 CPU cores; no dependencies beyond medlim's own).

Measured 2026-12-05 on the idle 2-core development machine (``--bac 32 --ood 0
--reading-tasks``): Ray ×2 ÷ ×1 = 1.51 end to end, 1.88 steady; see the README,
"Running on a Ray cluster", for the table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _mammograms(folder: Path, count: int) -> list[Path]:
    from medlim.cli import main as medlim

    with contextlib.redirect_stderr(io.StringIO()):
        medlim(["phantom", "mammogram", "--out", str(folder), "--n", str(count), "--seed", "11", "--size", "small"])
    return sorted(folder.glob("*.dcm"))[:count]


def _radiographs(folder: Path, count: int) -> list[Path]:
    from medlim.cli import main as medlim

    medlim(["phantom", "radiograph", "--out", str(folder), "--n", str(count), "--seed", "2", "--size", "64", "--quiet"])
    return sorted(folder.rglob("*.png"))[:count]


def _bac_model(folder: Path) -> Any:
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    registry = Registry(folder)
    save_weights(registry, {
        "name": "scunet-bench", "version": "0", "task": "bac-segmentation", "architecture": "scunet",
        "preset": "published",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-2.24, 5.72]},
        "output_type": "probability", "thresholds": {"output": 0.46},
        "params": {"overlap": 32, "merge": "max", "output_activation": "sigmoid"},
    }, build_scunet().state_dict())
    return load_bac_model("scunet-bench", registry=registry, device="cpu")


def _tend() -> Any:
    from medlim.curation.ood.nets import build_tend
    from medlim.curation.ood.scoring import Detector

    return Detector("tend", build_tend(width=8), {"input_size": 64, "id_classes": ["hand"], "weight": 0.5,
                                                  "margin": 150.0}, threshold=0.3, name="tend-bench")


def _timed(results: Iterable[Any], batch: int) -> tuple[list[Any], tuple[float, float]]:
    """The results and their rates: end to end, and steady (after the first ``batch`` results, which
    carry the start-up: Ray workers starting, the model loading)."""
    started = time.perf_counter()
    collected, first = [], 0.0
    for result in results:
        collected.append(result)
        if len(collected) == batch:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    count = len(collected)
    steady = (count - batch) / (total - first) if count > batch and total > first else float("nan")
    return collected, (count / total, steady)


def _bac_runs(files: list[Path], bac_model: Any, engine: Any) -> Iterator[Any]:
    from medlim.mammography.batch import quantify_files

    return ((o.ok, o.values) for o in quantify_files(((str(f), f) for f in files), bac_model, engine=engine))


def _ood_runs(files: list[Path], detector: Any, engine: Any) -> Iterator[Any]:
    from medlim.curation.ood.scoring import score_files

    return (row.get("score") for row in score_files(detector, ((str(f), f) for f in files), engine=engine))


def _same(reference: list[Any], results: list[Any]) -> bool:
    if len(reference) != len(results):
        return False
    for ours, theirs in zip(reference, results):
        if isinstance(ours, tuple):
            keys = ("pm", "am", "sim", "tam_x", "tsim_x", "breast_area")
            if ours[0] != theirs[0] or not all(np.isclose(ours[1][k], theirs[1][k], rtol=1e-6) for k in keys):
                return False
        elif not np.isclose(ours, theirs, rtol=1e-6):
            return False
    return True


def _workload(label: str, count: int, run: Callable[[Any], Iterator[Any]], workers: tuple[int, ...],
              batch: int, repeats: int, reading_tasks: bool = False) -> dict[str, Any]:
    """Each engine ``repeats`` times, in turn (local, ray x1, ray x2, local, …); the best rates are kept
    (on a shared machine the other jobs only ever slow a run down). With ``reading_tasks`` also Ray
    with the files read in Ray tasks (the GPU layout) instead of in the model actors (the CPU default)."""
    from medlim.core.engines import LocalEngine, RayEngine

    engines: dict[str, Any] = {"local": LocalEngine(), **{f"ray x{n}": RayEngine(workers=n) for n in workers}}
    if reading_tasks:
        engines.update({f"ray x{n} rt": RayEngine(workers=n, reading="tasks") for n in workers})
    rows: dict[str, tuple[float, float]] = {}
    reference: list[Any] | None = None
    for _ in range(repeats):
        for name, engine in engines.items():
            results, rates = _timed(run(engine), batch)
            reference = results if reference is None else reference
            if not _same(reference, results):
                print(f"  !! {label}: {name} results differ from the local ones")
            best = rows.get(name, (0.0, 0.0))
            rows[name] = (max(best[0], rates[0]), max(best[1], rates[1]))
    local_total, local_steady = rows["local"]
    print(f"\n{label}: {count} images, best of {repeats}")
    print(f"  {'engine':<9}{'img/s':>9}{'× local':>9}{'steady img/s':>14}{'× local':>9}  (steady: after the first batch)")
    for name, (end_to_end, steady) in rows.items():
        print(f"  {name:<9}{end_to_end:>9.2f}{end_to_end / local_total:>9.2f}{steady:>14.2f}{steady / local_steady:>9.2f}")
    for suffix in ("", " rt"):
        one, two = f"ray x1{suffix}", f"ray x2{suffix}"
        if one in rows and two in rows:
            print(f"  {two} ÷ {one}: end to end {rows[two][0] / rows[one][0]:.2f}, "
                  f"steady {rows[two][1] / rows[one][1]:.2f}")
    print("  (rt: files read in Ray tasks, as with GPUs; otherwise in the model actors, the CPU default)"
          if reading_tasks else "")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bac", type=int, default=32, help="small phantom mammograms (default 32; 0: skip)")
    parser.add_argument("--ood", type=int, default=1024, help="64 px radiographs (default 1024; 0: skip)")
    parser.add_argument("--workers", default="1,2", help="Ray model workers to compare, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each engine, the best kept (default 2)")
    parser.add_argument("--reading-tasks", action="store_true",
                        help="also run Ray with the files read in Ray tasks (the GPU layout)")
    args = parser.parse_args()
    import ray
    import torch

    workers = tuple(int(n) for n in args.workers.split(","))
    scratch = Path(tempfile.mkdtemp(prefix="medlim-bench-ray-", dir="/tmp"))
    os.environ.setdefault("MEDLIM_HOME", str(scratch / "home"))
    print(f"{dt.date.today()}: {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads locally, Ray {ray.__version__} (1 torch thread per worker), load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    try:
        mammograms = _mammograms(scratch / "mammograms", args.bac) if args.bac else []
        radiographs = _radiographs(scratch / "radiographs", args.ood) if args.ood else []
        bac_model, detector = _bac_model(scratch / "weights"), _tend()
        ray.init(num_cpus=max(os.cpu_count() or 1, max(workers) + 1), include_dashboard=False,
                 logging_level=logging.WARNING, _temp_dir=str(scratch / "ray"))
        if mammograms:
            _workload("BAC quantify (small phantoms)", len(mammograms),
                      lambda engine: _bac_runs(mammograms, bac_model, engine), workers, batch=1, repeats=args.repeats,
                      reading_tasks=args.reading_tasks)
        if radiographs:
            _workload("OOD scoring (TEND, 64 px)", len(radiographs),
                      lambda engine: _ood_runs(radiographs, detector, engine), workers, batch=32, repeats=args.repeats)
        print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
