"""DICOM decoding: the grey-level pipeline in standard order, colour, metadata.

Issue 2 ("Image input") and METHODS.md §1 ("DICOM is converted to the 8-bit
image once, at the reader"). For grey images the order is that of DICOM PS3.4
Annex N / PS3.3 §C.11:

1. stored values, with Bits Stored respected (high bits masked, sign extended
   when Pixel Representation is 1);
2. modality LUT: Modality LUT Sequence, else Rescale Slope/Intercept (top level
   or the frame's Pixel Value Transformation) → ``ImageRecord.raw``;
3. VOI: VOI LUT Sequence, else the first Window Center/Width with the VOI LUT
   Function (LINEAR, LINEAR_EXACT, SIGMOID), else the image's own value range
   (minimum → black, maximum → white);
4. MONOCHROME1 inversion, then the Presentation LUT Shape: ``INVERSE`` asks for
   one inversion. For MONOCHROME1 the standard requires ``INVERSE`` and means the
   same inversion (PS3.3 C.8.11.6.1, "shall be used if MONOCHROME1"), so an image
   is inverted when it is MONOCHROME1 **or** its shape is INVERSE — never twice.

Colour (RGB, YBR_* converted to RGB by pydicom, PALETTE COLOR through its
palette) is scaled by the largest stored value. Compressed transfer syntaxes are
decoded by the installed pydicom plugins (GDCM, pylibjpeg-openjpeg,
pylibjpeg-rle, Pillow; never the GPL pylibjpeg-libjpeg).

Speed (``benchmarks/bench_io.py``): uncompressed little-endian grey frames are
viewed in place, not copied; rescale + linear window (the usual mammogram) is
one blocked float32 pass writing ``raw`` and ``pixels`` together; non-linear VOI
(SIGMOID, VOI LUT, Modality LUT) goes through a table over all 2**bits stored
patterns and one gather. No float64 image-sized array is ever made.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import math
import struct
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from medlim.core.io.budget import DecodeCost, check_decode_budget, check_held_bytes
from medlim.core.io.files import open_regular_file
from medlim.core.io.isolation import IsolatedCrash, IsolatedFailure, IsolatedTimeout, run_isolated
from medlim.core.io.pseudonym import patient_key
from medlim.core.io.record import DisplayWindow, ImageMetadata, ImageRecord
from medlim.core.io.windowing import (
    VOI_FUNCTIONS,
    apply_lut,
    apply_value_range,
    apply_window,
    linear_window_coefficients,
)
from medlim.errors import (
    CorruptFileError,
    ImageTooLargeError,
    InputError,
    MedlimError,
    MultiFrameError,
    NoPixelDataError,
    NotDicomImageError,
    ParameterError,
    TruncatedFileError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)
from medlim.settings import Settings

__all__ = [
    "FOR_PROCESSING_SOP_CLASSES",
    "FOR_PROCESSING_WARNING",
    "decode_dicom",
    "pixel_spacing",
    "mammography_view",
]

#: SOP classes whose images are "For Processing" (raw detector data).
FOR_PROCESSING_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
        "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image Storage - For Processing
        "1.2.840.10008.5.1.4.1.1.1.3.1",  # Digital Intra-Oral X-Ray Image Storage - For Processing
    }
)

#: Plain-language warning attached to "For Processing" images.
FOR_PROCESSING_WARNING = (
    "This is a 'For Processing' image (raw detector data), not the 'For Presentation' image "
    "a radiologist reads. Models trained on 'For Presentation' mammograms do not transfer to it: "
    "treat any analysis result as unreliable and use the 'For Presentation' image instead."
)

#: More frames than this is taken as a damaged Number of Frames.
_MAX_FRAMES = 100_000

# Errors pydicom raises while parsing a damaged value lazily.
_VALUE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    struct.error,
    UnicodeError,
    NotImplementedError,  # "Unknown Value Representation" in a damaged element
)

# Mammography view codes (SNOMED-RT "R-..." and SNOMED CT) → ViewPosition terms.
_VIEW_CODES: dict[str, str] = {
    "R-10242": "CC",
    "399162004": "CC",
    "R-10226": "MLO",
    "399368009": "MLO",
    "R-10224": "ML",
    "399260004": "ML",
}
_VIEW_MEANINGS: dict[str, str] = {
    "cranio-caudal": "CC",
    "medio-lateral oblique": "MLO",
    "medio-lateral": "ML",
    "latero-medial": "LM",
    "latero-medial oblique": "LMO",
    "caudo-cranial (from below)": "FB",
    "exaggerated cranio-caudal": "XCCL",
}


# --------------------------------------------------------------------------- values


def _get(ds: Any, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword)`` that returns ``default`` for a malformed value."""
    try:
        value = ds.get(keyword, default)
    except _VALUE_ERRORS:
        return default
    return default if value is None or value == "" else value


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _int(ds: Any, keyword: str, default: int | None = None) -> int | None:
    value = _first(_get(ds, keyword))
    try:
        return default if value is None else int(value)
    except _VALUE_ERRORS:
        return default


def _float(value: Any) -> float | None:
    value = _first(value)
    try:
        number = float(value)
    except _VALUE_ERRORS:
        return None
    return number if math.isfinite(number) else None


def _text(ds: Any, keyword: str) -> str | None:
    value = _first(_get(ds, keyword))
    if value is None:
        return None
    text = str(value).strip().upper()
    return text or None


