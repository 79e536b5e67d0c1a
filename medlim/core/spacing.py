"""Pixel spacing at inference: which spacing an image has, and resampling to a model's (issue 13).

A network learns structures of a physical size at the pixel spacing of its
training images; run on a mammogram binned 4×4 (0.28 mm instead of 0.07 mm) it
sees calcified arteries a quarter as wide and fails. nnU-Net
(``preprocessing/resampling``) and MONAI's ``Spacing`` transform therefore
resample every image to the spacing the network was trained at and map the
result back. medlim does the same for 2-D images:

* :func:`decide_spacing` settles the spacing of an image — stated by the user,
  else the file's tag (the reader's precedence: PixelSpacing, else
  ImagerPixelSpacing ÷ EstimatedRadiographicMagnificationFactor, else
  ImagerPixelSpacing), else the model's own with a warning — and whether the
  image must be resampled: only when its spacing lies outside the range the
  model was trained on (widened by :data:`SPACING_TOLERANCE`).
* :func:`resample_to_shape` resizes an image, a probability map or a mask:
  area-averaging when it shrinks (no aliasing of thin structures, as
  OpenCV's ``INTER_AREA``), bilinear when it grows (nnU-Net and MONAI use
  order-1 or higher for images; order 1 keeps probabilities in [0, 1]).

Readouts are computed on the original grid after the maps come back, so areas
are pixels of the image the person gave, and mm² use its spacing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import InputError, ParameterError

__all__ = [
    "MODEL_DEFAULT",
    "SPACING_TOLERANCE",
    "USER",
    "SpacingDecision",
    "area_median",
    "decide_spacing",
    "field_of_view_mm",
    "grid_shape",
    "implausible_spacing",
    "resample_to_shape",
    "spacing_pair",
    "training_spacing",
]

#: ``spacing_source`` of a spacing the person stated (``--pixel-spacing``, the page field).
USER = "user"

#: ``spacing_source`` of an image without a spacing: the model's own is assumed.
MODEL_DEFAULT = "model-default"

#: Relative slack around the model's training range within which an image is not
#: resampled (a resize by less than 2 % changes no structure the networks see, and
#: vendors round spacings: 0.0700 vs 0.0694 mm).
SPACING_TOLERANCE = 0.02


def spacing_pair(value: float | tuple[float, float] | list[float], *, what: str = "pixel spacing") -> tuple[float, float]:
    """``(row, column)`` spacing from one number or a pair, checked positive and finite.

    Raises:
        ParameterError: not one or two positive finite numbers.
    """
    try:
        numbers = [float(value)] * 2 if isinstance(value, (int, float)) else [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 2 or not all(math.isfinite(n) and n > 0 for n in numbers):
        raise ParameterError(f"{what} must be one positive number or (row, column) in mm; {value!r} is given.")
    return (numbers[0], numbers[1])


@dataclass(frozen=True)
class SpacingDecision:
    """The spacing of one image and whether inference resamples it.

    Attributes:
        pixel_spacing_mm: (row, column) spacing of the image as given, in mm
            (the model's own when the file states none and no one gave one), or
            ``None`` when neither the image nor the model has a spacing.
        spacing_source: ``"user"``, the file's tag (e.g. ``"PixelSpacing"``),
            ``"model-default"`` or ``None``.
        model_spacing_mm: the model's spacing when the image is resampled to it,
            else ``None``.
        warning: plain-language warning (the spacing was assumed), or ``None``.
    """

    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    model_spacing_mm: tuple[float, float] | None = None
    warning: str | None = None

    @property
    def resampled(self) -> bool:
        """Inference runs on a resampled copy of the image."""
        return self.model_spacing_mm is not None

    def model_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(rows, columns) of the image on the model's grid (``shape`` when not resampled)."""
        if self.model_spacing_mm is None or self.pixel_spacing_mm is None:
            return (int(shape[0]), int(shape[1]))
        return grid_shape(shape, self.pixel_spacing_mm, self.model_spacing_mm)


def grid_shape(
    shape: tuple[int, int], spacing_mm: tuple[float, float], target_mm: tuple[float, float]
) -> tuple[int, int]:
    """(rows, columns) covering the same field of view at ``target_mm``: ``round(n · spacing / target)``, ≥ 1."""
    return (
        max(1, int(round(shape[0] * spacing_mm[0] / target_mm[0]))),
        max(1, int(round(shape[1] * spacing_mm[1] / target_mm[1]))),
    )


def field_of_view_mm(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> float:
    """The longer side of the image in mm: ``max(rows · row spacing, columns · column spacing)``."""
    return max(shape[0] * spacing_mm[0], shape[1] * spacing_mm[1])


def implausible_spacing(
    shape: tuple[int, int], spacing_mm: tuple[float, float], field_mm: tuple[float, float], *, what: str
) -> str | None:
    """Why ``spacing_mm`` cannot be this image's, when it makes the image ``what`` no such image is; else ``None``.

    ``field_mm``: the (smallest, largest) longer side in mm such an image has. A header error (1 mm, 10 mm,
    0.0001 mm) otherwise turns every area in mm² into nonsense and sends resampling to absurd sizes.
    """
    across = field_of_view_mm(shape, spacing_mm)
    if field_mm[0] <= across <= field_mm[1]:
        return None
    size = f"{across:,.0f}" if across >= 100 else f"{across:.3g}"
    return (f"a pixel spacing of {spacing_mm[0]:g} × {spacing_mm[1]:g} mm makes this {shape[0]}×{shape[1]} px image "
            f"{size} mm across; {what} {field_mm[0]:g}–{field_mm[1]:g} mm")


def _within(spacing: tuple[float, float], low: float, high: float, tolerance: float) -> bool:
    return all(low * (1.0 - tolerance) <= s <= high * (1.0 + tolerance) for s in spacing)


def decide_spacing(
    *,
    file_spacing_mm: tuple[float, float] | None,
    file_source: str | None,
    model_spacing_mm: tuple[float, float] | None,
    model_range_mm: tuple[float, float] | None = None,
    user_spacing_mm: float | tuple[float, float] | None = None,
    tolerance: float = SPACING_TOLERANCE,
    model_label: str = "the model",
) -> SpacingDecision:
    """The spacing of an image and whether to resample it to the model's.

    Precedence: the spacing the person states, else the file's, else the
    model's own (with a warning: areas in mm² then rest on an assumption).
    The image is resampled when its spacing lies outside ``model_range_mm``
    (default: the model's spacing itself) widened by ``tolerance``.

    Args:
        file_spacing_mm: (row, column) mm from the reader, or ``None``.
        file_source: the reader's tag for it (``"PixelSpacing"`` …), or ``None``.
        model_spacing_mm: the spacing the model was trained at (its manifest), or ``None``.
        model_range_mm: (finest, coarsest) training spacing, or ``None``.
        user_spacing_mm: the spacing the person states (one number or a pair), or ``None``.
        tolerance: relative slack around the range, ≥ 0.
        model_label: how the warning names the model.

    Raises:
        ParameterError: a bad stated spacing or tolerance.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ParameterError(f"`tolerance` must be a finite number ≥ 0; {tolerance!r} is given.")
    if user_spacing_mm is not None:
        spacing, source, warning = spacing_pair(user_spacing_mm), USER, None
    elif file_spacing_mm is not None:
        spacing, source, warning = spacing_pair(file_spacing_mm), file_source or "file", None
    elif model_spacing_mm is not None:
        spacing, source = spacing_pair(model_spacing_mm), MODEL_DEFAULT
        warning = (f"The file states no pixel spacing: {model_label}'s own, {spacing[0]:g} × {spacing[1]:g} mm "
                   "(what it was trained at), is assumed, and areas in mm² rest on that. State the spacing "
                   "(--pixel-spacing, or the page's field) if you know it.")
        return SpacingDecision(spacing, source, None, warning)
    else:
        return SpacingDecision(None, None)
    if model_spacing_mm is None:
        return SpacingDecision(spacing, source, None, warning)
    model = spacing_pair(model_spacing_mm, what="the model's pixel spacing")
    low, high = model_range_mm if model_range_mm is not None else (min(model), max(model))
    if _within(spacing, low, high, tolerance):
        return SpacingDecision(spacing, source, None, warning)
    return SpacingDecision(spacing, source, model, warning)


def resample_to_shape(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D image, probability map or mask — or a colour image, channels last — to ``shape`` (rows, columns).

    Area-averaging along an axis that shrinks, bilinear along one that grows
    (one OpenCV call when both axes go the same way, one per axis otherwise).
    A boolean mask is resized as a fraction and kept where at least half of a
    pixel is covered, so its area is preserved to within the boundary pixels.

    Args:
        array: ``np.uint8``, ``np.float32`` (other floats become float32) or
            ``np.bool_`` ``[H, W]``; ``np.uint8`` or float ``[H, W, C]`` with C ≤ 4 (RGB, e.g. H&E).
        shape: target (rows, columns), each ≥ 1.

    Returns:
        The array on the new grid, same dtype (bool stays bool; floats float32).

    Raises:
        InputError: not a 2-D array of a supported dtype.
    """
    import cv2

    colour = isinstance(array, np.ndarray) and array.ndim == 3 and 1 <= array.shape[2] <= 4 and array.dtype != np.bool_
    if not isinstance(array, np.ndarray) or not (array.ndim == 2 or colour):
        raise InputError(f"Expected a 2-D array to resample, got {getattr(array, 'shape', type(array).__name__)}.")
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise InputError(f"Resampled shape must be ≥ 1 pixel on each side; {shape!r} is given.")
    if array.shape[:2] == (rows, cols):
        return array.copy()
    if array.dtype == np.bool_:
        return resample_to_shape(array.astype(np.float32), (rows, cols)) >= 0.5
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"Resampling takes uint8, float or bool images; {array.dtype} is given.")
        array = array.astype(np.float32, copy=False)

    def resize(image: np.ndarray, size: tuple[int, int], shrink: bool) -> np.ndarray:
        return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    shrink_rows, shrink_cols = rows <= array.shape[0], cols <= array.shape[1]
    if shrink_rows == shrink_cols:
        return resize(np.ascontiguousarray(array), (rows, cols), shrink_rows)
    halfway = resize(np.ascontiguousarray(array), (rows, array.shape[1]), shrink_rows)
    return resize(halfway, (rows, cols), shrink_cols)


def area_median(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map on the coarser grid ``shape`` that, thresholded at any cut-off ``t``, keeps a pixel where at least half
    of the finer pixels it covers are above ``t``: each coarse pixel's upper median of the values it covers.

    Thresholding an area-averaged map instead keeps a coarse pixel where the mean passes ``t``, so a thin bright line
    covering a quarter of it counts the whole pixel and an area grows; this keeps the area of ``values > t`` to within
    the boundary pixels at every ``t`` at once (what :func:`resample_to_shape` does for one boolean mask).

    Each coarse pixel takes a block of ``kr × kc`` values, ``k`` the factor along the axis rounded up; for a
    whole-number factor the blocks are the fine pixels it covers, otherwise the fine map is first brought to
    ``(rows·kr, cols·kc)`` by nearest neighbour (a fine pixel that two coarse pixels share goes to one of them).
    The value is the ``⌈n/2⌉``-th largest of the block's ``n`` values: ``> t`` exactly when at least half are.

    Args:
        values: ``np.float32[H, W]`` (a probability map), at least as large as ``shape`` on each axis.
        shape: the coarse grid's (rows, columns).

    Returns:
        ``np.float32[rows, cols]``.

    Raises:
        InputError: not a 2-D map, or ``shape`` larger than it.
    """
    import cv2

    if not isinstance(values, np.ndarray) or values.ndim != 2:
        raise InputError(f"Expected a 2-D map, got {getattr(values, 'shape', type(values).__name__)}.")
    rows, cols = int(shape[0]), int(shape[1])
    if not (1 <= rows <= values.shape[0] and 1 <= cols <= values.shape[1]):
        raise InputError(f"area_median takes a coarser grid; {shape!r} is not within {values.shape}.")
    fine = np.ascontiguousarray(values, dtype=np.float32)
    if (rows, cols) == fine.shape:
        return fine.copy()
    kr, kc = math.ceil(fine.shape[0] / rows), math.ceil(fine.shape[1] / cols)
    if fine.shape != (rows * kr, cols * kc):
        fine = np.asarray(cv2.resize(fine, (cols * kc, rows * kr), interpolation=cv2.INTER_NEAREST), np.float32)
    n = kr * kc
    rank = n - (n + 1) // 2  # ascending position of the ⌈n/2⌉-th largest
    out = np.empty((rows, cols), np.float32)
    for top in range(0, rows, _STRIP_ROWS):  # in strips: a block copy of the whole map would double its memory
        strip = fine[top * kr : (top + _STRIP_ROWS) * kr]
        height = strip.shape[0] // kr
        blocks = strip.reshape(height, kr, cols, kc).transpose(0, 2, 1, 3).reshape(height, cols, n)
        out[top : top + height] = np.partition(blocks, rank, axis=2)[:, :, rank]
    return out


#: Coarse rows :func:`area_median` takes at a time.
_STRIP_ROWS = 256


def training_spacing(spacings: Iterable[tuple[float, float, int]], *, where: str) -> dict[str, Any]:
    """The input-contract fields of weights trained on images of these spacings.

    The model's spacing is the lower median of the training images' spacings per
    axis (nnU-Net's target spacing is the median; the lower median is always a
    spacing the network really saw, e.g. 0.07 mm for an even mix of 0.07 and
    0.085 mm phantoms); the range is the finest and coarsest spacing.

    Args:
        spacings: ``(row mm, column mm, images)`` per spacing (a dataset fingerprint's).
        where: the data in words, for ``scale``.

    Returns:
        ``{"pixel_spacing_mm", "spacing_range_mm", "scale"}``, or only ``{"scale"}``
        when no image states a spacing (then inference resamples nothing).
    """
    counted = [(float(r), float(c), int(n)) for r, c, n in spacings if n > 0]
    if not counted:
        return {"scale": f"{where}: no pixel spacing in the training images, so none is recorded or used"}

    def lower_median(values: list[tuple[float, int]]) -> float:
        ordered = sorted(values)
        total = sum(n for _, n in ordered)
        seen = 0
        for value, n in ordered:
            seen += n
            if 2 * seen >= total:
                return value
        return ordered[-1][0]

    row = lower_median([(r, n) for r, _, n in counted])
    col = lower_median([(c, n) for _, c, n in counted])
    every = [v for r, c, _ in counted for v in (r, c)]
    return {"pixel_spacing_mm": [row, col], "spacing_range_mm": [min(every), max(every)],
            "scale": f"mm at the breast, {where}: the lower median of the training spacings; images outside "
                     f"{min(every):g}-{max(every):g} mm are resampled to it for inference"}
