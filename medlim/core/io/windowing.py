"""Grey-level transforms of the DICOM pixel pipeline, as pure array functions.

Implements the VOI stage of DICOM PS3.3 §C.11.2 (window centre/width with the
LINEAR, LINEAR_EXACT and SIGMOID functions, C.11.2.1.2–C.11.2.1.3, and VOI LUTs,
C.11.2.1.1) and the value-range fallback used when a file carries no VOI. The
outputs are display values in [0, 1], which is what ``ImageRecord.pixels`` holds;
METHODS.md §1 converts them to the 8-bit image once, at the reader.

The viewer's window/level control calls :func:`apply_window` on
``ImageRecord.raw``.
"""

from __future__ import annotations

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "VOI_FUNCTIONS",
    "apply_window",
    "apply_lut",
    "apply_value_range",
    "linear_window_coefficients",
]

#: VOI LUT functions understood by :func:`apply_window` (DICOM (0028,1056)).
VOI_FUNCTIONS: tuple[str, ...] = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def _check_window(center: float, width: float, function: str) -> str:
    name = str(function).strip().upper() or "LINEAR"
    if name not in VOI_FUNCTIONS:
        raise ParameterError(
            f"The window function must be one of {', '.join(VOI_FUNCTIONS)}; {function!r} is given."
        )
    if not np.isfinite(center):
        raise ParameterError(f"The window centre must be a finite number; {center!r} is given.")
    minimum_width = 1.0 if name == "LINEAR" else 0.0
    if not np.isfinite(width) or width < minimum_width or (name != "LINEAR" and width == 0):
        raise ParameterError(
            f"The window width must be {'at least 1' if name == 'LINEAR' else 'positive'} "
            f"for {name}; {width!r} is given."
        )
    return name


def apply_window(
    raw: np.ndarray,
    *,
    center: float,
    width: float,
    function: str = "LINEAR",
) -> np.ndarray:
    """Map values through a DICOM window to display values.

    Formulas (output range [0, 1]; c = centre, w = width):

    * ``LINEAR`` (PS3.3 C.11.2.1.2.1): 0 where ``x <= c - 0.5 - (w - 1) / 2``,
      1 where ``x > c - 0.5 + (w - 1) / 2``, else ``(x - (c - 0.5)) / (w - 1) + 0.5``;
      requires ``w >= 1`` (``w == 1`` is a pure threshold).
    * ``LINEAR_EXACT`` (C.11.2.1.3.2): 0 where ``x <= c - w / 2``, 1 where
      ``x > c + w / 2``, else ``(x - c) / w + 0.5``; requires ``w > 0``.
    * ``SIGMOID`` (C.11.2.1.3.1): ``1 / (1 + exp(-4 (x - c) / w))``; ``w > 0``.

    Args:
        raw: values after the modality LUT (``np.ndarray`` of any shape, any real dtype).
        center: window centre, in the units of ``raw``.
        width: window width, in the units of ``raw``.
        function: ``"LINEAR"``, ``"LINEAR_EXACT"`` or ``"SIGMOID"`` (case-insensitive).

    Returns:
        ``np.ndarray`` of the shape of ``raw``, float32 in [0, 1].

    Raises:
        ParameterError: unknown function, non-finite centre, or a width out of range.
    """
    name = _check_window(float(center), float(width), function)
    values = np.asarray(raw)
    center = float(center)
    width = float(width)
    if name == "SIGMOID":
        shifted = values.astype(np.float32, copy=True)
        shifted -= np.float32(center)
        shifted *= np.float32(-4.0 / width)
        np.clip(shifted, -80.0, 80.0, out=shifted)  # exp overflows float32 beyond ~88
        np.exp(shifted, out=shifted)
        shifted += np.float32(1.0)
        return np.reciprocal(shifted, out=shifted)
    if name == "LINEAR" and width == 1.0:
        # A width of 1 is a threshold at c - 0.5 (the linear branch is empty).
        return (values > center - 0.5).astype(np.float32)
    low, scale = _linear_coefficients(center, width, name)
    out = values.astype(np.float32, copy=True)
    out -= np.float32(low)
    out *= np.float32(scale)
    return np.clip(out, 0.0, 1.0, out=out)