def _frame_attribute(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    """``keyword`` from the frame's functional group ``sequence``, else the shared one (enhanced IODs)."""
    for groups_keyword, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = _get(ds, groups_keyword)
        try:
            item = groups[index] if groups is not None and len(groups) > index else None
            inner = _get(item, sequence) if item is not None else None
            if inner is not None and len(inner):
                value = _get(inner[0], keyword)
                if value is not None:
                    return value
        except _VALUE_ERRORS:
            continue
    return None


def _attribute(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    value = _get(ds, keyword)
    return value if value is not None else _frame_attribute(ds, frame, sequence, keyword)


# ------------------------------------------------------------------------- metadata


def pixel_spacing(ds: Any, *, frame: int = 0) -> tuple[tuple[float, float] | None, str | None]:
    """Physical pixel size, never guessed.

    Order: PixelSpacing (at the patient; for mammograms, at the breast) — also from
    the frame's Pixel Measures; else ImagerPixelSpacing ÷
    EstimatedRadiographicMagnificationFactor (at the breast, corrected for
    magnification); else ImagerPixelSpacing alone (at the detector).

    Args:
        ds: a pydicom Dataset.
        frame: frame whose functional groups to consult (enhanced IODs).

    Returns:
        ``((row_mm, column_mm), source)`` with ``source`` one of ``"PixelSpacing"``,
        ``"ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"``,
        ``"ImagerPixelSpacing"``; ``(None, None)`` when absent or invalid.
    """

    def pair(value: Any) -> tuple[float, float] | None:
        try:
            numbers = [float(item) for item in value] if value is not None else []
        except _VALUE_ERRORS:
            return None
        if len(numbers) != 2 or not all(math.isfinite(n) and n > 0 for n in numbers):
            return None
        return (numbers[0], numbers[1])

    spacing = pair(_attribute(ds, frame, "PixelMeasuresSequence", "PixelSpacing"))
    if spacing is not None:
        return spacing, "PixelSpacing"
    imager = pair(_get(ds, "ImagerPixelSpacing"))
    if imager is None:
        return None, None
    magnification = _float(_get(ds, "EstimatedRadiographicMagnificationFactor"))
    if magnification is not None and magnification > 0:
        return (imager[0] / magnification, imager[1] / magnification), (
            "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
        )
    return imager, "ImagerPixelSpacing"


def spacing_notes(ds: Any, *, frame: int, source: str | None) -> tuple[str, ...]:
    """Warnings about the spacing :func:`pixel_spacing` chose: a PixelSpacing present but unusable (what was
    used instead), and a detector spacing not corrected for magnification (areas in mm² a little too large)."""
    notes = []
    stated = _attribute(ds, frame, "PixelMeasuresSequence", "PixelSpacing")
    if stated is not None and source != "PixelSpacing":
        instead = "no spacing is used" if source is None else f"{source} is used instead"
        notes.append(f"The file's PixelSpacing ({str(stated)[:40]!r}) is not two positive numbers; {instead}.")
    if source == "ImagerPixelSpacing":
        notes.append("The pixel spacing is the detector's (ImagerPixelSpacing; the file gives no valid "
                     "EstimatedRadiographicMagnificationFactor): not corrected for magnification, so areas in mm² "
                     "are somewhat larger than at the breast.")
    return tuple(notes)


def mammography_view(ds: Any) -> str | None:
    """The view (``"CC"``, ``"MLO"``, ...) from ViewPosition, else ViewCodeSequence."""
    view = _text(ds, "ViewPosition")
    if view:
        return view
    codes = _get(ds, "ViewCodeSequence")
    try:
        item = codes[0] if codes is not None and len(codes) else None
    except _VALUE_ERRORS:
        item = None
    if item is None:
        return None
    code = str(_get(item, "CodeValue", "")).strip()
    if code in _VIEW_CODES:
        return _VIEW_CODES[code]
    meaning = str(_get(item, "CodeMeaning", "")).strip().lower()
    return _VIEW_MEANINGS.get(meaning)


def _study_date(ds: Any) -> str | None:
    value = _get(ds, "StudyDate")
    text = str(value).strip() if value is not None else ""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        return None


def _laterality(ds: Any) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = _text(ds, keyword)
        if value in ("L", "R"):
            return value
    return None


def _presentation_intent(ds: Any) -> str | None:
    intent = _text(ds, "PresentationIntentType")
    if intent in ("FOR PRESENTATION", "FOR PROCESSING"):
        return intent
    sop_class = str(_get(ds, "SOPClassUID", "")).strip()
    if sop_class in FOR_PROCESSING_SOP_CLASSES:
        return "FOR PROCESSING"
    return None


# --------------------------------------------------------------------------- parsing


def _parse(data: bytes | BinaryIO, *, name: str, force: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data, force=force)
    except InvalidDicomError as exc:
        raise UnsupportedFormatError(f"{name} is not a DICOM file (no 'DICM' marker at byte 128).") from exc
    except (EOFError, struct.error) as exc:
        raise TruncatedFileError(
            f"{name} ends in the middle of a DICOM element (the file is truncated); copy or export it again."
        ) from exc
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or type(exc).__name__}).") from exc
    except (*_VALUE_ERRORS, RecursionError, MemoryError) as exc:
        text = str(exc).lower()
        if any(word in text for word in ("end of file", "truncat", "not enough", "unexpected end", "fewer", "less than")):
            raise TruncatedFileError(
                f"{name} ends in the middle of a DICOM element (the file is truncated); copy or export it again."
            ) from exc
        raise CorruptFileError(
            f"{name} is a damaged DICOM file: its elements cannot be parsed ({type(exc).__name__}). "
            "Export it again from the PACS or modality."
        ) from exc
    # pydicom stops quietly (with a warning) when a sequence or the pixel data runs past the end.
    if any("end of file" in str(warning.message).lower() for warning in caught):
        raise TruncatedFileError(
            f"{name} ends before its data set does (the file is truncated); copy or export it again."
        )
    if not force and len(ds) == 0:
        raise TruncatedFileError(
            f"{name} ends right after its DICOM header, with no data set (the file is truncated); "
            "copy or export it again."
        )
    if force and not _plausible_dataset(ds):
        raise UnsupportedFormatError(
            f"{name} is not a DICOM, PNG, TIFF or JPEG file (it has no 'DICM' marker and its bytes do not "
            "form DICOM elements)."
        )
    return ds


def _plausible_dataset(ds: Any) -> bool:
    """A force-read data set is believed only if it holds standard elements a real file has."""
    try:
        tags = [int(tag) for tag in ds.keys()]
    except _VALUE_ERRORS:
        return False
    if not tags:
        return False
    known = {0x00080016, 0x00080018, 0x00080060, 0x00280010, 0x00280011, 0x7FE00010, 0x00100020, 0x0020000D}
    return len(known.intersection(tags)) >= 2


def _ensure_transfer_syntax(ds: Any, *, name: str, encapsulated: bool) -> str:
    """The transfer syntax UID, filling it in from the read encoding for files that lack it."""
    from pydicom import uid
    from pydicom.dataset import FileMetaDataset

    meta = getattr(ds, "file_meta", None)
    syntax = str(_get(meta, "TransferSyntaxUID", "")).strip() if meta is not None else ""
    if syntax:
        return syntax
    if encapsulated:
        raise UnsupportedTransferSyntaxError(
            f"{name} holds compressed pixels but does not say how they are compressed "
            "(no Transfer Syntax UID); export it again with its file meta information."
        )
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if not little:
        syntax = uid.ExplicitVRBigEndian
    else:
        syntax = uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return str(syntax)


def _check_decodable(syntax: str, *, name: str) -> None:
    from pydicom import uid
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        syntax_name = uid.UID(syntax).name if uid.UID(syntax).is_valid else syntax
        raise UnsupportedTransferSyntaxError(
            f"{name} is compressed as '{syntax_name}' ({syntax}), which medlim cannot decode; "
            "export it uncompressed or as JPEG 2000 / JPEG-LS / RLE."
        ) from exc
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"{name} is compressed as '{uid.UID(syntax).name}' and no decoder for it is installed "
            "(install python-gdcm and pylibjpeg-openjpeg / pylibjpeg-rle)."
        )


