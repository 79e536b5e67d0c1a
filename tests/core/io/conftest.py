"""Fixtures for the image-input tests: a builder of small, exact DICOM files in memory."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

#: Digital Mammography X-Ray Image Storage - For Presentation.
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def build_dicom(
    stored: np.ndarray | None,
    *,
    bits_stored: int | None = None,
    signed: bool = False,
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
    **attributes: Any,
) -> bytes:
    """DICOM bytes holding ``stored`` ([H, W] uint8/uint16/int16, or [H, W, 3] uint8) and ``attributes``."""
    ds = Dataset()
    ds.SOPClassUID = attributes.pop("SOPClassUID", MG_FOR_PRESENTATION)
    ds.SOPInstanceUID = uid.generate_uid(entropy_srcs=["medlim-test"])
    ds.Modality = attributes.pop("Modality", "MG")
    if stored is not None:
        stored = np.asarray(stored)
        ds.Rows, ds.Columns = stored.shape[:2]
        ds.SamplesPerPixel = 3 if stored.ndim == 3 else 1
        if stored.ndim == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = stored.dtype.itemsize * 8
        ds.BitsStored = bits_stored or ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<")).tobytes()
        if uid.UID(transfer_syntax).is_compressed:
            ds.PixelData = encapsulate([ds.PixelData])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    if preamble:
        ds.preamble = b"\x00" * 128
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


@pytest.fixture
def make_dicom() -> Callable[..., bytes]:
    """:func:`build_dicom` as a fixture."""
    return build_dicom
