"""The bundled mammogram samples in ``data_samples/mammograms/``, regenerated from recorded seeds.

Issue 2 ("``data_samples/`` holds small samples generated from recorded seeds,
with a README stating how each was made") and issue 3 (mammogram phantoms).
``data_samples/README.md`` names the command: ``python -m medlim.phantoms.samples``.
Each sample's storage style is fixed here (not drawn) so the set always holds
a MONOCHROME1 file, an RLE file, JPEG 2000 files, 12/14/16-bit files and the
three ways of recording pixel spacing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["SAMPLE_SEED", "PNG_SEED", "DICOM_PLAN", "regenerate_samples"]

#: Seed of the DICOM sample patient (one patient, two yearly four-view exams).
SAMPLE_SEED = 20261130
#: Seed of the PNG samples (another patient, one exam; two of its views).
PNG_SEED = 20261137

#: index → (style name, transfer syntax, photometric override or None). Index order:
#: exam 0 LCC, RCC, LMLO, RMLO, then exam 1 in the same order.
DICOM_PLAN: dict[int, tuple[str, str, str | None]] = {
    0: ("C", "jpeg2000", None),  # 12-bit MONOCHROME2, linear window, PixelSpacing
    1: ("B", "jpeg2000", None),  # 14-bit MONOCHROME1, ImagerPixelSpacing + magnification
    2: ("A", "jpeg2000", None),  # 12-bit, VOI LUT function SIGMOID, both spacing tags
    3: ("D", "jpeg2000", "MONOCHROME2"),  # 16-bit, no window, rescale slope 2 / intercept −1000
    4: ("C", "rle", None),  # RLE Lossless
    5: ("A", "jpeg2000", "MONOCHROME1"),
    6: ("C", "jpeg2000", None),
    7: ("B", "jpeg2000", None),  # MONOCHROME1, 14-bit
}

_PARAMS: dict[str, Any] = {"size": "small", "years": 2, "bac_fraction": 1.0, "progress_fraction": 1.0}


def regenerate_samples(root: Path | None = None) -> list[Path]:
    """Write the mammogram samples under ``root/mammograms`` and return the image paths.

    Args:
        root: the samples folder; default ``data_samples/`` of the repository.

    Returns:
        Paths of the written images (8 DICOM files, 2 PNG files), each with
        ``_bac.png``, ``_breast.png`` and ``_lookalike.png`` masks beside it and
        a ``manifest.json``/``manifest.csv`` per folder.
    """
    from medlim.phantoms.base import write_manifest
    from medlim.phantoms.dicom import STYLES, write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram, write_mammogram

    if root is None:
        from medlim.settings import project_root

        root = project_root() / "data_samples"
    written: list[Path] = []

    dicom_dir = Path(root) / "mammograms" / "dicom"
    rows = []
    for index, (style_name, syntax, photometric) in DICOM_PLAN.items():
        phantom = generate_mammogram(seed=SAMPLE_SEED, index=index, **_PARAMS)
        style = dataclasses.replace(STYLES[style_name], transfer_syntax=syntax)
        if photometric:
            style = dataclasses.replace(style, photometric=photometric)
        # The regular writer writes masks and the manifest row; the image is then
        # rewritten with this sample's fixed style.
        row = write_mammogram(phantom, dicom_dir, fmt="dicom", transfer_syntax=syntax,
                              photometric=photometric or "auto")[0]
        path = write_mammogram_dicom(phantom, dicom_dir / row["file"], style=style)
        row.update({f"dicom_{k}": v for k, v in style.as_row().items()})
        rows.append({"index": index, **row})
        written.append(path)
    write_manifest(rows, dicom_dir, kind="mammogram", seed=SAMPLE_SEED, params=_PARAMS,
                   command="python -m medlim.phantoms.samples")

    png_dir = Path(root) / "mammograms" / "png"
    png_params = {"size": "small", "years": 1, "bac_fraction": 1.0, "progress_fraction": 0.7, "patient_offset": 1}
    rows = []
    for index in (0, 2):  # LCC and LMLO of the first exam
        phantom = generate_mammogram(seed=PNG_SEED, index=index, **png_params)
        row = write_mammogram(phantom, png_dir, fmt="png", png_bits=8)[0]
        rows.append({"index": index, **row})
        written.append(png_dir / row["file"])
    write_manifest(rows, png_dir, kind="mammogram", seed=PNG_SEED, params=png_params,
                   command="python -m medlim.phantoms.samples")
    return written


if __name__ == "__main__":  # pragma: no cover - the documented regeneration command
    for sample in regenerate_samples():
        print(sample)