#: Decoder plugins to try first, per transfer syntax. GDCM aborts the whole process
#: (an uncaught C++ exception) on some damaged JPEG streams, so it is the last
#: resort wherever another decoder exists; it remains the only decoder here for
#: JPEG Lossless and JPEG-LS (the alternative, pylibjpeg-libjpeg, is GPL-3).
_PREFERRED_PLUGINS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("pillow",),  # JPEG Baseline: Pillow reads every 8-bit stream
    "1.2.840.10008.1.2.4.51": ("pillow", "gdcm"),  # JPEG Extended (8-bit; 12-bit below)
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pillow", "gdcm"),  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pillow", "gdcm"),  # JPEG 2000
    "1.2.840.10008.1.2.4.201": ("pylibjpeg",),  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": ("pylibjpeg",),  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": ("pylibjpeg",),  # HTJ2K
    "1.2.840.10008.1.2.5": ("pydicom", "pylibjpeg", "gdcm"),  # RLE Lossless
}


def _decode_frame(ds: Any, *, index: int, syntax: str, name: str, encapsulated: bool) -> np.ndarray:
    from pydicom.pixels import get_decoder, pixel_array

    available = set(get_decoder(syntax).available_plugins)
    plugins = [plugin for plugin in _PREFERRED_PLUGINS.get(syntax, ()) if plugin in available] or [""]
    failures: list[str] = []
    def decode_with(plugin: str) -> np.ndarray:
        def decode() -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pixel_array(ds, index=index, decoding_plugin=plugin)

        # GDCM may abort the process on a damaged stream: it runs in a child process.
        uses_gdcm = plugin == "gdcm" or (plugin == "" and "gdcm" in available)
        return run_isolated(decode) if uses_gdcm else decode()

    for plugin in plugins[:-1]:
        try:
            return decode_with(plugin)
        except (KeyboardInterrupt, SystemExit):
            raise
        except IsolatedTimeout as exc:
            raise _timeout_error(name, exc) from exc
        except BaseException as exc:  # noqa: BLE001 - the next plugin may succeed; the last one reports
            failures.append(f"{plugin}: {_decoder_reason(str(exc))}")
    try:
        return decode_with(plugins[-1])
    except (KeyboardInterrupt, SystemExit):
        raise
    except IsolatedTimeout as exc:
        raise _timeout_error(name, exc) from exc
    except BaseException as exc:  # noqa: BLE001 - see below
        # Decoder plugins are native code: a damaged stream surfaces as anything from a
        # ValueError to a Rust panic (pyo3 PanicException derives from BaseException).
        # This is the decoding boundary: all of them mean "these pixels cannot be decoded".
        text = "\n".join(["", *failures, f"{plugins[-1] or 'default'}: {_decoder_reason(str(exc))}"])
        lowered = text.lower()
        if "less than expected" in lowered or "truncat" in lowered or "fewer" in lowered:
            raise TruncatedFileError(
                f"{name} ends before its pixel data does (the file is truncated); copy or export it again."
            ) from exc
        if "does not support" in lowered or "no pixel data decoders" in lowered or "not supported" in lowered:
            if syntax == "1.2.840.10008.1.2.4.51":
                return _decode_jpeg_extended_with_gdcm(ds, index=index, name=name, cause=exc)
            raise UnsupportedTransferSyntaxError(
                f"{name}: the installed decoders cannot decode this compressed image "
                f"({_decoder_reason(text)}); export it uncompressed."
            ) from exc
        if encapsulated:
            raise CorruptFileError(
                f"{name}: the pixel data cannot be decoded; the compressed stream is damaged or incomplete "
                f"({_decoder_reason(text)}). Export it again."
            ) from exc
        raise CorruptFileError(
            f"{name}: the pixels cannot be read because an image description element is damaged "
            f"({type(exc).__name__}). Export it again."
        ) from exc


def _timeout_error(name: str, exc: IsolatedTimeout) -> CorruptFileError:
    """A decoder that ran out of time: a damaged stream it loops on, reported as such."""
    return CorruptFileError(
        f"{name}: decoding its compressed pixel data did not finish within {exc.timeout_s:g} s and was stopped; "
        "the stream is probably damaged. Export it again, or uncompressed."
    )


_LITTLE_ENDIAN_NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def _is_native_view(*, syntax: str, samples: int, bits_allocated: int, photometric: str | None) -> bool:
    """True when :func:`_native_frame` can view the frame in the Pixel Data bytes, without a copy."""
    return (
        syntax in _LITTLE_ENDIAN_NATIVE
        and samples == 1
        and bits_allocated in (8, 16)
        and sys.byteorder == "little"
        and photometric in ("MONOCHROME1", "MONOCHROME2")
    )


def _native_frame(
    ds: Any, *, index: int, syntax: str, rows: int, columns: int, samples: int, bits_allocated: int, signed: bool
) -> np.ndarray | None:
    """A read-only view of one uncompressed little-endian grey frame, without copying.

    pydicom's decoder copies the frame; for the common case (8/16-bit grey,
    uncompressed) a view on the Pixel Data bytes is enough, since the pipeline
    never writes into ``stored``. ``None`` when the case is not that simple.
    """
    photometric = _text(ds, "PhotometricInterpretation")
    if not _is_native_view(syntax=syntax, samples=samples, bits_allocated=bits_allocated, photometric=photometric):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
    frame_values = rows * columns
    data = ds.PixelData
    if len(data) < (index + 1) * frame_values * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype=dtype, count=frame_values, offset=index * frame_values * dtype.itemsize).reshape(
        rows, columns
    )


