"""Benchmark: peak memory of ``medlim image info`` on images that are small on disk and large decoded.

Issue 14 ("Hardening"): a 140 KB PNG that decodes to 12000×12000 cost 2.0 GB
peak RSS in the command line before the decode budget. Each case is written
once into a temporary folder, then ``python -m medlim image info --jsonl FILE``
runs as the child of a small process that reports the child's peak RSS
(``ru_maxrss`` of a child starts at its parent's, so the parent must be small).

Named baseline: the floor of any reader that shows float32 pixels, i.e. the
decoded array plus one float32 image, on top of the command's own RSS on a
4×4 PNG (interpreter, numpy, Pillow, pydicom). The ratio printed is
``(peak - command) / floor``; 1.0 is the floor, the target is ≤ 1.3, and the
whole command must stay ≤ 1.2 GB for the 12000² PNGs.

Run: ``python benchmarks/bench_decode_memory.py [--size 12000] [--cases png8,png16,tiff_rgb,dicom]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "medlim", "image", "info", "--jsonl", sys.argv[1]],
                      capture_output=True, text=True)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "out": done.stdout}))
"""


def _smooth(size: int, dtype: type) -> np.ndarray:
    """A smooth ramp pattern (compresses to a few hundred KB), built row block by row block."""
    image = np.empty((size, size), dtype=dtype)
    columns = np.arange(size, dtype=np.uint32)[None, :] // 50
    for top in range(0, size, 1000):
        rows = np.arange(top, min(size, top + 1000), dtype=np.uint32)[:, None] // 50
        image[top : top + 1000] = ((rows + columns) % 200).astype(dtype)
    return image


def write_png(path: Path, size: int, dtype: type) -> int:
    """A smooth grey PNG; returns the floor (decoded + one float32 image) in bytes."""
    import cv2

    cv2.imwrite(str(path), _smooth(size, dtype), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return size * size * (np.dtype(dtype).itemsize + 4)


def write_tiff_rgb(path: Path, size: int) -> int:
    """A zlib-compressed RGB TIFF, 2/3 of ``size`` on a side (the issue's 8000² case at 12000)."""
    import tifffile

    side = size * 2 // 3
    tifffile.imwrite(path, np.zeros((side, side, 3), np.uint8), compression="zlib")
    return side * side * 3 * (1 + 4)


def write_dicom(path: Path, size: int) -> int:
    """An uncompressed 16-bit grey DICOM with a window (the file's pixel data is the decoded array)."""
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = uid.generate_uid(entropy_srcs=["medlim-bench-memory"])
    ds.Modality = "MG"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = _smooth(size, np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    ds.save_as(path, enforce_file_format=True)
    return size * size * (2 + 4)


CASES: dict[str, tuple[str, Callable[[Path, int], int]]] = {
    "png8": ("png", lambda path, size: write_png(path, size, np.uint8)),
    "png16": ("png", lambda path, size: write_png(path, size, np.uint16)),
    "tiff_rgb": ("tif", write_tiff_rgb),
    "dicom": ("dcm", write_dicom),
}


def measure(path: Path) -> tuple[int, dict]:
    """Peak RSS (bytes) of ``medlim image info --jsonl path`` and its output row."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    return report["peak_kib"] * 1024, json.loads(report["out"].splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12_000, help="side of the square images (default 12000)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medlim-bench-memory-") as folder:
        tiny = Path(folder) / "tiny.png"
        write_png(tiny, 4, np.uint8)
        command, _ = measure(tiny)
        print(f"command on a 4×4 PNG: {command / 2**20:.0f} MiB")
        print(f"{'case':<10} {'file KiB':>9} {'peak MiB':>9} {'floor MiB':>10} {'ratio':>6}  result")
        for name in args.cases.split(","):
            suffix, write = CASES[name]
            path = Path(folder) / f"{name}.{suffix}"
            floor = write(path, args.size)
            peak, row = measure(path)
            ratio = (peak - command) / floor
            result = "decoded" if row["ok"] else row["error"]
            print(f"{name:<10} {path.stat().st_size / 1024:>9.0f} {peak / 2**20:>9.0f} {floor / 2**20:>10.0f} "
                  f"{ratio:>6.2f}  {result}")
            path.unlink()


if __name__ == "__main__":
    main()
