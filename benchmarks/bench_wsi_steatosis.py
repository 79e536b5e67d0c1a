"""Benchmark: steatosis seconds per megapixel on a whole-slide region vs on single 1024² tiles (issue 16).

The named baseline is the single-image path (:func:`~medlim.microscopy.steatosis.analysis.analyse_image`)
on ``grid × grid`` separate 1024×1024 H&E phantoms. The whole-slide path
(:func:`~medlim.microscopy.steatosis.analysis.analyse_slide`) analyses the same
phantoms stitched into one ``1024·grid`` px square region of a pyramidal tiled
TIFF (256 px JPEG tiles, two sub-resolution levels, written tile by tile):
tiles read lazily, overlapping by 192 px, droplets on seams kept once. Both
report seconds per megapixel of the *image* (not of the pixels processed), so
the ratio is the price of tiling: the overlap, the decode and the per-tile
tissue masks. The weights' training-data check is left out of both paths
(the slide path does not run it). Uses the registered ``maskrcnn-steatosis``
weights when present, else an untrained network of the same architecture.

Run: ``python benchmarks/bench_wsi_steatosis.py [--grid 2] [--threads 2] [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _model():
    from medlim.microscopy.steatosis.analysis import SteatosisModel, load_steatosis_model
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    try:
        model = load_steatosis_model(device="cpu")
        return dataclasses.replace(model, familiarity=None), model.label
    except Exception as exc:  # noqa: BLE001 - a benchmark falls back to an untrained net and says so
        print(f"(no registered weights: {type(exc).__name__}; timing an untrained network)", file=sys.stderr)
        return SteatosisModel(model=build_steatosis_maskrcnn().eval(), label="untrained", tile=1024, overlap=128,
                              mask_threshold=0.5), "untrained"


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from medlim.core.io.slide import open_slide
    from medlim.microscopy.steatosis.analysis import analyse_image, analyse_slide
    from medlim.phantoms.he import generate_he
    from medlim.phantoms.slide import write_tiled_tiff

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=2, help="the region is grid × grid phantoms of 1024²")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, weights = _model()
    tiles = [generate_he(args.seed, index=i, size=(1024, 1024)).image for i in range(args.grid**2)]
    side = 1024 * args.grid
    region = np.zeros((side, side, 3), np.uint8)
    for i, tile in enumerate(tiles):
        row, col = divmod(i, args.grid)
        region[row * 1024 : (row + 1) * 1024, col * 1024 : (col + 1) * 1024] = tile
    analyse_image(model, tiles[0][:256, :256])  # warm-up
    start = time.perf_counter()
    single_droplets = sum(len(analyse_image(model, tile).table) for tile in tiles)
    single = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "region.tif"
        write_tiled_tiff(path, lambda t, left, h, w: region[t : t + h, left : left + w], (side, side), tile=256,
                         levels=2, compression="jpeg", spacing_um=0.5)
        start = time.perf_counter()
        with open_slide(path) as slide:
            analysis = analyse_slide(model, slide)
        whole = time.perf_counter() - start
    megapixels = side * side / 1e6
    results = {"weights": weights, "region_px": side, "megapixels": megapixels,
               "single_tiles_s_per_mp": round(single / megapixels, 3),
               "whole_slide_s_per_mp": round(whole / megapixels, 3),
               "ratio_whole_slide_vs_single": round(whole / single, 3),
               "single_tiles_droplets": int(single_droplets), "whole_slide_droplets": len(analysis.table),
               "threads": args.threads,
               "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:30s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
