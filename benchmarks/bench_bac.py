"""Benchmark: whole-mammogram SCU-Net BAC inference against MONAI's sliding window (thesis §3.3).

One full-size 4096×3328 mammogram (a ``medlim.phantoms`` MLO phantom, or a plain
half-ellipse breast with ``--image ellipse``) end to end — preprocessing, tiling,
inference, merging — with the authors' published 8-bit checkpoint when
``../shared`` holds it (random weights otherwise). Prints:

* medlim on CPU: seconds and peak resident memory (sampled RSS, target ≤ 2 GB);
* the ratio against ``monai.inferers.sliding_window_inference`` with the same
  model, patch grid (overlap 32 px) and preprocessing; MONAI has no skip rule
  and predicts every patch (target ≥ 1.5× faster);
* agreement of the two stitched maps inside the breast, both merged by mean
  (max |Δ| where every covering patch was predicted, and over the whole breast);
* quantification time on the cached full-size map (slider updates, target < 0.2 s);
* on CUDA, when present: seconds per full mammogram at steady state (target ≤ 0.1 s),
  with the published checkpoint and with the shipped ``scunet-bac`` weights
  (``thesis`` preset), the latter with preprocessing on the host and on the GPU.

Run: ``.venv/bin/python benchmarks/bench_bac.py`` (a few minutes on 2 CPU cores).
Benchmark-only dependencies: monai, psutil.

Measured 2026-11-27 (published checkpoint, phantom RMLO, batch 8; CPU = 2 shared
cores under heavy load from other jobs, so absolute seconds are noisy, ratios less so):
medlim 20–52 s, peak RSS 1.53–1.58 GiB (0.79 GiB before the call); MONAI 152–191 s,
2.08 GiB; ratio 3.2–4.1× (same mean merge); maps identical (max |Δ| ≤ 1.2e-7)
wherever every covering patch was predicted; quantification 47–72 ms.
CUDA, NVIDIA H200, torch 2.11, float16 autocast, random weights, ellipse image
(the phantom generator failed under that machine's OpenCV 5): 0.050 s per full
mammogram at steady state (batch 16; 0.047 s at batch 32), MONAI 0.089 s (1.8×).
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlim.core.tiling import patch_grid
from medlim.mammography.checkpoint import map_published_scunet
from medlim.mammography.inference import predict_probability_map
from medlim.mammography.preprocess import get_preset, median_filter, normalise_patches, skip_background_patches
from medlim.mammography.quantify import quantify_bac
from medlim.mammography.scunet import build_scunet

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
SHAPE = (4096, 3328)


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, interval_s: float = 0.01) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def ellipse_mammogram(seed: int = 0) -> np.ndarray:
    """Half-ellipse breast against the left edge with noisy texture and a few bright lines, ``np.uint8[4096, 3328]``."""
    rng = np.random.default_rng(seed)
    rows, cols = SHAPE
    yy, xx = np.ogrid[:rows, :cols]
    breast = ((yy - rows / 2) / (0.46 * rows)) ** 2 + (xx / (0.62 * cols)) ** 2 < 1
    image = rng.integers(0, 4, SHAPE, dtype=np.uint8)
    texture = rng.normal(120, 22, SHAPE).astype(np.float32)
    image[breast] = np.clip(texture[breast], 1, 255).astype(np.uint8)
    for k in range(6):
        row = 900 + 420 * k
        image[row : row + 4, 200 : 200 + 230 * (k + 2)] = 235
    return image


def phantom_mammogram(seed: int = 0) -> np.ndarray:
    """A full-size ``medlim.phantoms`` RMLO mammogram as ``np.uint8[4096, 3328]``."""
    from medlim.phantoms.mammogram import generate_mammogram

    phantom = generate_mammogram(seed=seed, index=3, size="full")
    return (np.clip(phantom.image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def load_model(weights: Path) -> tuple[torch.nn.Module, str]:
    model = build_scunet()
    if weights.is_file():
        model.load_state_dict(map_published_scunet(torch.load(weights, weights_only=True, map_location="cpu")))
        return model.eval(), weights.name
    torch.manual_seed(0)
    return model.eval(), "random weights (published checkpoint not found)"


def monai_map(image: np.ndarray, model: torch.nn.Module, *, device: torch.device, batch_size: int) -> np.ndarray:
    """The same preprocessing, then MONAI's sliding window over every patch (mean merge)."""
    from monai.inferers import sliding_window_inference

    preset = get_preset("published")
    grey = median_filter(image, kernel=preset.median_kernel, footprint=preset.median_footprint)
    inputs = normalise_patches(torch.from_numpy(grey).to(device)[None, None], preset)
    with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda"):
        output = sliding_window_inference(
            inputs,
            roi_size=(preset.patch_size, preset.patch_size),
            sw_batch_size=batch_size,
            predictor=model,
            overlap=preset.overlap / preset.patch_size,
            mode="constant",
        )
    return output[0, 0].float().cpu().numpy()