def _decoder_reason(text: str) -> str:
    """The decoders' own reasons, one line (they name codecs and precisions, never patient data)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[1:] if len(lines) > 1 else lines)[:300] or "no reason given"


def _decode_jpeg_extended_with_gdcm(ds: Any, *, index: int, name: str, cause: BaseException) -> np.ndarray:
    """12-bit JPEG Extended (1.2.840.10008.1.2.4.51) through GDCM's own 12-bit codec.

    pydicom's GDCM plugin declines 12-bit JPEG Extended, but GDCM ships an IJG
    12-bit decoder; it is reached by handing GDCM the frame as a one-fragment
    image. Only Pillow (8-bit) and GDCM are installed: the GPL pylibjpeg-libjpeg is not.
    """
    try:
        import gdcm
        from pydicom.encaps import get_frame
    except ImportError as exc:
        raise UnsupportedTransferSyntaxError(
            f"{name} is 12-bit JPEG Extended and GDCM is not installed to decode it."
        ) from exc
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    frames = _int(ds, "NumberOfFrames", 1) or 1

    def decode() -> bytes:
        fragment_bytes = get_frame(ds.PixelData, index, number_of_frames=frames)
        fragment = gdcm.Fragment()
        fragment.SetByteStringValue(fragment_bytes)
        fragments = gdcm.SequenceOfFragments.New()
        fragments.AddFragment(fragment)
        element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
        element.SetValue(fragments.__ref__())
        image = gdcm.Image()
        image.SetNumberOfDimensions(2)
        image.SetDimensions((columns, rows, 1))
        image.SetDataElement(element)
        image.SetPixelFormat(gdcm.PixelFormat(samples, 16, int(ds.BitsStored), int(ds.BitsStored) - 1, 0))
        photometric = gdcm.PhotometricInterpretation.GetPIType(str(ds.PhotometricInterpretation))
        image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
        image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
        buffer = image.GetBuffer()
        if buffer is None:
            raise ValueError("GDCM returned no pixels")
        return buffer.encode("utf-8", "surrogateescape") if isinstance(buffer, str) else bytes(buffer)

    try:
        raw = run_isolated(decode)  # GDCM may abort the process on a damaged stream
    except IsolatedTimeout as exc:
        raise _timeout_error(name, exc) from exc
    except (IsolatedCrash, IsolatedFailure) as exc:
        raise CorruptFileError(
            f"{name} is 12-bit JPEG Extended and its stream cannot be decoded; it is damaged "
            f"({_decoder_reason(str(cause))}; GDCM: {exc})."
        ) from exc
    expected = rows * columns * samples * 2
    if len(raw) < expected:
        raise CorruptFileError(f"{name}: the 12-bit JPEG stream decodes to too few pixels; it is damaged.")
    array = np.frombuffer(raw[:expected], dtype=np.uint16)
    return array.reshape((rows, columns, samples) if samples > 1 else (rows, columns))


# ------------------------------------------------------------------------ grey chain


def _stored_values(patterns: np.ndarray, *, bits_stored: int, signed: bool) -> np.ndarray:
    """Stored values (int64) of raw bit patterns: high bits masked, sign extended."""
    values = patterns.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        half = 1 << (bits_stored - 1)
        values = np.where(values >= half, values - (1 << bits_stored), values)
    return values


def stray_bits_note(bits_stored: int) -> str:
    """The warning for grey pixels with bits set above ``BitsStored`` (read, as the standard says, without them)."""
    return (f"Some pixel values use bits above the file's BitsStored ({bits_stored}); they were read from the low "
            f"{bits_stored} bits only, as the DICOM standard says. If the image looks wrong (bright areas turned dark), "
            "the file's BitsStored is probably wrong: export the image again.")


def _has_stray_bits(stored: np.ndarray, *, bits_stored: int, signed: bool) -> bool:
    """True when some value lies outside what ``bits_stored`` bits can hold (high bits set)."""
    if stored.size == 0 or bits_stored >= stored.dtype.itemsize * 8:
        return False
    low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    return int(stored.min()) < low or int(stored.max()) > high


def _affine(values: np.ndarray, *, alpha: float, beta: float) -> np.ndarray:
    """``values * alpha + beta`` as a new float32 array, in one pass for 2D images.

    OpenCV's ``addWeighted`` converts and scales in one vectorised pass; the numpy
    equivalent (``astype`` then two in-place ops) makes three (benchmarks/bench_io.py).
    """
    if alpha == 1.0 and beta == 0.0:
        return values.astype(np.float32)
    if values.ndim == 2 and values.size and values.dtype in _CV_DTYPES:
        import cv2

        source = np.ascontiguousarray(values)
        return cv2.addWeighted(source, float(alpha), source, 0.0, float(beta), dtype=cv2.CV_32F)
    out = values.astype(np.float32)
    if alpha != 1.0:
        out *= np.float32(alpha)
    if beta != 0.0:
        out += np.float32(beta)
    return out


_CV_DTYPES = tuple(np.dtype(name) for name in ("uint8", "int8", "uint16", "int16", "float32"))


def _clip_unit(values: np.ndarray) -> np.ndarray:
    """Clip float32 values to [0, 1] in place."""
    return np.clip(values, 0.0, 1.0, out=values)


@dataclass(frozen=True)
class _Modality:
    """Modality LUT stage: rescale slope/intercept, or a Modality LUT Sequence (via pydicom)."""

    slope: float = 1.0
    intercept: float = 0.0
    lut_dataset: Any = None

    @property
    def is_affine(self) -> bool:
        return self.lut_dataset is None

    def apply(self, values: np.ndarray) -> np.ndarray:
        if self.is_affine:
            return _affine(values, alpha=self.slope, beta=self.intercept)
        from pydicom.pixels import apply_modality_lut

        try:
            return np.asarray(apply_modality_lut(values, self.lut_dataset), dtype=np.float32)
        except _VALUE_ERRORS as exc:
            raise CorruptFileError(
                f"The file's Modality LUT cannot be applied ({type(exc).__name__}); it is damaged."
            ) from exc


@dataclass(frozen=True)
class _Voi:
    """VOI stage: ``"lut"`` (VOI LUT Sequence), ``"window"`` (centre/width) or ``"range"``."""

    kind: str
    center: float = 0.0
    width: float = 1.0
    function: str = "LINEAR"
    table: np.ndarray | None = None
    first_mapped: int = 0
    bits: int = 16

    def linear_coefficients(self, image_range: tuple[float, float]) -> tuple[float, float] | None:
        """``(low, scale)`` with display = clip((x - low) * scale, 0, 1), or ``None`` if not linear."""
        if self.kind == "range":
            low, high = image_range
            return (low, 1.0 / (high - low)) if high > low else (low, 0.0)
        if self.kind == "window":
            return linear_window_coefficients(center=self.center, width=self.width, function=self.function)
        return None

    def apply(self, values: np.ndarray, image_range: tuple[float, float] | None) -> np.ndarray:
        if self.kind == "lut":
            assert self.table is not None  # _voi_stage makes a "lut" stage only with its table
            return apply_lut(values, lut=self.table, first_mapped=self.first_mapped, output_bits=self.bits)
        if self.kind == "window":
            return apply_window(values, center=self.center, width=self.width, function=self.function)
        if image_range is None:
            return apply_value_range(values)
        return apply_value_range(values, low=image_range[0], high=image_range[1])


def _modality_stage(ds: Any, *, frame: int, warnings_out: list[str]) -> _Modality:
    if _get(ds, "ModalityLUTSequence") is not None:
        return _Modality(lut_dataset=ds)
    slope = _float(_attribute(ds, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _float(_attribute(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope == 0.0:
        warnings_out.append("The file's Rescale Slope is 0, which would blank the image; it was ignored (slope 1).")
        slope = None
    return _Modality(slope=1.0 if slope is None else slope, intercept=0.0 if intercept is None else intercept)


def _voi_stage(ds: Any, *, frame: int, signed: bool, warnings_out: list[str]) -> _Voi:
    lut_sequence = _get(ds, "VOILUTSequence")
    item = None
    try:
        if lut_sequence is not None and len(lut_sequence):
            item = lut_sequence[0]
    except _VALUE_ERRORS:
        item = None
    descriptor = _get(item, "LUTDescriptor") if item is not None else None
    lut_data = _get(item, "LUTData") if item is not None else None
    if descriptor is not None and lut_data is not None:
        try:
            entries, first_mapped, bits = (int(value) for value in list(descriptor)[:3])
        except (*_VALUE_ERRORS, StopIteration):
            entries = first_mapped = bits = -1
        if entries >= 0 and 1 <= bits <= 16:
            entries = entries or 65536
            if signed and first_mapped >= 32768:
                first_mapped -= 65536  # US-encoded descriptor of a signed image
            if isinstance(lut_data, (bytes, bytearray)):
                order = "<" if getattr(ds, "is_little_endian", True) in (True, None) else ">"
                table = np.frombuffer(bytes(lut_data), dtype=np.dtype(f"{order}u2")).astype(np.int64)
            else:
                table = np.asarray(lut_data if not np.isscalar(lut_data) else [lut_data], dtype=np.int64)
            table = table[:entries]
            if table.size:
                return _Voi(kind="lut", table=table, first_mapped=first_mapped, bits=bits)
        warnings_out.append("The file's VOI LUT is malformed; the window centre/width or value range was used instead.")
    center = _float(_attribute(ds, frame, "FrameVOILUTSequence", "WindowCenter"))
    width = _float(_attribute(ds, frame, "FrameVOILUTSequence", "WindowWidth"))
    function = _first(_attribute(ds, frame, "FrameVOILUTSequence", "VOILUTFunction"))
    function = str(function).strip().upper() if function else "LINEAR"
    if function not in VOI_FUNCTIONS:
        warnings_out.append(f"Unknown VOI LUT Function {function!r}; LINEAR was used.")
        function = "LINEAR"
    if center is not None and width is not None:
        if width >= 1.0 or (function != "LINEAR" and width > 0):
            return _Voi(kind="window", center=center, width=width, function=function)
        warnings_out.append(f"The file's window width {width} is invalid; the image's value range was used.")
    return _Voi(kind="range")


def _grey_renderers(
    stored: np.ndarray,
    *,
    bits_stored: int,
    signed: bool,
    modality: _Modality,
    voi: _Voi,
    invert: bool,
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], tuple[float, float] | None]:
    """``(render_pixels, render_raw, value_range)`` of a grey frame, each render making one float32 image on first use.

    ``value_range`` is the ``(low, high)`` of ``raw`` stretched to black–white
    when the VOI stage is ``"range"`` (``None`` otherwise), so the reader can
    record what it applied (:class:`medlim.core.io.record.DisplayWindow`).

    Everything that can fail (a Modality LUT, the value range, the display
    table) runs now, so the reader still reports every error itself; what is
    deferred is pure arithmetic: an affine pass or a gather through a table
    over all bit patterns. The record thus never holds two float32 images it
    was not asked for (issue 14: decoded array + one float32 image).
    """
    deferred = _deferred_rescale_and_window(
        stored, bits_stored=bits_stored, signed=signed, modality=modality, voi=voi, invert=invert
    )
    if deferred is not None:
        return deferred
    if stored.dtype.byteorder == ">":  # big-endian files: swap once to native order
        stored = stored.astype(stored.dtype.newbyteorder("="))
    if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:
        return _table_renderers(
            stored, bits_stored=bits_stored, signed=signed, modality=modality, voi=voi, invert=invert
        )
    if stored.dtype.kind in "ui" and _has_stray_bits(stored, bits_stored=bits_stored, signed=signed):
        stored = _stored_values(stored, bits_stored=bits_stored, signed=signed).astype(
            np.int64 if bits_stored > 31 else np.int32
        )
    if modality.is_affine:
        return _affine_renderers(stored, modality=modality, voi=voi, invert=invert)
    raw = modality.apply(stored)  # a Modality LUT can fail: applied now
    image_range = _value_range(raw)

    def render_pixels() -> np.ndarray:
        return _display(voi.apply(raw, image_range), invert=invert)

    return render_pixels, lambda: raw, image_range if voi.kind == "range" else None


def _display(values: np.ndarray, *, invert: bool) -> np.ndarray:
    """float32 display values, inverted in place when asked (``1 - v``)."""
    values = values.astype(np.float32, copy=False)
    return np.subtract(np.float32(1.0), values, out=values) if invert else values


def _linear_display(
    values: np.ndarray, *, modality: _Modality, coefficients: tuple[float, float], invert: bool
) -> np.ndarray:
    """Rescale + linear window of ``values`` (stored units) in one affine pass, clipped to [0, 1]."""
    low, scale = coefficients
    alpha, beta = scale * modality.slope, (modality.intercept - low) * scale
    if invert:
        alpha, beta = -alpha, 1.0 - beta
    return _clip_unit(_affine(values, alpha=alpha, beta=beta))


def _affine_renderers(
    stored: np.ndarray, *, modality: _Modality, voi: _Voi, invert: bool
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], tuple[float, float] | None]:
    """Renderers for wide integers (32/64-bit) under a rescale; the range comes from the extremes."""
    image_range = _rescaled_range(stored, modality) if voi.kind == "range" else None
    coefficients = voi.linear_coefficients(image_range or (0.0, 0.0))

    def render_raw() -> np.ndarray:
        return modality.apply(stored)

    if coefficients is not None:
        return (
            lambda: _linear_display(stored, modality=modality, coefficients=coefficients, invert=invert)
        ), render_raw, image_range

    def render_pixels() -> np.ndarray:
        return _display(voi.apply(modality.apply(stored), image_range), invert=invert)

    return render_pixels, render_raw, image_range


def _table_renderers(
    stored: np.ndarray, *, bits_stored: int, signed: bool, modality: _Modality, voi: _Voi, invert: bool
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], tuple[float, float] | None]:
    """Renderers of a ≤16-bit frame: ``raw`` and ``pixels`` are gathers through tables over all bit patterns.

    Stray high bits are masked (and the sign extended) in the table, not in a
    copy of the image; the value range is taken over the patterns present.
    """
    patterns = _patterns(stored)
    every_pattern = np.arange(1 << (8 * stored.dtype.itemsize), dtype=np.int64)
    values = _stored_values(every_pattern, bits_stored=bits_stored, signed=signed)
    modality_table = _modality_table(values, modality=modality, dtype=stored.dtype)
    image_range = _present_range(modality_table, patterns) if voi.kind == "range" else None
    coefficients = voi.linear_coefficients(image_range or (0.0, 0.0)) if modality.is_affine else None
    if coefficients is not None:
        in_dtype = _in_dtype(values, stored.dtype).reshape(1, -1)
        display_table = _linear_display(in_dtype, modality=modality, coefficients=coefficients, invert=invert).ravel()
    else:
        display_table = _display(voi.apply(modality_table, image_range), invert=invert)
    return (lambda: display_table[patterns]), (lambda: modality_table[patterns]), image_range


def _in_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in the image's own integer type when they fit (so the table's arithmetic is the image's)."""
    info = np.iinfo(dtype)
    return values.astype(dtype) if values.min() >= info.min and values.max() <= info.max else values


