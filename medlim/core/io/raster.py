"""PNG, TIFF and JPEG decoding into an :class:`~medlim.core.io.record.ImageRecord`.

Issue 2 ("Image input"): PNG (8/16-bit), TIFF and JPEG exports of mammograms and
microscopy images. Display values are the stored values divided by the largest
value of the file's bit depth (``2**bits - 1``), as any image viewer shows them;
floating-point and signed TIFFs, which have no such range, are stretched from
their minimum to their maximum. Alpha channels are dropped. Rasters carry no
physical scale (a TIFF's dots-per-inch is not a size at the patient), so
``pixel_spacing_mm`` stays ``None``.

Issue 14 ("Hardening"): the memory a decode takes is estimated from the header
(PNG IHDR and JPEG SOF through Pillow, the TIFF page's IFD through tifffile)
and checked against ``MEDLIM_DECODE_BUDGET_MB`` before any pixel is decoded;
``pixels`` and ``raw`` are rendered lazily, one float32 image at a time; a float
image's NaN and infinite pixels are shown black, with a warning that counts them.
"""

from __future__ import annotations

import io
import re
import struct
import sys
import warnings
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from medlim.core.io.budget import DecodeCost, check_decode_budget
from medlim.core.io.record import DisplayWindow, ImageMetadata, ImageRecord
from medlim.errors import (
    CorruptFileError,
    ImageTooLargeError,
    MultiFrameError,
    ParameterError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from medlim.settings import Settings

__all__ = ["TILED_TIFF_HINT", "decode_raster", "nonfinite_warning", "significant_bits"]

#: Values per block of the chunked passes over an image (4 Mi: 32 MiB of float64 at a time).
_BLOCK_VALUES = 1 << 22

#: Pillow modes read as they are (others are converted to grey or RGB strip by strip).
_DIRECT_MODES = frozenset({"1", "L", "RGB", "I;16", "I;16L", "I;16B", "I;16N", "F", "I"})


def nonfinite_warning(count: int) -> str:
    """The plain-language warning for ``count`` pixels that are NaN or infinite."""
    if count == 1:
        return (
            "1 pixel is not a finite number (NaN or infinity); it is shown as black "
            "and left out of the display range."
        )
    return (
        f"{count:,} pixels are not finite numbers (NaN or infinity); they are shown as black "
        "and left out of the display range."
    )


#: Ends the refusal of a tiled TIFF too big to decode whole: where such a file is read instead (issue 16).
TILED_TIFF_HINT = (
    "It is a tiled TIFF: whole slides are read tile by tile by `medlim steatosis segment` and "
    "`medlim nuclei segment` and by the microscopy pages (Liver steatosis, Clumped nuclei)."
)


def _check_size(height: int, width: int, *, max_pixels: int, name: str, hint: str = "") -> None:
    if height <= 0 or width <= 0:
        raise ImageTooLargeError(f"{name} declares an image of {height}×{width} pixels, which is not a valid size.")
    if height * width > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {height}×{width} = {height * width:,} pixels, more than the limit of "
            f"{max_pixels:,} (MEDLIM_MAX_PIXELS); crop or downsample it first." + (f" {hint}" if hint else "")
        )


def _choose_frame(frame: int | None, count: int, *, name: str) -> int:
    if frame is None:
        if count > 1:
            raise MultiFrameError(
                f"{name} holds {count} images (pages/frames); an analysis reads one: choose one with "
                f"frame=0..{count - 1}, or export it as a file of its own (`medlim image info FILE --frame N` "
                "shows each).", count=count
            )
        return 0
    if not 0 <= int(frame) < count:
        raise ParameterError(f"frame must be in 0..{count - 1} for {name}; {frame!r} is given.")
    return int(frame)


# ------------------------------------------------------------------ display values