def skip_coverage(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Under the published skip rule: (pixels whose every covering patch is predicted, pixels no predicted patch covers)."""
    preset = get_preset("published")
    grey = median_filter(image, kernel=preset.median_kernel)
    covered_by_skipped = np.zeros(image.shape, dtype=bool)
    covered_by_predicted = np.zeros(image.shape, dtype=bool)
    size = preset.patch_size
    for row, col in patch_grid(image.shape, patch=size, stride=preset.stride):
        window = (slice(row, row + size), slice(col, col + size))
        if skip_background_patches(grey[window][None])[0]:
            covered_by_skipped[window] = True
        else:
            covered_by_predicted[window] = True
    return ~covered_by_skipped, ~covered_by_predicted


def timed(function: Callable[[], Any], *, device: torch.device) -> tuple[Any, float, int]:
    """Run once; returns (result, seconds, peak RSS in bytes during the call)."""
    with PeakRss() as memory:
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return result, seconds, memory.peak


def run_cpu(image: np.ndarray, model: torch.nn.Module, *, batch_size: int, with_monai: bool) -> None:
    cpu = torch.device("cpu")
    import psutil

    print(f"CPU: {torch.get_num_threads()} torch threads; process RSS before the runs "
          f"{psutil.Process().memory_info().rss / 2**30:.2f} GiB (Python, torch, the image)")
    ours, ours_s, ours_peak = timed(
        lambda: predict_probability_map(image, model, preset="published", batch_size=batch_size, device=cpu), device=cpu
    )
    print(
        f"  medlim (published preset, max merge): {ours_s:.2f} s, peak RSS {ours_peak / 2**30:.2f} GiB, "
        f"{ours.patches_predicted}/{ours.patches_total} patches predicted ({ours.patches_skipped} skipped)"
    )
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        metrics = quantify_bac(ours.probability, ours.preprocessed.grey, threshold=0.65, x=100, intensity_rule=">=")
        timings.append(time.perf_counter() - start)
    print(f"  quantify_bac on the cached map: {np.median(timings) * 1000:.0f} ms (median of 5); "
          f"AM {metrics.am}, TAM_100 {metrics.tam_x}, breast area {metrics.breast_area}")
    if not with_monai:
        return

    ours_mean, mean_s, mean_peak = timed(
        lambda: predict_probability_map(image, model, preset="published", merge="mean", batch_size=batch_size, device=cpu),
        device=cpu,
    )
    print(f"  medlim (mean merge, for comparison): {mean_s:.2f} s, peak RSS {mean_peak / 2**30:.2f} GiB")
    reference, monai_s, monai_peak = timed(lambda: monai_map(image, model, device=cpu, batch_size=batch_size), device=cpu)
    print(f"  MONAI sliding_window_inference (all {ours.patches_total} patches, mean merge): {monai_s:.2f} s, "
          f"peak RSS {monai_peak / 2**30:.2f} GiB")
    print(f"  speed ratio MONAI / medlim: {monai_s / mean_s:.2f}x (same merge), {monai_s / ours_s:.2f}x (default max merge)")

    breast = ours.preprocessed.breast_mask
    all_predicted, none_predicted = skip_coverage(image)
    comparable = breast & all_predicted
    difference = np.abs(ours_mean.probability - reference)
    breast_px = max(int(breast.sum()), 1)
    print(f"  agreement inside the breast ({breast_px} px): max |Δ| {difference[comparable].max():.2e} where every "
          f"covering patch was predicted ({comparable.sum() / breast_px:.1%} of the breast); "
          f"{difference[breast].max():.2e} over the whole breast")
    print(f"  the published skip rule leaves {(breast & none_predicted).sum() / breast_px:.1%} of breast pixels in no "
          f"predicted patch and {(breast & ~all_predicted & ~none_predicted).sum() / breast_px:.1%} in overlaps "
          f"with a skipped patch")
    ours_bac = ours_mean.probability > 0.65
    monai_bac = reference > 0.65
    print(f"  BAC pixels (p > 0.65) inside the breast: medlim {int((ours_bac & breast).sum())}, "
          f"MONAI {int((monai_bac & breast).sum())}, differing {int(((ours_bac ^ monai_bac) & breast).sum())} "
          f"(of which {int(((ours_bac ^ monai_bac) & comparable).sum())} where every covering patch was predicted)")


def run_cuda(image: np.ndarray, model: torch.nn.Module, *, batch_size: int, repeats: int) -> None:
    gpu = torch.device("cuda")
    print(f"CUDA: {torch.cuda.get_device_name(gpu)} (float16 autocast)")
    for _ in range(2):  # warm-up: cuDNN autotuning, allocator
        predict_probability_map(image, model, preset="published", batch_size=batch_size, device=gpu)
    torch.cuda.synchronize()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = predict_probability_map(image, model, preset="published", batch_size=batch_size, device=gpu)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    print(f"  medlim: {np.median(seconds):.3f} s per full mammogram (median of {repeats}, "
          f"min {min(seconds):.3f} s), {result.patches_predicted}/{result.patches_total} patches; "
          f"peak GPU memory {torch.cuda.max_memory_allocated(gpu) / 2**30:.2f} GiB")
    monai_map(image, model, device=gpu, batch_size=batch_size)
    torch.cuda.synchronize()
    monai_seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        monai_map(image, model, device=gpu, batch_size=batch_size)
        torch.cuda.synchronize()
        monai_seconds.append(time.perf_counter() - start)
    print(f"  MONAI sliding window: {np.median(monai_seconds):.3f} s per mammogram; "
          f"ratio {np.median(monai_seconds) / np.median(seconds):.2f}x")


def run_cuda_shipped(image: np.ndarray, *, batch_size: int, repeats: int) -> None:
    """Steady-state seconds with the shipped ``scunet-bac`` weights and their own settings (``thesis`` preset).

    Times the preprocessing on the host (numpy/OpenCV) against on the GPU
    (tensor operations, the default on CUDA) in the same run, and checks that
    the two maps are identical.
    """
    from medlim.mammography.analysis import load_bac_model

    try:
        shipped = load_bac_model("scunet-bac", device="cuda")
    except Exception as error:  # the benchmark still reports the published-checkpoint figures
        print(f"  shipped weights: not loaded ({error!r}), skipped")
        return
    settings = dict(preset=shipped.preset, stride=shipped.stride, merge=shipped.merge, skip=shipped.skip,
                    output_activation=shipped.output_activation, batch_size=batch_size, device="cuda")
    print(f"  shipped {shipped.entry.name} v{shipped.entry.version}: preset {shipped.preset}, "
          f"stride {shipped.stride}, merge {shipped.merge}, skip {shipped.skip!r}")
    medians = {}
    results = {}
    for where in ("host", "device"):
        for _ in range(2):
            predict_probability_map(image, shipped.model, preprocess_on=where, **settings)
        torch.cuda.synchronize()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            results[where] = predict_probability_map(image, shipped.model, preprocess_on=where, **settings)
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
        medians[where] = float(np.median(seconds))
        print(f"    preprocessing on the {where}: {medians[where]:.3f} s per full mammogram (median of {repeats}, "
              f"min {min(seconds):.3f} s), {results[where].patches_predicted}/{results[where].patches_total} patches")
    same = np.array_equal(results["host"].probability, results["device"].probability)
    print(f"    ratio host/device {medians['host'] / medians['device']:.2f}x; maps identical: {same}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=("phantom", "ellipse"), default="phantom")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-monai", action="store_true", help="skip the MONAI comparison")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU run (CUDA only)")
    parser.add_argument("--cuda-repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"bench_bac {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}")
    try:
        image = phantom_mammogram() if args.image == "phantom" else ellipse_mammogram()
        source = f"{args.image} {image.shape[0]}x{image.shape[1]}"
    except Exception as error:  # a benchmark should still run on a bare machine without the phantom's needs
        image, source = ellipse_mammogram(), f"ellipse (phantom generator failed: {error!r})"
    model, weights_name = load_model(args.weights)
    print(f"image: {source}; weights: {weights_name}")
    if not args.no_cpu:
        run_cpu(image, model, batch_size=args.batch_size, with_monai=not args.no_monai)
    if torch.cuda.is_available():
        run_cuda(image, model, batch_size=args.batch_size, repeats=args.cuda_repeats)
        run_cuda_shipped(image, batch_size=args.batch_size, repeats=args.cuda_repeats)
    else:
        print("CUDA: not available, GPU timing skipped")


if __name__ == "__main__":
    main()
