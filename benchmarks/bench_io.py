"""Benchmark: reading a full-size mammogram with ``read_image`` vs plain pydicom.

Issue 2 ("Benchmark"): a 4096×3328, 16-bit MG DICOM (uncompressed, explicit VR
little endian, Bits Stored 16 by default), written once into a temporary folder
of this benchmark. Each repeat times

* baseline: ``pydicom.dcmread(path).pixel_array`` (decoding only: no LUTs,
  no windowing, no float conversion);
* medlim: ``medlim.core.io.read_image(path)`` (decoding, modality LUT, window,
  inversion, float32 ``pixels`` and ``raw``, metadata and the pseudonym key);

and prints the medians and their ratio (target ≤ 1.5×).

Run: ``python benchmarks/bench_io.py [--repeats 7] [--bits-stored 12] [--monochrome1] [--no-window]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS, COLUMNS = 4096, 3328


def write_mammogram(path: Path, *, bits_stored: int, monochrome1: bool, window: bool, seed: int = 0) -> None:
    """A synthetic full-field mammogram DICOM at ``path`` (smooth breast-like ramp plus noise)."""
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset

    rng = np.random.default_rng(seed)
    top = (1 << bits_stored) - 1
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float32)
    breast = np.clip(1.0 - ((x / COLUMNS) ** 2 + ((y - ROWS / 2) / (ROWS / 2)) ** 2), 0.0, 1.0)
    stored = breast * 0.8 * top + rng.normal(0.0, 0.01 * top, size=breast.shape)
    stored = np.clip(stored, 0, top).astype(np.uint16)

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = uid.generate_uid(entropy_srcs=["medlim-bench"])
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition, ds.ImageLaterality, ds.StudyDate = "CC", "L", "20240101"
    ds.PatientID = "BENCH-0001"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.EstimatedRadiographicMagnificationFactor = 1.1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = top // 2, top // 2
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def _interleaved_times(functions: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Seconds of each zero-argument callable per repeat, timed alternately.

    Alternating the candidates within each repeat keeps load from other processes
    (this machine is shared) from landing on one candidate only.
    """
    times: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(repeats):
        for label, function in functions.items():
            start = time.perf_counter()
            function()  # type: ignore[operator]
            times[label].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--bits-stored", type=int, default=16, choices=range(8, 17), metavar="8..16")
    parser.add_argument("--monochrome1", action="store_true")
    parser.add_argument("--no-window", action="store_true", help="no window in the file: value-range fallback")
    args = parser.parse_args(argv)

    import pydicom

    from medlim.core.io import read_image

    with tempfile.TemporaryDirectory(prefix="medlim-bench-io-") as folder:
        path = Path(folder) / "mammogram_4096x3328.dcm"
        write_mammogram(path, bits_stored=args.bits_stored, monochrome1=args.monochrome1, window=not args.no_window)
        size_mb = path.stat().st_size / 1e6
        # Warm-up (imports, page cache, key file) outside the timed repeats.
        pydicom.dcmread(path).pixel_array
        read_image(path).pixels
        times = _interleaved_times(
            {
                "pydicom": lambda: pydicom.dcmread(path).pixel_array,
                "medlim": lambda: read_image(path),
                # The display chain is deferred to first access (ImageRecord docstring):
                # this is the cost a caller pays who then looks at the pixels.
                "medlim+pixels": lambda: read_image(path).pixels,
            },
            args.repeats,
        )
    baseline, medlim = statistics.median(times["pydicom"]), statistics.median(times["medlim"])
    ratio = medlim / baseline
    best_ratio = min(times["medlim"]) / min(times["pydicom"])
    print(
        f"file: {ROWS}×{COLUMNS}, BitsAllocated 16, BitsStored {args.bits_stored}, "
        f"{'MONOCHROME1' if args.monochrome1 else 'MONOCHROME2'}, "
        f"{'value range' if args.no_window else 'window'}, {size_mb:.1f} MB; repeats {args.repeats}, interleaved (median)"
    )
    print(f"pydicom.dcmread(...).pixel_array : median {baseline:.4f} s, best {min(times['pydicom']):.4f} s")
    print(
        f"medlim.core.io.read_image        : median {medlim:.4f} s, best {min(times['medlim']):.4f} s "
        f"(decode + metadata; display chain deferred to first access of pixels/raw)"
    )
    print(f"ratio read_image / pydicom       : {ratio:.2f}× median, {best_ratio:.2f}× best  (target ≤ 1.5×)")
    full = statistics.median(times["medlim+pixels"])
    print(
        f"read_image(...).pixels           : median {full:.4f} s — ratio {full / baseline:.2f}× median, "
        f"{min(times['medlim+pixels']) / min(times['pydicom']):.2f}× best (decode + modality LUT + window, materialised)"
    )
    if hasattr(os, "getloadavg"):
        print(f"load average (1 min) during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