def _modality_table(values: np.ndarray, *, modality: _Modality, dtype: np.dtype) -> np.ndarray:
    """float32 modality values of every stored value (index = bit pattern)."""
    if modality.is_affine:
        return modality.apply(_in_dtype(values, dtype).reshape(1, -1)).ravel()
    return modality.apply(values).astype(np.float32, copy=False)


def _present_range(table: np.ndarray, patterns: np.ndarray) -> tuple[float, float]:
    """Lowest and highest ``table`` value over the patterns in the image, in row blocks (no full gather)."""
    low, high = math.inf, -math.inf
    step = max(1, _BLOCK_VALUES // max(1, patterns.size // max(1, patterns.shape[0])))
    for start in range(0, patterns.shape[0], step):
        block = table[patterns[start : start + step]]
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high


#: Values per block of the chunked passes over an image.
_BLOCK_VALUES = 1 << 22


def _deferred_rescale_and_window(
    stored: np.ndarray, *, bits_stored: int, signed: bool, modality: _Modality, voi: _Voi, invert: bool
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], tuple[float, float] | None] | None:
    """The fastest path of :func:`_grey_renderers` (cv2 affine passes), or None.

    Returns ``(render_pixels, render_raw)``: ``pixels`` is one affine pass from
    the stored values (rescale and linear window folded into ``alpha·s + beta``,
    then clipped), ``raw`` one rescale pass, each run on first access.
    Only the common, failure-free case is deferred: native-order 2-D integer
    frames without stray high bits, an affine modality stage and a linear
    window or the image's own value range (found from the stored extremes, as
    the rescale is monotone). Other cases go through :func:`_table_renderers`
    or :func:`_affine_renderers`.
    """
    if not (
        modality.is_affine
        and voi.kind in ("window", "range")
        and stored.ndim == 2
        and stored.dtype.kind in "ui"
        and stored.dtype.byteorder != ">"
    ):
        return None
    if bits_stored < 8 * stored.dtype.itemsize and _has_stray_bits(stored, bits_stored=bits_stored, signed=signed):
        return None
    image_range = _rescaled_range(stored, modality) if voi.kind == "range" else (0.0, 0.0)
    coefficients = voi.linear_coefficients(image_range)
    if coefficients is None:
        return None

    def render_pixels() -> np.ndarray:
        return _linear_display(stored, modality=modality, coefficients=coefficients, invert=invert)

    def render_raw() -> np.ndarray:
        return modality.apply(stored)

    return render_pixels, render_raw, image_range if voi.kind == "range" else None


