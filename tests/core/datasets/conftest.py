"""Builders of tiny datasets on disk: distinct 32×32 PNGs, masks and a DICOM with pixel spacing."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest


def write_png(path: Path, value: int = 0, *, size: tuple[int, int] = (32, 32), dtype=np.uint8) -> Path:
    """A grey PNG whose pixels are all ``value`` except a corner pixel that makes it distinct per value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full(size, value % 200, dtype=dtype)
    pixels[0, 0] = 255 if dtype == np.uint8 else 65535
    pixels[-1, -1] = value // 200
    assert cv2.imwrite(str(path), pixels)
    return path


def write_mask(path: Path, *, foreground: bool, size: tuple[int, int] = (32, 32)) -> Path:
    """A binary mask: a 4×4 square of 255 when ``foreground``, else all zero."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, np.uint8)
    if foreground:
        mask[4:8, 4:8] = 255
    assert cv2.imwrite(str(path), mask)
    return path


def write_dicom(path: Path, value: int, *, spacing_mm: tuple[float, float] = (0.1, 0.1)) -> Path:
    """A 32×24 16-bit MG DICOM with PixelSpacing (no suffix needed: the reader sniffs the preamble)."""
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset

    stored = np.full((32, 24), value, np.uint16)
    stored[0, 0] = 4095
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = uid.generate_uid(entropy_srcs=["medlim-datasets", str(value)])
    ds.Modality = "MG"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = list(spacing_mm)
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def write_manifest(root: Path, header: str, rows: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def segmentation_folder(root: Path, count: int, *, patients: int | None = None) -> Path:
    """``count`` images with masks (odd ones with foreground) and an ``image,mask[,patient]`` manifest."""
    header = "image,mask" + (",patient" if patients else "")
    rows = []
    for index in range(count):
        write_png(root / "images" / f"{index:03d}.png", index)
        write_mask(root / "masks" / f"{index:03d}.png", foreground=bool(index % 2))
        patient = f",P{index % patients:02d}" if patients else ""
        rows.append(f"images/{index:03d}.png,masks/{index:03d}.png{patient}")
    write_manifest(root, header, rows)
    return root


def class_folders(root: Path, per_class: dict[str, int]) -> Path:
    """``DIR/<class>/<k>.png`` with distinct images."""
    value = 0
    for name, count in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            write_png(root / name / f"{index:03d}.png", value)
            value += 1
    return root


@pytest.fixture
def make() -> SimpleNamespace:
    """The builders above (``make.png(path, value)``, ``make.segmentation(root, 12)`` …)."""
    return SimpleNamespace(
        png=write_png,
        mask=write_mask,
        dicom=write_dicom,
        manifest=write_manifest,
        segmentation=segmentation_folder,
        class_folders=class_folders,
    )
