"""PNG, TIFF and JPEG decoding into an :class:`~medlim.core.io.record.ImageRecord`.

Issue 2 ("Image input"): PNG (8/16-bit), TIFF and JPEG exports of mammograms and
microscopy images. Display values are the stored values divided by the largest
value of the file's bit depth (``2**bits - 1``), as any image viewer shows them;
floating-point and signed TIFFs, which have no such range, are stretched from
their minimum to their maximum. Alpha channels are dropped. Rasters carry no
physical scale (a TIFF's dots-per-inch is not a size at the patient), so
``pixel_spacing_mm`` stays ``None``.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.core.io.windowing import apply_value_range
from medlim.errors import (
    CorruptFileError,
    ImageTooLargeError,
    MultiFrameError,
    ParameterError,
    TruncatedFileError,
    UnsupportedFormatError,
)

__all__ = ["decode_raster"]


def _check_size(height: int, width: int, *, max_pixels: int, name: str) -> None:
    if height <= 0 or width <= 0:
        raise ImageTooLargeError(f"{name} declares an image of {height}×{width} pixels, which is not a valid size.")
    if height * width > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {height}×{width} = {height * width:,} pixels, more than the limit of "
            f"{max_pixels:,} (MEDLIM_MAX_PIXELS); crop or downsample it first."
        )


def _choose_frame(frame: int | None, count: int, *, name: str) -> int:
    if frame is None:
        if count > 1:
            raise MultiFrameError(
                f"{name} holds {count} images (pages/frames); choose one with frame=0..{count - 1} "
                "(on the command line: --frame N)."
            )
        return 0
    if not 0 <= int(frame) < count:
        raise ParameterError(f"frame must be in 0..{count - 1} for {name}; {frame!r} is given.")
    return int(frame)


def _to_record(
    stored: np.ndarray,
    *,
    source_format: str,
    name: str,
    frame_count: int,
    frame_index: int,
) -> ImageRecord:
    """Grey or colour record from a decoded raster (``[H, W]``, ``[H, W, C]``)."""
    if stored.ndim == 3:
        channels = stored.shape[2]
        if channels in (2, 4):  # grey + alpha, RGB + alpha
            stored = stored[..., : channels - 1]
            channels -= 1
        if channels == 1:
            stored = stored[..., 0]
        elif channels != 3:
            raise UnsupportedFormatError(f"{name} has {channels} channels per pixel; only grey and RGB are supported.")
    elif stored.ndim != 2:
        raise UnsupportedFormatError(f"{name} decodes to an array of shape {stored.shape}, not a 2D image.")
    if stored.dtype == np.bool_:
        stored = stored.astype(np.uint8)
        bits, top = 1, 1.0
    elif stored.dtype.kind == "u":
        bits = stored.dtype.itemsize * 8
        top = float(2**bits - 1)
    else:
        bits, top = stored.dtype.itemsize * 8, None
    raw = stored.astype(np.float32)
    if top is None:
        pixels = apply_value_range(raw)
    else:
        pixels = raw * np.float32(1.0 / top)
    metadata = ImageMetadata(
        source_format=source_format,
        bits_stored=bits,
        photometric="RGB" if raw.ndim == 3 else "MONOCHROME2",
        number_of_frames=frame_count,
        frame_index=frame_index,
    )
    return ImageRecord(pixels=pixels, raw=raw, metadata=metadata, name=name)


def _decode_with_pillow(data: bytes, *, source_format: str, name: str, frame: int | None, max_pixels: int) -> ImageRecord:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: we check sizes ourselves
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            _check_size(height, width, max_pixels=max_pixels, name=name)
            count = int(getattr(image, "n_frames", 1) or 1)
            index = _choose_frame(frame, count, name=name)
            if index:
                image.seek(index)
            image.load()
    except (ImageTooLargeError, MultiFrameError, ParameterError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name} is too large to open safely ({exc}).") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        text = str(exc).lower()
        if "truncated" in text or "end of file" in text or isinstance(exc, EOFError):
            raise TruncatedFileError(
                f"{name} ends before its image data does (the {source_format.upper()} file is truncated); "
                "copy or export it again."
            ) from exc
        raise CorruptFileError(
            f"{name} looks like a {source_format.upper()} file but cannot be decoded ({type(exc).__name__}); "
            "it may be damaged: copy or export it again."
        ) from exc
    mode = image.mode
    if mode in ("L", "RGB", "I;16", "I;16L", "I;16B", "I;16N", "F", "I"):
        array = np.asarray(image)
    elif mode in ("LA", "La"):
        array = np.asarray(image.convert("L"))
    elif mode == "1":
        array = np.asarray(image).astype(bool)
    else:  # palette, CMYK, YCbCr, RGBA, ...
        array = np.asarray(image.convert("RGB"))
    if mode == "I" and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)  # Pillow opens some 16-bit greys as 32-bit "I"
    elif array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return _to_record(array, source_format=source_format, name=name, frame_count=count, frame_index=index)


def _decode_tiff(data: bytes, *, name: str, frame: int | None, max_pixels: int) -> ImageRecord:
    import tifffile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                pages = tiff.pages
                count = len(pages)
                if count == 0:
                    raise CorruptFileError(f"{name} is a TIFF file without any image.")
                index = _choose_frame(frame, count, name=name)
                page = pages[index]
                shape = tuple(int(size) for size in page.shape)
                planar_separate = int(getattr(page, "planarconfig", 1)) == 2 and len(shape) == 3
                height, width = (shape[1], shape[2]) if planar_separate else (shape[0], shape[1] if len(shape) > 1 else 1)
                _check_size(height, width, max_pixels=max_pixels, name=name)
                array = page.asarray()
    except (ImageTooLargeError, MultiFrameError, ParameterError, CorruptFileError):
        raise
    except (ValueError, ImportError, NotImplementedError) as exc:
        text = str(exc)
        if "imagecodecs" in text or isinstance(exc, (ImportError, NotImplementedError)):
            raise UnsupportedFormatError(
                f"{name} uses a TIFF compression that cannot be decoded here; export it uncompressed, "
                "or as PNG."
            ) from exc
        raise CorruptFileError(f"{name} is a damaged TIFF file ({type(exc).__name__}); copy or export it again.") from exc
    except (OSError, EOFError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise TruncatedFileError(
            f"{name} ends before its image data does or is damaged (TIFF, {type(exc).__name__}); "
            "copy or export it again."
        ) from exc
    if planar_separate and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return _to_record(np.ascontiguousarray(array), source_format="tiff", name=name, frame_count=count, frame_index=index)


def decode_raster(data: bytes, *, source_format: str, name: str, frame: int | None, max_pixels: int) -> ImageRecord:
    """Decode PNG, TIFF or JPEG bytes.

    Args:
        data: the whole file.
        source_format: ``"png"``, ``"tiff"`` or ``"jpeg"``.
        name: file name for messages.
        frame: page/frame of a multi-page file (``None``: the only one).
        max_pixels: refuse images with more pixels.

    Returns:
        An :class:`ImageRecord` (``pixels`` float32 in [0, 1], ``raw`` the stored values as float32).

    Raises:
        TruncatedFileError, CorruptFileError, UnsupportedFormatError, ImageTooLargeError,
        MultiFrameError, ParameterError: as their names say; messages say what to do.
    """
    if source_format == "tiff":
        return _decode_tiff(data, name=name, frame=frame, max_pixels=max_pixels)
    if source_format in ("png", "jpeg"):
        return _decode_with_pillow(data, source_format=source_format, name=name, frame=frame, max_pixels=max_pixels)
    raise UnsupportedFormatError(f"{name}: {source_format!r} is not a raster format medlim reads.")
