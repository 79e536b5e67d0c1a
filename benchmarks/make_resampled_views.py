"""Annotated family A views at a coarser pixel spacing, for measuring how a resampled view's map comes back
(``eval_bac_mapping.py``; README, "Pixel spacing").

Each full-size family A phantom (4096×3328 at 0.07 mm) is brought to ``--spacing`` mm by area averaging and
written as an MG DICOM stating that spacing, with its truth mask: a coarse pixel is BAC when at least half
of its area is BAC at 0.07 mm (the area rule the median mapping follows). Spacings that are not whole
multiples of 0.07 mm (0.12, 0.2) give the factors for which ``medlim.core.spacing.area_median`` is
approximate. The folder holds ``manifest.csv`` (``image,mask``), the layout ``medlim bac evaluate --data``
reads.

Run: ``python benchmarks/make_resampled_views.py OUT --spacing 0.2 --seed 90004 --n 8``, then
``python benchmarks/eval_bac_mapping.py --weights scunet-bac-dr:3 OUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["main", "resampled_phantom"]


def resampled_phantom(phantom, spacing_mm: float):
    """The phantom at ``spacing_mm``: image area-averaged, BAC truth at least half covered, other masks nearest."""
    import cv2

    factor = phantom.metadata.pixel_spacing_mm / spacing_mm
    size = (round(phantom.image.shape[1] * factor), round(phantom.image.shape[0] * factor))  # (width, height)

    def nearest(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    image = cv2.resize(phantom.image, size, interpolation=cv2.INTER_AREA)
    bac = cv2.resize(phantom.bac_mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    metadata = dataclasses.replace(phantom.metadata, pixel_spacing_mm=spacing_mm, shape=image.shape[:2])
    return dataclasses.replace(
        phantom, image=image, bac_mask=bac, breast_mask=nearest(phantom.breast_mask).astype(bool),
        pectoral_mask=nearest(phantom.pectoral_mask).astype(bool), lookalike_mask=nearest(phantom.lookalike_mask),
        label_mask=nearest(phantom.label_mask).astype(bool), metadata=metadata,
    )


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (created)")
    parser.add_argument("--spacing", type=float, required=True, help="pixel spacing of the written views in mm")
    parser.add_argument("--seed", type=int, default=90004, help="family A phantom seed (default 90004, validation)")
    parser.add_argument("--n", type=int, default=8, help="views (default 8)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["image,mask"]
    for index in range(args.n):
        phantom = resampled_phantom(generate_mammogram(seed=args.seed, index=index, size="full"), args.spacing)
        write_mammogram_dicom(phantom, args.out / f"view{index}.dcm")
        Image.fromarray(phantom.bac_mask.astype(np.uint8) * 255).save(args.out / f"view{index}_mask.png")
        rows.append(f"view{index}.dcm,view{index}_mask.png")
        print(f"[{index + 1}/{args.n}] {phantom.image.shape[0]}×{phantom.image.shape[1]}, "
              f"{int(phantom.bac_mask.sum())} BAC px", file=sys.stderr, flush=True)
    (args.out / "manifest.csv").write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