def _row_blocks(values: np.ndarray) -> Iterator[slice]:
    """Slices of whole rows holding about ``_BLOCK_VALUES`` values each."""
    rows = values.shape[0] if values.ndim else 0
    per_row = values.size // rows if rows else 1
    step = max(1, _BLOCK_VALUES // max(1, per_row))
    for start in range(0, rows, step):
        yield slice(start, start + step)


def _pixel_is_finite(block: np.ndarray) -> np.ndarray:
    """``[rows, W]`` bool: every channel of the pixel is a finite number."""
    finite = np.isfinite(block)
    return finite.all(axis=-1) if block.ndim == 3 else finite


def _finite_range(values: np.ndarray) -> tuple[float | None, float | None, int]:
    """``(low, high, non-finite pixels)`` over the finite values, in blocks (no image-sized copy)."""
    low = high = None
    nonfinite = 0
    for rows in _row_blocks(values):
        block = values[rows]
        if block.dtype.kind == "f":
            finite = _pixel_is_finite(block)
            kept = int(np.count_nonzero(finite))
            nonfinite += finite.size - kept
            if kept < finite.size:
                block = block[finite]
        if block.size == 0:
            continue
        block_low, block_high = float(block.min()), float(block.max())
        low = block_low if low is None else min(low, block_low)
        high = block_high if high is None else max(high, block_high)
    return low, high, nonfinite


def _stretch(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """``[low, high]`` → [0, 1] as float32; non-finite pixels and constant images are black."""
    out = np.zeros(values.shape, dtype=np.float32)
    if low is None or high is None or not high > low:
        return out
    scale = 1.0 / (high - low)
    for rows in _row_blocks(values):
        block = values[rows].astype(np.float64)
        block -= low
        block *= scale
        block[~_pixel_is_finite(block)] = 0.0
        np.clip(block, 0.0, 1.0, out=block)
        out[rows] = block
    return out


def _scaled(values: np.ndarray, factor: float) -> np.ndarray:
    """``values * factor`` as float32 in one pass (one image-sized array)."""
    return np.multiply(values, np.float32(factor), dtype=np.float32)


def _as_float32(values: np.ndarray) -> np.ndarray:
    """The values as float32; a float32 array is returned as it is (no copy)."""
    return np.asarray(values, dtype=np.float32)


def _equal_channels(rgb: np.ndarray) -> bool:
    """True when the three channels are identical: a grey image an exporter saved as RGB (a mammogram or
    radiograph PNG or JPEG of another chain). A strided look first, so colour images cost almost nothing."""
    if rgb.size == 0:
        return False
    sample = rgb[:: max(1, rgb.shape[0] // 64)]
    if not (np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2])):
        return False
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


#: Opaque colours at most this many (in a sample) make an image a drawing (a mask, labels), not a photograph.
_DRAWING_COLOURS = 16
_ALPHA_SAMPLE = 65_536


def _without_alpha(stored: np.ndarray) -> np.ndarray:
    """Grey + alpha or RGB + alpha without its alpha channel, what is transparent read as the background.

    An opaque alpha is dropped. When the colour is the same everywhere (black or white strokes drawn by
    transparency alone), the alpha channel is the image. Otherwise transparent pixels take the background
    of what the opaque ones are: black for a drawing (few colours: an annotation tool's mask on a transparent
    background, white or black underneath) and for a grey image (radiographs: air is black), white for a
    colour photograph (brightfield microscopy: glass is white, as a slide scanner's transparent margin is).
    """
    colour, alpha = stored[..., :-1], stored[..., -1]
    if alpha.size == 0 or alpha.min() == alpha.max():
        return colour
    if (colour == colour[:1, :1]).all():
        return np.ascontiguousarray(alpha)
    opaque = colour[alpha > 0]
    step = max(1, opaque.shape[0] // _ALPHA_SAMPLE)
    sample = opaque[::step].reshape(-1, colour.shape[-1]).astype(np.uint64)
    grey = colour.shape[-1] == 1 or bool((sample == sample[:, :1]).all())
    packed = sample[:, 0] if sample.shape[1] == 1 else (sample[:, 0] << 32) | (sample[:, 1] << 16) | sample[:, -1]
    drawing = np.unique(packed).size <= _DRAWING_COLOURS
    top = np.iinfo(colour.dtype).max if colour.dtype.kind in "ui" else 1.0
    background = np.zeros((), colour.dtype) if grey or drawing else np.asarray(top, dtype=colour.dtype)
    return np.where(alpha[..., None] > 0, colour, background)


def _grey_or_rgb(stored: np.ndarray, *, name: str) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3]``: alpha taken out (:func:`_without_alpha`), one channel squeezed, three
    identical channels read as grey."""
    if stored.ndim == 3:
        channels = stored.shape[2]
        if channels in (2, 4):  # grey + alpha, RGB + alpha
            stored = _without_alpha(stored)
            channels = 1 if stored.ndim == 2 else stored.shape[2]
            if stored.ndim == 2:
                return stored
        if channels == 1:
            stored = stored[..., 0]
        elif channels != 3:
            raise UnsupportedFormatError(f"{name} has {channels} channels per pixel; only grey and RGB are supported.")
        elif _equal_channels(stored):
            stored = np.ascontiguousarray(stored[..., 0])  # a grey image saved as RGB: grey, nothing lost
    elif stored.ndim != 2:
        raise UnsupportedFormatError(f"{name} decodes to an array of shape {stored.shape}, not a 2D image.")
    return stored


#: Depths a detector writes into a 16-bit file without scaling (12-bit and 14-bit mammography, 10-bit video).
_PARTIAL_DEPTHS = (10, 12, 14)


def significant_bits(stored: np.ndarray) -> int:
    """The bits an unsigned image uses: 10, 12 or 14 when a wider file's values all fit in them, else its width.

    A mammogram or radiograph exported as a 16-bit PNG, TIFF or NIfTI often keeps the detector's 12 or 14 bits
    unscaled (values up to 4,095 or 16,383); scaled by 65,535 it would read almost black (a 12-bit view
    becomes grey levels 0–16 of 255, and BAC is lost). Such a file is read as its detector's depth, as a DICOM
    file is read by its BitsStored. A genuinely dark 16-bit image (every value below 16,384) reads brighter; its
    stored values (``raw``) are unchanged.
    """
    width = stored.dtype.itemsize * 8
    if width <= 8 or stored.size == 0:
        return width
    peak = int(stored.max())
    return next((bits for bits in _PARTIAL_DEPTHS if peak < (1 << bits)), width)


def _to_record(
    stored: np.ndarray,
    *,
    source_format: str,
    name: str,
    frame_count: int,
    frame_index: int,
    pixel_spacing_mm: tuple[float, float] | None = None,
    pixel_spacing_source: str | None = None,
) -> ImageRecord:
    """Grey or colour record from a decoded raster (``[H, W]``, ``[H, W, C]``).

    ``pixel_spacing_mm`` and its source: what the file states (NIfTI's ``pixdim``), else ``None``.

    ``pixels`` and ``raw`` are rendered on first access (pure arithmetic on the
    decoded array), so a caller holds at most the decoded array and the float32
    images it asks for. Float images are stretched over their finite values;
    NaN and infinite pixels are black and counted in a warning.
    """
    stored = _grey_or_rgb(stored, name=name)
    notes: list[str] = []
    if stored.dtype == np.bool_:
        stored = stored.view(np.uint8)
        bits, top = 1, 1.0
    elif stored.dtype.kind == "u":
        bits = significant_bits(stored)
        top = float(2**bits - 1)
    else:
        bits, top = stored.dtype.itemsize * 8, None
    if top is None:
        low, high, nonfinite = _finite_range(stored)
        if nonfinite:
            notes.append(nonfinite_warning(nonfinite))

        def render_pixels() -> np.ndarray:
            return _stretch(stored, low, high)
    else:
        low, high = 0.0, top
        factor = 1.0 / top

        def render_pixels() -> np.ndarray:
            return _scaled(stored, factor)

    grey = stored.ndim == 2
    metadata = ImageMetadata(
        source_format=source_format,
        bits_stored=bits,
        photometric="MONOCHROME2" if grey else "RGB",
        number_of_frames=frame_count,
        frame_index=frame_index,
        pixel_spacing_mm=pixel_spacing_mm,
        pixel_spacing_source=pixel_spacing_source,
        warnings=tuple(notes),
        # What ``pixels`` is: raw / (2**bits - 1), or the finite range of a float image, stretched.
        display_window=DisplayWindow.value_range(low or 0.0, high if high is not None else 1.0) if grey else None,
    )
    return ImageRecord(
        metadata=metadata, name=name, render_pixels=render_pixels, render_raw=lambda: _as_float32(stored)
    )


# ---------------------------------------------------------------------- Pillow


def _pillow_plan(mode: str) -> tuple[str | None, int, int, int]:
    """``(convert_to, Pillow bytes/pixel, array bytes/pixel, channels shown)`` of a Pillow mode."""
    internal = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if mode in _DIRECT_MODES:
        array = {"1": 1, "L": 1, "RGB": 3, "F": 4, "I": 4}.get(mode, 2)
        return None, internal, array, 3 if mode == "RGB" else 1
    if mode in ("LA", "La"):
        return "LA", internal, 2, 1  # the alpha is read, then taken out (_without_alpha)
    if mode in ("RGBA", "RGBa", "PA"):
        return "RGBA", internal, 4, 3
    return "RGB", internal, 3, 3  # palette, CMYK, YCbCr, ...


def _pillow_cost(mode: str, *, height: int, width: int) -> DecodeCost:
    _convert, internal, array, channels = _pillow_plan(mode)
    pixels = height * width
    return DecodeCost(
        height=height,
        width=width,
        decoded_bytes=pixels * array,
        transient_bytes=pixels * internal,
        float_values=pixels * channels,
    )


def _pillow_array(image: Any) -> np.ndarray:
    """The decoded Pillow image as one numpy array, copied strip by strip.

    ``np.asarray(image)`` goes through ``tobytes()``, which holds the image
    twice more as bytes; strips keep that overhead to a few MiB.
    """
    convert_to = _pillow_plan(image.mode)[0]
    if image.mode == "P" and "transparency" in image.info:
        convert_to = "RGBA"  # a palette with a transparent entry: keep what is transparent
    width, height = image.size

    def strip(top: int, bottom: int) -> np.ndarray:
        part = image.crop((0, top, width, bottom))
        return np.asarray(part.convert(convert_to) if convert_to else part)

    first = strip(0, 1)
    out = np.empty((height, *first.shape[1:]), dtype=first.dtype)
    step = max(1, (_BLOCK_VALUES * 4) // max(1, first.nbytes))
    for top in range(0, height, step):
        bottom = min(height, top + step)
        out[top:bottom] = strip(top, bottom)
    if image.mode == "I" and out.size and out.min() >= 0 and out.max() <= 65535:
        return out.astype(np.uint16)  # Pillow opens some 16-bit greys as 32-bit "I"
    if out.dtype.byteorder not in ("=", "|"):
        return out.astype(out.dtype.newbyteorder("="))
    return out


def _exif_oriented(array: np.ndarray, image: Any) -> np.ndarray:
    """``array`` turned as the file's EXIF Orientation says it is shown (cameras and phones store JPEGs turned),
    so pixel coordinates (labels, CSV, GeoJSON) match what a viewer shows; unchanged without the tag."""
    try:
        orientation = int(image.getexif().get(0x0112, 1))
    except (AttributeError, TypeError, ValueError, OSError):
        return array
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
             7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, 1)}
    turn = turns.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def _wide_colour_png(stream: BinaryIO) -> int:
    """Channels of a 16-bit RGB (3) or RGBA (4) PNG, from its IHDR chunk; 0 for any other PNG."""
    position = stream.tell()
    stream.seek(0)
    head = stream.read(26)
    stream.seek(position)
    if len(head) < 26 or head[12:16] != b"IHDR" or head[24] != 16:
        return 0
    return {2: 3, 6: 4}.get(head[25], 0)


def _opencv_png(stream: BinaryIO, *, name: str) -> np.ndarray:
    """A 16-bit colour PNG decoded by OpenCV, its channels in RGB(A) order (size and budget checked already)."""
    import cv2

    stream.seek(0)
    decoded = cv2.imdecode(np.frombuffer(stream.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.ndim != 3:
        raise CorruptFileError(f"{name} looks like a 16-bit colour PNG but cannot be decoded; copy or export it again.")
    order = [2, 1, 0, 3][: decoded.shape[2]]
    return np.ascontiguousarray(decoded[..., order])


def _decode_with_pillow(
    source: bytes | BinaryIO, *, source_format: str, name: str, frame: int | None, settings: Settings
) -> ImageRecord:
    from PIL import Image

    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    # Pillow's own bomb limit (89 M px, an error at twice that) would refuse images MEDLIM_MAX_PIXELS allows, in
    # its words: ours is checked from the header below, so Pillow's stands above it
    Image.MAX_IMAGE_PIXELS = max(int(Image.MAX_IMAGE_PIXELS or 0), int(settings.max_pixels))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: we check sizes ourselves
            with Image.open(stream) as image:
                width, height = image.size
                _check_size(height, width, max_pixels=settings.max_pixels, name=name)
                count = int(getattr(image, "n_frames", 1) or 1)
                index = _choose_frame(frame, count, name=name)
                if index:
                    image.seek(index)
                wide = _wide_colour_png(stream) if source_format == "png" else 0
                if wide:  # 16-bit RGB(A): Pillow would keep 8 of the 16 bits; OpenCV keeps them all
                    check_decode_budget(DecodeCost(height=height, width=width, decoded_bytes=height * width * wide * 4,
                                                   transient_bytes=0, float_values=height * width * 3),
                                        name=name, settings=settings)
                    array = _opencv_png(stream, name=name)
                else:
                    check_decode_budget(_pillow_cost(image.mode, height=height, width=width), name=name,
                                        settings=settings)
                    image.load()
                    array = _exif_oriented(_pillow_array(image), image)
    except (ImageTooLargeError, MultiFrameError, ParameterError):
        raise
    except Image.DecompressionBombError as exc:  # over twice the limit: Pillow refuses before our header check
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)):,} pixels)" if found else ""
        raise ImageTooLargeError(f"{name} is larger{size} than the limit of {settings.max_pixels:,} pixels "
                                 "(MEDLIM_MAX_PIXELS); crop or downsample it first.") from exc
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
    return _to_record(array, source_format=source_format, name=name, frame_count=count, frame_index=index)


# ---------------------------------------------------------------------- TIFF


def _tiff_cost(page: Any, *, shape: tuple[int, ...], height: int, width: int, reordered: bool) -> DecodeCost:
    """The decoded page (every sample of every plane), a reordering copy, and the float32 image."""
    values = int(np.prod(shape, dtype=np.int64)) if shape else 0
    itemsize = page.dtype.itemsize if getattr(page, "dtype", None) is not None else 8
    decoded = values * itemsize
    return DecodeCost(
        height=height,
        width=width,
        decoded_bytes=decoded,
        transient_bytes=decoded if reordered else 0,
        float_values=values,
    )


def _decode_tiff(source: bytes | BinaryIO, *, name: str, frame: int | None, settings: Settings) -> ImageRecord:
    import tifffile

    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(stream) as tiff:
                pages = tiff.pages
                count = len(pages)
                if count == 0:
                    raise CorruptFileError(f"{name} is a TIFF file without any image.")
                index = _choose_frame(frame, count, name=name)
                page = pages[index]
                shape = tuple(int(size) for size in page.shape)
                planar_separate = int(getattr(page, "planarconfig", 1)) == 2 and len(shape) == 3
                height, width = (shape[1], shape[2]) if planar_separate else (shape[0], shape[1] if len(shape) > 1 else 1)
                hint = TILED_TIFF_HINT if getattr(page, "is_tiled", False) else ""
                _check_size(height, width, max_pixels=settings.max_pixels, name=name, hint=hint)
                swapped = tiff.byteorder != ("<" if sys.byteorder == "little" else ">")
                cost = _tiff_cost(page, shape=shape, height=height, width=width, reordered=planar_separate or swapped)
                check_decode_budget(cost, name=name, settings=settings, hint=hint)
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


def decode_raster(
    source: bytes | BinaryIO, *, source_format: str, name: str, frame: int | None, settings: Settings
) -> ImageRecord:
    """Decode a PNG, TIFF or JPEG file, after checking its size and decode budget from the header.

    Args:
        source: the whole file as bytes, or a binary file object open on it.
        source_format: ``"png"``, ``"tiff"`` or ``"jpeg"``.
        name: file name for messages.
        frame: page/frame of a multi-page file (``None``: the only one).
        settings: ``max_pixels`` and ``decode_budget_mb`` are the limits.

    Returns:
        An :class:`ImageRecord` (``pixels`` float32 in [0, 1], ``raw`` the stored values as float32).

    Raises:
        TruncatedFileError, CorruptFileError, UnsupportedFormatError, ImageTooLargeError,
        DecodeBudgetError, MultiFrameError, ParameterError: as their names say; messages say what to do.
    """
    if source_format == "tiff":
        return _decode_tiff(source, name=name, frame=frame, settings=settings)
    if source_format in ("png", "jpeg"):
        return _decode_with_pillow(source, source_format=source_format, name=name, frame=frame, settings=settings)
    raise UnsupportedFormatError(f"{name}: {source_format!r} is not a raster format medlim reads.")