def _rescaled_range(stored: np.ndarray, modality: _Modality) -> tuple[float, float]:
    """Lowest and highest value of ``modality.apply(stored)`` without making it.

    An affine rescale is monotone, so the extremes of ``raw`` are the rescaled
    stored extremes; they go through the same function, in the image's own dtype
    and shape class (2-D), so they equal what the full rescale gives.
    """
    extremes = modality.apply(np.array([[stored.min(), stored.max()]], dtype=stored.dtype))
    return float(extremes.min()), float(extremes.max())


def _value_range(raw: np.ndarray) -> tuple[float, float] | None:
    if raw.size == 0:
        return None
    return float(raw.min()), float(raw.max())


def _patterns(stored: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(stored).view(np.uint8 if stored.dtype.itemsize == 1 else np.uint16)


# -------------------------------------------------------------------------- decoding


def decode_dicom(
    data: bytes | Path | BinaryIO,
    *,
    name: str,
    frame: int | None,
    settings: Settings,
) -> ImageRecord:
    """Decode a DICOM file into a display-ready record with non-identifying metadata.

    The file's size and then the memory its decode takes (estimated from Rows,
    Columns, Samples per Pixel, Bits Allocated and the transfer syntax) are
    checked against ``MEDLIM_DECODE_BUDGET_MB`` before any pixel is decoded.

    Args:
        data: the whole file, its path (a regular file), or a binary file object
            open on it (read by pydicom directly: no copy of the file is held).
        name: file name for messages and the record.
        frame: frame of a multi-frame image; ``None`` is only valid for one frame.
        settings: limits (``max_pixels``, ``decode_budget_mb``) and the pseudonym secret.

    Returns:
        An :class:`ImageRecord`: ``pixels`` float32 in [0, 1] ([H, W] or [H, W, 3]),
        ``raw`` float32 modality values.

    Raises:
        UnsupportedFormatError, TruncatedFileError, CorruptFileError, NotDicomImageError,
        NoPixelDataError, UnsupportedTransferSyntaxError, ImageTooLargeError,
        DecodeBudgetError, MultiFrameError, ParameterError, InputError.
    """
    if isinstance(data, Path):
        with open_regular_file(data) as handle:
            return decode_dicom(handle, name=name, frame=frame, settings=settings)
    # pydicom warns and logs about malformed values, quoting them (a patient's name or
    # ID among them): silence the warnings here and keep such records from log handlers.
    _install_log_filter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode_dicom(data, name=name, frame=frame, settings=settings)
    except Exception as exc:
        # pydicom parses element values lazily, so a damaged element can raise any of
        # its exception types wherever it is first touched. Those (and only those:
        # an exception raised in medlim's own code is a bug and propagates) mean a
        # damaged file.
        if isinstance(exc, MedlimError) or not _raised_in_third_party(exc):
            raise
        raise CorruptFileError(
            f"{name} is a damaged DICOM file: an element cannot be parsed ({type(exc).__name__}). "
            "Export it again from the PACS or modality."
        ) from exc


def _raised_in_third_party(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is in pydicom or a decoder package."""
    trace = exc.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    filename = trace.tb_frame.f_code.co_filename.replace("\\", "/")
    return any(f"/{package}/" in filename for package in ("pydicom", "gdcm", "pylibjpeg", "openjpeg", "rle", "PIL"))


class _NoValueQuotesFilter(logging.Filter):
    """Drops pydicom log records that quote element values (value validation, VR repairs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "value" not in message.lower()


def _install_log_filter() -> None:
    """Attach :class:`_NoValueQuotesFilter` to pydicom's logger once (on first use, not at import)."""
    logger = logging.getLogger("pydicom")
    if not any(isinstance(existing, _NoValueQuotesFilter) for existing in logger.filters):
        logger.addFilter(_NoValueQuotesFilter())


def _head_and_size(data: bytes | BinaryIO) -> tuple[bytes, int]:
    """The first 132 bytes and the size of the file (a file object is left at 0)."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data[:132]), len(data)
    head = data.read(132)
    size = data.seek(0, io.SEEK_END)
    data.seek(0)
    return head, size


def _dicom_cost(
    *, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str, view: bool,
    encapsulated: bool, file_bytes: int,
) -> DecodeCost:
    """Memory of one frame's decode: the file pydicom holds, the frame, a decoder buffer, one float32 image.

    ``view``: the frame is viewed in the Pixel Data bytes (:func:`_native_frame`), not copied.
    """
    pixels = rows * columns
    frame_bytes = pixels * samples * max(1, bits_allocated // 8)  # 1-bit frames are unpacked to bytes
    palette = photometric == "PALETTE COLOR"
    return DecodeCost(
        height=rows,
        width=columns,
        decoded_bytes=(0 if view else frame_bytes) + (pixels * 3 * 2 if palette else 0),
        transient_bytes=frame_bytes if encapsulated else 0,  # the decoder's own buffer (or GDCM's answer)
        float_values=pixels * (3 if samples == 3 or palette else 1),
        held_bytes=file_bytes,
    )


@dataclass(frozen=True)
class _PixelLayout:
    """How the file says its pixels are stored (PS3.3 C.7.6.3), checked against medlim's limits.

    Attributes:
        rows, columns: frame size in pixels (> 0, ``rows * columns <= max_pixels``).
        bits_allocated: 1, 8, 16, 32 or 64.
        bits_stored: 1..``bits_allocated`` (``bits_allocated`` when the file's value is invalid).
        signed: Pixel Representation is 1 (two's complement).
        samples: 1 (grey) or 3 (colour).
        photometric: PhotometricInterpretation as read, else MONOCHROME2 / RGB by ``samples``.
        frames: Number of Frames, 1..``_MAX_FRAMES``.
    """

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    samples: int
    photometric: str
    frames: int


def _decode_dicom(data: bytes | BinaryIO, *, name: str, frame: int | None, settings: Settings) -> ImageRecord:
    """:func:`decode_dicom` of bytes or a file object: parse, check, decode one frame, defer the float images."""
    from medlim.core.io.formats import has_dicom_preamble

    head, file_bytes = _head_and_size(data)
    check_held_bytes(file_bytes, name=name, settings=settings)  # pydicom reads all of it
    ds = _parse(data, name=name, force=not has_dicom_preamble(head))
    _require_pixel_data(ds, name=name)
    layout = _pixel_layout(ds, name=name, settings=settings)
    index = _frame_index(frame, frames=layout.frames, name=name)
    stored = _stored_frame(ds, layout, index=index, name=name, file_bytes=file_bytes, settings=settings)
    notes: list[str] = []
    render_pixels, render_raw, display_window = _frame_renderers(ds, stored, layout, index=index, name=name, warnings_out=notes)
    metadata = _dicom_metadata(ds, layout, index=index, notes=notes, display_window=display_window, settings=settings)
    return ImageRecord(metadata=metadata, name=name, render_pixels=render_pixels, render_raw=render_raw)


def _require_pixel_data(ds: Any, *, name: str) -> None:
    """Raise, saying what the file is instead, when it holds no (integer) Pixel Data."""
    if "PixelData" in ds:
        return
    if any(keyword in ds for keyword in ("FloatPixelData", "DoubleFloatPixelData")):
        raise UnsupportedFormatError(f"{name} holds floating-point pixel data, which medlim does not read.")
    if "Rows" in ds and "Columns" in ds:
        raise NoPixelDataError(
            f"{name} describes an image but holds no pixel data (it may have been stored without its "
            "pixels); retrieve the complete image."
        )
    kind = _sop_class_name(ds)
    if "Image Storage" in kind:
        raise NoPixelDataError(
            f"{name} is a DICOM image file ({kind}) without pixel data: it was stored without its "
            "pixels or is truncated; retrieve the complete image."
        )
    raise NotDicomImageError(f"{name} is a DICOM file but not an image ({kind}); choose an image file.")


def _pixel_layout(ds: Any, *, name: str, settings: Settings) -> _PixelLayout:
    """The Image Pixel module's values, each checked before any pixel is decoded (``max_pixels`` among them)."""
    rows = _int(ds, "Rows")
    columns = _int(ds, "Columns")
    bits_allocated = _int(ds, "BitsAllocated")
    if rows is None or columns is None or bits_allocated is None:
        missing = [k for k, v in (("Rows", rows), ("Columns", columns), ("BitsAllocated", bits_allocated)) if v is None]
        raise CorruptFileError(
            f"{name} holds pixel data but lacks {', '.join(missing)}, needed to read it; the file is damaged."
        )
    if rows <= 0 or columns <= 0:
        raise ImageTooLargeError(f"{name} declares an image of {rows}×{columns} pixels, which is not a valid size.")
    if rows * columns > settings.max_pixels:
        raise ImageTooLargeError(
            f"{name} is {rows}×{columns} = {rows * columns:,} pixels, more than the limit of "
            f"{settings.max_pixels:,} (MEDLIM_MAX_PIXELS)."
        )
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise CorruptFileError(f"{name} declares {bits_allocated} bits per pixel, which is not valid DICOM.")
    bits_stored = _int(ds, "BitsStored", bits_allocated) or bits_allocated
    if not 1 <= bits_stored <= bits_allocated:
        bits_stored = bits_allocated
    signed = _int(ds, "PixelRepresentation", 0) == 1
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    photometric = _text(ds, "PhotometricInterpretation") or ("MONOCHROME2" if samples == 1 else "RGB")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if not 1 <= frames <= _MAX_FRAMES:
        raise ImageTooLargeError(f"{name} declares {frames} frames of {rows}×{columns}, which is not plausible.")
    if samples not in (1, 3):
        raise UnsupportedFormatError(f"{name} has {samples} samples per pixel; only grey (1) and colour (3) are read.")
    return _PixelLayout(
        rows=rows, columns=columns, bits_allocated=bits_allocated, bits_stored=bits_stored, signed=signed,
        samples=samples, photometric=photometric, frames=frames,
    )


def _frame_index(frame: int | None, *, frames: int, name: str) -> int:
    """The frame asked for, checked against the file's ``frames``; ``None`` only for a one-frame file."""
    if frame is None:
        if frames > 1:
            raise MultiFrameError(
                f"{name} holds {frames} frames; an analysis reads one image: choose one with frame=0..{frames - 1}, "
                "or export it as a file of its own (`medlim image info FILE --frame N` shows each).", count=frames
            )
        return 0
    if not 0 <= int(frame) < frames:
        raise ParameterError(f"frame must be in 0..{frames - 1} for {name}; {frame!r} is given.")
    return int(frame)


def _stored_frame(
    ds: Any, layout: _PixelLayout, *, index: int, name: str, file_bytes: int, settings: Settings
) -> np.ndarray:
    """Stored values of frame ``index`` (``[H, W]`` or ``[H, W, 3]``), after the decode budget allows it.

    Uncompressed little-endian grey frames are a read-only view on the Pixel Data
    bytes (:func:`_native_frame`); anything else goes through the decoder plugins
    (:func:`_decode_frame`, GDCM isolated in a child process).
    """
    encapsulated = _is_encapsulated(ds)
    syntax = _ensure_transfer_syntax(ds, name=name, encapsulated=encapsulated)
    _check_decodable(syntax, name=name)
    view = _is_native_view(
        syntax=syntax, samples=layout.samples, bits_allocated=layout.bits_allocated,
        photometric=_text(ds, "PhotometricInterpretation"),  # as _native_frame sees it
    )
    cost = _dicom_cost(
        rows=layout.rows, columns=layout.columns, samples=layout.samples, bits_allocated=layout.bits_allocated,
        photometric=layout.photometric, view=view, encapsulated=encapsulated, file_bytes=file_bytes,
    )
    check_decode_budget(cost, name=name, settings=settings)
    if not encapsulated:
        _check_native_length(ds, layout, name=name)
    stored = _native_frame(
        ds, index=index, syntax=syntax, rows=layout.rows, columns=layout.columns, samples=layout.samples,
        bits_allocated=layout.bits_allocated, signed=layout.signed,
    )
    if stored is None:
        stored = _decode_frame(ds, index=index, syntax=syntax, name=name, encapsulated=encapsulated)
    if stored.ndim == 3 and stored.shape[-1] == 1:
        stored = stored[..., 0]
    return stored


def _check_native_length(ds: Any, layout: _PixelLayout, *, name: str) -> None:
    """Raise :class:`TruncatedFileError` when uncompressed Pixel Data is shorter than all its frames."""
    # YBR_FULL_422 stores two values per pixel (chroma shared by pixel pairs), PS3.3 C.7.6.3.1.2.
    values_per_pixel = 2 if layout.photometric == "YBR_FULL_422" and layout.samples == 3 else layout.samples
    expected = (layout.rows * layout.columns * values_per_pixel * layout.bits_allocated * layout.frames + 7) // 8
    available = len(ds.PixelData) if ds.PixelData is not None else 0
    if available < expected:
        raise TruncatedFileError(
            f"{name} ends before its pixel data does ({available:,} of {expected:,} bytes); "
            "the file is truncated: copy or export it again."
        )


def _frame_renderers(
    ds: Any, stored: np.ndarray, layout: _PixelLayout, *, index: int, name: str, warnings_out: list[str]
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray], DisplayWindow | None]:
    """``(render_pixels, render_raw, display_window)`` of the frame: the grey chain, or colour (no window)."""
    if layout.samples == 1 and layout.photometric != "PALETTE COLOR":
        modality = _modality_stage(ds, frame=index, warnings_out=warnings_out)
        voi = _voi_stage(ds, frame=index, signed=layout.signed, warnings_out=warnings_out)
        invert = layout.photometric == "MONOCHROME1" or _text(ds, "PresentationLUTShape") == "INVERSE"
        if stored.dtype.kind in "ui" and _has_stray_bits(stored, bits_stored=layout.bits_stored, signed=layout.signed):
            warnings_out.append(stray_bits_note(layout.bits_stored))
        render_pixels, render_raw, value_range = _grey_renderers(
            stored, bits_stored=layout.bits_stored, signed=layout.signed, modality=modality, voi=voi, invert=invert
        )
        return render_pixels, render_raw, _applied_window(voi, value_range, invert=invert)
    render_pixels, render_raw = _colour_renderers(
        stored, ds=ds, photometric=layout.photometric, bits_stored=layout.bits_stored, name=name
    )
    return render_pixels, render_raw, None


def _dicom_metadata(
    ds: Any, layout: _PixelLayout, *, index: int, notes: list[str], display_window: DisplayWindow | None,
    settings: Settings,
) -> ImageMetadata:
    """The record's non-identifying metadata; a "For Processing" image gets its warning first."""
    intent = _presentation_intent(ds)
    warnings_first = (FOR_PROCESSING_WARNING,) if intent == "FOR PROCESSING" else ()
    spacing, spacing_source = pixel_spacing(ds, frame=index)
    notes = [*notes, *spacing_notes(ds, frame=index, source=spacing_source)]
    return ImageMetadata(
        source_format="dicom",
        modality=_text(ds, "Modality"),
        view=mammography_view(ds),
        laterality=_laterality(ds),
        study_date=_study_date(ds),
        bits_stored=layout.bits_stored,
        photometric=layout.photometric,
        pixel_spacing_mm=spacing,
        pixel_spacing_source=spacing_source,
        patient_key=patient_key(_patient_id(ds), settings=settings),
        presentation_intent=intent,
        number_of_frames=layout.frames,
        frame_index=index,
        warnings=(*warnings_first, *notes),
        display_window=display_window,
    )


def _applied_window(voi: _Voi, value_range: tuple[float, float] | None, *, invert: bool) -> DisplayWindow:
    """What the VOI stage applied, as the record keeps it (the viewer opens on it, issue 17)."""
    if voi.kind == "window":
        return DisplayWindow("window", float(voi.center), float(voi.width), voi.function, invert)
    if voi.kind == "lut" and voi.table is not None:
        entries = int(voi.table.size)
        first = int(voi.first_mapped)
        return DisplayWindow(
            "lut", first + (entries - 1) / 2.0, float(max(entries - 1, 1)), "LINEAR_EXACT", invert,
            lut_first_mapped=first, lut_entries=entries, lut_bits=int(voi.bits),
        )  # fmt: skip
    low, high = value_range if value_range is not None else (0.0, 1.0)
    return DisplayWindow.value_range(low, high, inverted=invert)


def _patient_id(ds: Any) -> str | None:
    value = _get(ds, "PatientID")
    return None if value is None else str(value)


def _sop_class_name(ds: Any) -> str:
    from pydicom import uid

    sop_class = str(_get(ds, "SOPClassUID", "")).strip()
    if not sop_class:
        return "no SOP class given"
    known = uid.UID(sop_class)
    return known.name if known.name != sop_class else f"SOP class {sop_class}"


def _is_encapsulated(ds: Any) -> bool:
    try:
        element = ds["PixelData"]
    except _VALUE_ERRORS:
        return False
    return bool(getattr(element, "is_undefined_length", False))


def _colour_renderers(
    stored: np.ndarray, *, ds: Any, photometric: str, bits_stored: int, name: str
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]:
    """``(render_pixels, render_raw)`` of a colour frame: RGB/YBR (already RGB from pydicom) or palette colour.

    The palette and the bit mask are applied now (they can fail or need the
    data set); the float32 images are made on first use.
    """
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rgb = apply_color_lut(stored, ds)
        except (*_VALUE_ERRORS, NotImplementedError) as exc:
            raise CorruptFileError(
                f"{name} is a palette-colour image whose palette cannot be applied ({type(exc).__name__})."
            ) from exc
        top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else float(rgb.max() or 1.0)
    else:
        if stored.ndim != 3 or stored.shape[-1] != 3:
            raise UnsupportedFormatError(
                f"{name} says it is {photometric} with 3 samples but decodes to shape {stored.shape}."
            )
        rgb = stored
        if rgb.dtype.kind in "ui" and bits_stored < rgb.dtype.itemsize * 8:
            rgb = rgb & np.asarray((1 << bits_stored) - 1, dtype=rgb.dtype)
        top = float(2**bits_stored - 1) if rgb.dtype.kind in "ui" else float(rgb.max() or 1.0)
    factor = np.float32(1.0 / top)

    def render_pixels() -> np.ndarray:
        return _clip_unit(np.multiply(rgb, factor, dtype=np.float32))

    return render_pixels, lambda: rgb.astype(np.float32)
