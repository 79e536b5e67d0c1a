"""Benchmark: what a BAC slider move recomputes on a four-view full-size exam (issue 17).

Four 4096×3328 mammogram phantoms (one exam: ``medlim.phantoms.mammogram``),
each with a cached probability map (the phantom's calcified arteries, blurred,
plus faint background noise: no model is needed to time the slider path), the
thesis preset's preprocessed image and breast mask. For each cut-off of a sweep
it times, per slider change:

* **baseline — the page before issue 17** (full-resolution overlay): per view,
  the decoded image copied out of ``st.cache_data`` (its key hashed over the
  file's bytes, the record unpickled) and the file hashed again for the
  analysis cache; the four views' readouts (``requantify``); the selected view's full-resolution mask
  ``p > t``, the display image downsampled again (longest side 2048), the mask
  shrunk by block maximum, both PNG-encoded at the default compression, a 512-px
  crop figure, and the full-size mask PNG the download button held;
* **now**: per view, the upload's bytes taken (``getvalue``: one copy; record,
  analysis, digest and cut-off table stay in the session, no hashing, no
  unpickling); the four views' readouts (TAM_100 included) as :class:`BacReadout`
  from each analysis' cut-off table (:mod:`medlim.mammography.cutoffs`, built
  once per image) and the readout
  table, the overview at display size from the cached block-maximum map
  (:func:`medlim.ui.mammography.overlay_figure`, longest side 1024), and the
  full-resolution 512-px zoom (:func:`medlim.ui.mammography.zoom_figure`); the
  mask PNG and the report are built only when downloaded.

Both serialise their figures to JSON as ``st.plotly_chart`` does. It prints the
mean and worst seconds per slider change, their ratio, and the one-off costs
(display base per image and window, cut-off table per image), and checks that
both paths give the same readouts. Target: ≤ 0.5 s per change.

Run: ``.venv/bin/python benchmarks/bench_bac_sliders.py`` (about a minute;
``--repeats`` for more passes).

Measured on 2 shared CPU cores under load from other jobs (absolute seconds
noisy, the ratio less so): baseline mean 1.96 s (worst 2.75 s), now mean 0.15 s
(worst 0.19 s), 13×; one-off per view: display base 0.47 s, cut-off table 0.30 s.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

__all__ = ["main"]

VIEWS = 4
CUTOFFS = (0.80, 0.79, 0.60, 0.40, 0.20, 0.05)


def _file_and_cache(views) -> list[tuple[bytes, bytes]]:
    """Per view: stand-ins for the uploaded DICOM bytes (uint16 pixels) and its pickled record in ``st.cache_data``."""
    import pickle

    from medlim.core.io.record import ImageMetadata, ImageRecord

    out = []
    for _analysis, display in views:
        data = np.rint(display * 4095).astype("<u2").tobytes()
        record = ImageRecord(pixels=display, raw=display * 4095, metadata=ImageMetadata(source_format="dicom"))
        out.append((data, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)))
    return out


def _exam(seed: int) -> list[tuple[object, np.ndarray]]:
    """Four full-size views: ``(analysis, display pixels)`` each, with a cached probability map."""
    import cv2

    from medlim.mammography.analysis import BacAnalysis, requantify
    from medlim.mammography.preprocess import preprocess_image
    from medlim.phantoms.mammogram import generate_mammogram

    views = []
    rng = np.random.default_rng(seed)
    for index in range(VIEWS):
        phantom = generate_mammogram(seed=seed, index=index, size="full", bac_fraction=1.0)
        image = phantom.image.astype(np.float32)
        preprocessed = preprocess_image(np.rint(image * 255.0).astype(np.uint8), "thesis")
        arteries = cv2.GaussianBlur(phantom.bac_mask.astype(np.float32), (0, 0), 2.0)
        noise = rng.random(image.shape, dtype=np.float32) ** 12 * 0.5
        probability = np.clip(np.maximum(arteries * 1.6, noise) * phantom.breast_mask, 0.0, 1.0).astype(np.float32)
        prediction = SimpleNamespace(probability=probability, preprocessed=preprocessed, preset="thesis")
        meta = phantom.metadata
        analysis = BacAnalysis(
            name=f"{meta.view_label}.dcm", prediction=prediction, metrics=None, view=meta.view,
            laterality=meta.laterality, study_date=meta.study_date, patient_key="pk", pixel_spacing_mm=(0.07, 0.07),
            spacing_source="PixelSpacing", weights="phantom", warnings=(), seconds=0.0,
        )  # fmt: skip
        analysis = BacAnalysis(**{**analysis.__dict__, "metrics": requantify(analysis, threshold=0.8, x=100.0)})
        views.append((analysis, image))
    return views


def _png_uri(array: np.ndarray, *, fast: bool) -> str:
    import cv2

    if array.ndim == 3:
        array = array[..., [2, 1, 0, 3]]
    options = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fast else []
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array), options)
    assert ok
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _baseline_figure(display: np.ndarray, mask: np.ndarray | None, *, factor: int, origin=(0, 0)):
    """The overlay figure of the page before issue 17 (red-orange mask, default PNG compression)."""
    import plotly.graph_objects as go

    grey = np.clip(np.rint(display * 255.0), 0, 255).astype(np.uint8)
    placement = {"x0": origin[1] + (factor - 1) / 2.0, "y0": origin[0] + (factor - 1) / 2.0, "dx": factor, "dy": factor}
    figure = go.Figure(go.Image(source=_png_uri(grey, fast=False), **placement))
    if mask is not None:
        rgba = np.zeros(mask.shape + (4,), np.uint8)
        rgba[mask] = (255, 48, 32, 255)
        figure.add_trace(go.Image(source=_png_uri(rgba, fast=False), opacity=0.6, **placement))
    return figure


def baseline_change(views, files, threshold: float, x: float) -> None:
    """One slider change as the page computed it before issue 17 (full-resolution overlay)."""
    import hashlib
    import pickle

    import cv2

    from medlim.mammography.analysis import requantify
    from medlim.mammography.batch import outcome_record
    from medlim.ui.figures import block_max, downsample_for_display

    for data, pickled in files:  # read_image_cached (st.cache_data: key hash + unpickled copy), then sha256
        hashlib.md5(data).hexdigest()
        pickle.loads(pickled)
        hashlib.sha256(data).hexdigest()
    metrics = [requantify(analysis, threshold=threshold, x=x) for analysis, _ in views]
    _rows = [outcome_record(analysis, file="") for analysis, _ in views]  # the report records, every run
    analysis, display = views[0]
    mask = analysis.prediction.probability > threshold
    shrunk, factor = downsample_for_display(display, max_side=2048)
    _baseline_figure(shrunk, block_max(mask, factor), factor=factor).to_json()
    crop = (slice(1792, 2304), slice(1408, 1920))
    _baseline_figure(display[crop], mask[crop], factor=1, origin=(1792, 1408)).to_json()
    cv2.imencode(".png", np.where(mask, np.uint8(255), np.uint8(0)))  # the mask download, built every run
    assert metrics


def new_change(views, files, bases, tables, threshold: float, x: float) -> list:
    """One slider change as the page computes it now (overview at display size, zoom at full resolution)."""
    from medlim.mammography.analysis import requantify

    for data, _pickled in files:  # UploadedFile.getvalue(): one copy of the bytes; the rest stays in the session
        bytearray(data)
    from medlim.mammography.readout import readout_of
    from medlim.ui.mammography import crop_box, overlay_figure, readout_rows, zoom_figure

    readouts = [readout_of(a, requantify(a, threshold=threshold, x=x, table=table), table=table)
                for (a, _), table in zip(views, tables)]
    readout_rows(readouts, [f"view {i}" for i in range(len(views))], [None] * len(views))
    (analysis, display), base = views[0], bases[0]
    overlay_figure(base, threshold=threshold).to_json()
    top, left, bottom, right = crop_box(base.shape, (2048, 1664), 512)
    region = (slice(top, bottom), slice(left, right))
    zoom_figure(display[region], analysis.prediction.probability[region], origin=(top, left),
                threshold=threshold).to_json()  # fmt: skip
    return readouts


def _check_same_readouts(views, tables, x: float) -> None:
    """The table's readouts are the full pass's, on every cut-off of the sweep (or the benchmark is void)."""
    from medlim.mammography.analysis import requantify

    for (analysis, _), table in zip(views, tables):
        for threshold in CUTOFFS:
            fast = requantify(analysis, threshold=threshold, x=x, table=table)
            if fast != requantify(analysis, threshold=threshold, x=x):
                raise SystemExit(f"cut-off table differs from the full pass at t = {threshold}")
    print(f"readouts from the tables equal the full pass on {len(CUTOFFS)} cut-offs × {VIEWS} views")


def _time(change: Callable[[float], None], cutoffs, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        for threshold in cutoffs:
            started = time.perf_counter()
            change(threshold)
            seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=2, help="passes over the cut-off sweep")
    parser.add_argument("--x", type=float, default=100.0)
    args = parser.parse_args(argv)

    from medlim.mammography.cutoffs import cutoff_table
    from medlim.ui.mammography import overlay_base

    started = time.perf_counter()
    views = _exam(args.seed)
    print(f"{VIEWS} full-size views ({views[0][1].shape[0]}×{views[0][1].shape[1]}) with cached maps in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    files = _file_and_cache(views)
    started = time.perf_counter()
    bases = [overlay_base(display, analysis.prediction.probability) for analysis, display in views]
    print(f"display base (once per image and window): {(time.perf_counter() - started) / VIEWS:.3f} s per view")
    started = time.perf_counter()
    tables = [cutoff_table(analysis) for analysis, _ in views]
    print(f"cut-off table (once per image, after inference): {(time.perf_counter() - started) / VIEWS:.3f} s per view")
    _check_same_readouts(views, tables, args.x)

    baseline_change(views, files, 0.5, args.x)  # warm up imports and caches
    new_change(views, files, bases, tables, 0.5, args.x)
    old = _time(lambda t: baseline_change(views, files, t, args.x), CUTOFFS, args.repeats)
    new = _time(lambda t: new_change(views, files, bases, tables, t, args.x), CUTOFFS, args.repeats)
    print(f"slider change, baseline (full-resolution overlay, page before issue 17): mean {statistics.mean(old):.3f} s, "
          f"worst {max(old):.3f} s")  # fmt: skip
    print(f"slider change, now (display-size overview + full-resolution zoom):      mean {statistics.mean(new):.3f} s, "
          f"worst {max(new):.3f} s")  # fmt: skip
    print(f"ratio baseline / now: {statistics.mean(old) / statistics.mean(new):.1f}× (target: now ≤ 0.5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
