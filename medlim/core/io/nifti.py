"""2-D NIfTI images (``.nii``, ``.nii.gz``): what a Medical Segmentation Decathlon ``dataset.json`` names.

Issue 12 takes the Decathlon layout (``"training": [{"image": …, "label": …}]``)
for 2-D images, and Decathlon-style folders hold NIfTI files. This decoder reads a
single-file NIfTI-1 or NIfTI-2 image (plain or gzip-compressed) through nibabel's
header classes, under the reader's limits:

* the header is read first (540 bytes at most, from the gzip stream when
  compressed) and the declared size is checked against ``MEDLIM_MAX_PIXELS`` and
  the decode budget before any voxel is read; only as many bytes as the header
  declares are ever decompressed, so a small file cannot expand without bound;
* a 2-D image is ``dim`` = (X, Y) with any further dimensions of size 1
  (converters write 2-D images as X × Y × 1); one further dimension of size N > 1
  makes N frames (slices), chosen as a multi-frame DICOM's are; more is a volume
  and refused;
* the array is returned as rows × columns = Y × X, the transpose of the stored
  X-fastest order: NIfTI's first axis is the column (x), the way ITK, SimpleITK and
  nnU-Net's 2-D conversion write a PNG as NIfTI and viewers show it;
* the scaling (``scl_slope``, ``scl_inter``) is applied as nibabel applies it;
* the pixel spacing is ``pixdim`` 2 (rows) and 1 (columns) in the header's
  spatial unit (mm, µm or m, turned into mm); it is left unknown when the unit is
  not given, and when it is exactly 1 × 1 mm — the value ITK writes when an image
  has no spacing and nnU-Net's 2-D conversion writes for PNGs: a radiograph or a
  mammogram is never sampled at 1 mm, and a wrong spacing would resample it to a
  model's spacing fourteen-fold. (``pixel_spacing_source`` ``"NIfTI pixdim"``.)

Header-and-image pairs (``.hdr``/``.img``, magic ``ni1``) and colour (RGB24)
NIfTI are refused with a message saying what to export instead.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from typing import Any, BinaryIO

import numpy as np

from medlim.core.io.budget import DecodeCost, check_decode_budget
from medlim.errors import (
    CorruptFileError,
    MedlimError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from medlim.settings import Settings

__all__ = ["NIFTI_SPACING_SOURCE", "decode_nifti"]

#: ``pixel_spacing_source`` of a spacing read from a NIfTI header.
NIFTI_SPACING_SOURCE = "NIfTI pixdim"

#: mm per unit of the header's spatial unit (nibabel's names); other units leave the spacing unknown.
_MM_PER_UNIT = {"mm": 1.0, "micron": 1e-3, "meter": 1e3}

_HEADER_BYTES = 540  # NIfTI-2; NIfTI-1 is 348 (+4 extension bytes)


def _sizeof_hdr(head: bytes) -> int | None:
    for order in ("<", ">"):
        (size,) = struct.unpack(f"{order}i", head[:4])
        if size in (348, 540):
            return size
    return None


def _open_stream(source: bytes | BinaryIO) -> BinaryIO:
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    head = stream.read(2)
    stream.seek(0)
    if head == b"\x1f\x8b":  # gzip: a .nii.gz
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _read_header(stream: BinaryIO, *, name: str) -> Any:
    import nibabel

    head = stream.read(_HEADER_BYTES)
    size = _sizeof_hdr(head) if len(head) >= 4 else None
    if size is None or len(head) < size:
        raise UnsupportedFormatError(f"{name} is not a NIfTI image (no NIfTI-1 or NIfTI-2 header); medlim reads "
                                     "DICOM, PNG, TIFF, JPEG and 2-D NIfTI.")
    klass = nibabel.Nifti1Header if size == 348 else nibabel.Nifti2Header
    magic = head[344:348] if size == 348 else head[4:8]
    if magic[:3] in (b"ni1", b"ni2"):
        raise UnsupportedFormatError(f"{name} is the header of a NIfTI .hdr/.img pair; save the image as one .nii "
                                     "or .nii.gz file.")
    return klass.from_fileobj(io.BytesIO(head[:size]), check=False)


def _plane_and_frames(shape: tuple[int, ...], *, name: str) -> int:
    """The number of frames of an image of ``shape`` (X, Y, …): 1, or the one further dimension above 1."""
    if len(shape) < 2:
        raise UnsupportedFormatError(f"{name} is a 1-D NIfTI array ({shape}); medlim reads 2-D images.")
    extra = [size for size in shape[2:] if size != 1]
    if len(extra) > 1:
        raise UnsupportedFormatError(
            f"{name} is a NIfTI volume of {' × '.join(str(s) for s in shape)} voxels; medlim reads 2-D images "
            "(one slice per file, or one further dimension as frames)."
        )
    return extra[0] if extra else 1


def _spacing(header: Any) -> tuple[tuple[float, float] | None, str | None]:
    """``((row, column) mm, source)`` from ``pixdim``, or ``(None, None)`` (module docstring)."""
    zooms = header.get_zooms()
    unit = header.get_xyzt_units()[0]
    if len(zooms) < 2 or unit not in _MM_PER_UNIT:
        return None, None
    # pixdim is float32 (NIfTI-1): 0.07 reads 0.07000000030; six significant digits are what was written
    column, row = (float(f"{float(zooms[i]) * _MM_PER_UNIT[unit]:.6g}") for i in (0, 1))
    if not (np.isfinite(row) and np.isfinite(column) and row > 0 and column > 0) or (row, column) == (1.0, 1.0):
        return None, None
    return (row, column), NIFTI_SPACING_SOURCE


def decode_nifti(source: bytes | BinaryIO, *, name: str, frame: int | None, settings: Settings) -> Any:
    """Decode one 2-D image (or one slice) of a NIfTI-1/2 file, plain or gzip-compressed.

    Args:
        source: the whole file as bytes, or a binary file object open on it.
        name: file name for messages.
        frame: the slice of a file with several (``None``: the only one).
        settings: ``max_pixels`` and ``decode_budget_mb`` are the limits.

    Returns:
        An :class:`~medlim.core.io.record.ImageRecord` (``source_format`` ``"nifti"``), rows × columns = Y × X.

    Raises:
        UnsupportedFormatError, CorruptFileError, TruncatedFileError, ImageTooLargeError, DecodeBudgetError,
        MultiFrameError, ParameterError: with messages a person can act on.
    """
    from medlim.core.io.raster import _check_size, _choose_frame, _to_record

    try:
        stream = _open_stream(source)
        header = _read_header(stream, name=name)
        shape = tuple(int(s) for s in header.get_data_shape())
        dtype = header.get_data_dtype()
        if dtype.names is not None or dtype.kind not in "uifb":
            raise UnsupportedFormatError(f"{name} stores {dtype} voxels (colour or complex NIfTI); save the image "
                                         "as grey values, or as PNG.")
        count = _plane_and_frames(shape, name=name)
        width, height = shape[0], shape[1]
        _check_size(height, width, max_pixels=settings.max_pixels, name=name)
        index = _choose_frame(frame, count, name=name)
        voxels = int(np.prod(shape, dtype=np.int64))
        scaled = header.get_slope_inter()[0] not in (None, 1.0) or header.get_slope_inter()[1] not in (None, 0.0)
        cost = DecodeCost(height=height, width=width, decoded_bytes=height * width * max(dtype.itemsize, 4),
                          transient_bytes=voxels * dtype.itemsize * (3 if scaled else 2),
                          float_values=height * width)
        check_decode_budget(cost, name=name, settings=settings)
        data = np.asanyarray(header.data_from_fileobj(stream))
    except MedlimError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile, struct.error) as exc:
        raise TruncatedFileError(f"{name} ends before its image data does or is damaged (NIfTI, "
                                 f"{type(exc).__name__}); copy or export it again.") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptFileError(f"{name} is a damaged NIfTI file ({type(exc).__name__}); copy or export it "
                               "again.") from exc
    if data.size != voxels:
        raise TruncatedFileError(f"{name} ends before its image data does (NIfTI); copy or export it again.")
    planes = data.reshape(width, height, count, order="F")
    plane = np.ascontiguousarray(planes[:, :, index].T)
    if plane.dtype.byteorder not in ("=", "|"):
        plane = plane.astype(plane.dtype.newbyteorder("="))
    spacing, spacing_source = _spacing(header)
    return _to_record(plane, source_format="nifti", name=name, frame_count=count, frame_index=index,
                      pixel_spacing_mm=spacing, pixel_spacing_source=spacing_source)