def linear_window_coefficients(*, center: float, width: float, function: str) -> tuple[float, float] | None:
    """``(low, scale)`` such that a linear window is ``clip((x - low) * scale, 0, 1)``.

    For LINEAR, ``(x - (c - 0.5)) / (w - 1) + 0.5 == (x - low) / (w - 1)`` with
    ``low = c - 0.5 - (w - 1) / 2``; for LINEAR_EXACT, ``low = c - w / 2`` and
    ``scale = 1 / w``. The reader uses these to window a large image in one pass.

    Returns:
        The coefficients, or ``None`` for SIGMOID and for a LINEAR width of 1
        (a threshold), which are not of that form.
    """
    name = _check_window(float(center), float(width), function)
    if name == "SIGMOID" or (name == "LINEAR" and float(width) == 1.0):
        return None
    return _linear_coefficients(center, width, name)


def _linear_coefficients(center: float, width: float, name: str) -> tuple[float, float]:
    """``(low, scale)`` of a checked LINEAR (width > 1) or LINEAR_EXACT window (``name`` upper case)."""
    if name == "LINEAR":
        return center - 0.5 - (width - 1.0) / 2.0, 1.0 / (width - 1.0)
    return center - width / 2.0, 1.0 / width


def apply_value_range(raw: np.ndarray, *, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Stretch ``[low, high]`` linearly to [0, 1] (the fallback when a file has no VOI).

    Args:
        raw: values (``np.ndarray`` of any shape, real dtype).
        low: value shown black; the minimum of ``raw`` when ``None``.
        high: value shown white; the maximum of ``raw`` when ``None``.

    Returns:
        ``np.ndarray`` of the shape of ``raw``, float32 in [0, 1]; all zeros when
        ``high <= low`` (a constant image).
    """
    values = np.asarray(raw)
    if values.size == 0:
        return values.astype(np.float32)
    low = float(values.min()) if low is None else float(low)
    high = float(values.max()) if high is None else float(high)
    if not high > low:
        return np.zeros(values.shape, dtype=np.float32)
    out = values.astype(np.float32, copy=True)
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    return np.clip(out, 0.0, 1.0, out=out)


def apply_lut(
    values: np.ndarray,
    *,
    lut: np.ndarray,
    first_mapped: int,
    output_bits: int,
) -> np.ndarray:
    """Apply a DICOM lookup table (VOI LUT, PS3.3 C.11.2.1.1) and scale to [0, 1].

    Values below ``first_mapped`` take the first entry, values at or above
    ``first_mapped + len(lut) - 1`` take the last; values in between are rounded
    to the nearest integer input.

    Args:
        values: input values (``np.ndarray`` of any shape, real dtype).
        lut: table entries (``np.ndarray[N]``, integers).
        first_mapped: input value mapped to ``lut[0]`` (2nd value of the LUT Descriptor).
        output_bits: bits per entry (3rd value of the LUT Descriptor, 1..16);
            entries are divided by ``2**output_bits - 1``. When entries exceed
            that range (a common encoder error) the largest entry's bit length is used.

    Returns:
        ``np.ndarray`` of the shape of ``values``, float32 in [0, 1].

    Raises:
        ParameterError: an empty table or a bit depth outside 1..16.
    """
    table = np.asarray(lut).ravel()
    if table.size == 0:
        raise ParameterError("The lookup table has no entries.")
    if not 1 <= int(output_bits) <= 16:
        raise ParameterError(f"LUT output bits must be in 1..16; {output_bits!r} is given.")
    top = float(2 ** int(output_bits) - 1)
    largest = float(table.max())
    if largest > top:
        top = float(2 ** int(np.ceil(np.log2(largest + 1.0))) - 1)
    scaled = np.clip(table.astype(np.float32) / np.float32(top), 0.0, 1.0)
    return _gather(values, scaled, first_mapped=int(first_mapped))


def _gather(values: np.ndarray, table: np.ndarray, *, first_mapped: int) -> np.ndarray:
    """``table[clip(round(values) - first_mapped, 0, len - 1)]`` without float64 copies."""
    values = np.asarray(values)
    last = table.size - 1
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 2:
        # Small integers: expand the table over the whole input type, then one gather.
        info = np.iinfo(values.dtype)
        inputs = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
        full = table[np.clip(inputs - first_mapped, 0, last)]
        index = values.astype(np.int64) - int(info.min) if info.min < 0 else values
        return full[index]
    index = np.rint(values.astype(np.float64)) - first_mapped
    np.clip(index, 0, last, out=index)
    return table[index.astype(np.intp)]
