"""BAC quantification metrics PM, AM, SIM, TAM_X, TSIM_X (thesis §3.3.2, eq. 3.8–3.9).

With ``p`` the per-pixel model output on the whole image, ``I`` the 8-bit
intensity of the preprocessed image, ``t`` the probability cut-off and ``X`` the
intensity threshold:

* PM = Σ p (all pixels)
* AM = Σ 1[p > t]
* SIM = Σ I over {p > t}
* TAM_X = Σ 1[p > t and I ⋄ X]
* TSIM_X = Σ I over {p > t and I ⋄ X}

where ⋄ is ``>`` in the thesis (eq. 3.9, the ``thesis`` preset) and ``≥`` in the
authors' published code (the ``published`` preset); it is the
``intensity_rule`` parameter and every result records it. The cut-off is
always strict, ``p > t``, in both sources.

Breast area — the denominator of the longitudinal readout TAM_X / breast area
(thesis §3.3.2) — is the pixel count of the preset's breast mask when one is
given (rule ``"mask"``), else Σ 1[I > 0] as in the published code (rule
``"nonzero"``). Areas are also given in mm² when a pixel spacing is known.

All sums come from one intensity histogram of the BAC pixels, so recomputing
for a new ``t`` or ``X`` from a cached probability map takes tens of
milliseconds on a 4096×3328 image (no re-inference): call
:func:`quantify_bac` again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from medlim.errors import InputError, ParameterError
from medlim.mammography.preprocess import get_preset

if TYPE_CHECKING:  # pragma: no cover
    from medlim.mammography.inference import BacPrediction

__all__ = ["BacMetrics", "IntensityRule", "quantify_bac", "quantify_prediction"]

IntensityRule = Literal[">", ">="]


@dataclass(frozen=True)
class BacMetrics:
    """The five BAC readouts of one image and their context.

    Attributes:
        pm: Σ p over the image (float).
        am: pixels with ``p > threshold``.
        sim: Σ I over those pixels.
        tam_x: BAC pixels whose intensity passes ``intensity_rule`` against ``x``.
        tsim_x: Σ I over those pixels.
        x: intensity threshold X (8-bit units).
        threshold: probability cut-off t.
        intensity_rule: ``">"`` (thesis) or ``">="`` (published code).
        breast_area: breast pixels.
        breast_area_rule: ``"mask"`` (given breast mask) or ``"nonzero"`` (I > 0).
        tam_x_per_breast_area: ``tam_x / breast_area`` (NaN when the breast area is 0).
        pixel_spacing_mm: (row, column) spacing, or None.
        am_mm2: AM in mm², or None without a spacing.
        tam_x_mm2: TAM_X in mm², or None without a spacing.
        spacing_source: where the spacing came from (e.g. ``"PixelSpacing"``,
            ``"ImagerPixelSpacing"``, ``"user"``), or None.
    """

    pm: float
    am: int
    sim: int
    tam_x: int
    tsim_x: int
    x: float
    threshold: float
    intensity_rule: str
    breast_area: int
    breast_area_rule: str
    tam_x_per_breast_area: float
    pixel_spacing_mm: tuple[float, float] | None = None
    am_mm2: float | None = None
    tam_x_mm2: float | None = None
    spacing_source: str | None = None


def _spacing_pair(pixel_spacing_mm: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(pixel_spacing_mm, (int, float)):
        pair = (float(pixel_spacing_mm), float(pixel_spacing_mm))
    else:
        values = tuple(float(v) for v in pixel_spacing_mm)
        if len(values) != 2:
            raise ParameterError(f"Pixel spacing must be one number or (row, column), got {pixel_spacing_mm!r}.")
        pair = (values[0], values[1])
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise ParameterError(f"Pixel spacing must be positive and finite (mm), got {pixel_spacing_mm!r}.")
    return pair


def quantify_bac(
    probability: np.ndarray,
    image: np.ndarray,
    *,
    threshold: float,
    x: float,
    breast_mask: np.ndarray | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    spacing_source: str | None = None,
    intensity_rule: IntensityRule = ">",
) -> BacMetrics:
    """Compute PM, AM, SIM, TAM_X and TSIM_X (thesis eq. 3.8–3.9) and the breast-normalised TAM_X.

    Args:
        probability: ``np.ndarray[H, W]`` float, the model output ``p`` (in [0, 1]
            for a probability; raw soft-Dice output may slightly exceed 1).
        image: ``np.uint8[H, W]``, the preprocessed 8-bit image ``I``.
        threshold: cut-off ``t``; a pixel is BAC when ``p > t``
            (thesis 0.5, published code 0.65).
        x: intensity threshold ``X`` (thesis and code: 100).
        breast_mask: ``np.bool_[H, W]`` breast region; None: ``I > 0``.
        pixel_spacing_mm: pixel size in mm (one number or (row, column));
            None: areas in pixels only.
        spacing_source: where the spacing came from, recorded with the result.
        intensity_rule: ``">"`` (thesis eq. 3.9, default) or ``">="`` (the
            authors' code). The presets carry their own
            (:func:`quantify_prediction` uses them).

    Returns:
        :class:`BacMetrics`.

    Raises:
        InputError: wrong dtypes or mismatched shapes.
        ParameterError: non-finite threshold or X, unknown rule, bad spacing.
    """
    probability = np.asarray(probability)
    _check_inputs(probability, image, breast_mask, threshold=threshold, x=x, intensity_rule=intensity_rule)

    bac = probability > threshold
    histogram = np.bincount(image[bac], minlength=256).astype(np.int64)
    levels = np.arange(256, dtype=np.int64)
    passes = levels > x if intensity_rule == ">" else levels >= x

    am = int(histogram.sum())
    tam_x = int(histogram[passes].sum())
    if breast_mask is not None:
        breast_area = int(np.count_nonzero(breast_mask))
        breast_area_rule = "mask"
    else:
        breast_area = int(np.count_nonzero(image))
        breast_area_rule = "nonzero"

    spacing = am_mm2 = tam_x_mm2 = None
    if pixel_spacing_mm is not None:
        spacing = _spacing_pair(pixel_spacing_mm)
        pixel_mm2 = spacing[0] * spacing[1]
        am_mm2 = am * pixel_mm2
        tam_x_mm2 = tam_x * pixel_mm2
    return BacMetrics(
        pm=float(probability.sum(dtype=np.float64)),
        am=am,
        sim=int(histogram @ levels),
        tam_x=tam_x,
        tsim_x=int(histogram[passes] @ levels[passes]),
        x=float(x),
        threshold=float(threshold),
        intensity_rule=intensity_rule,
        breast_area=breast_area,
        breast_area_rule=breast_area_rule,
        tam_x_per_breast_area=tam_x / breast_area if breast_area > 0 else float("nan"),
        pixel_spacing_mm=spacing,
        am_mm2=am_mm2,
        tam_x_mm2=tam_x_mm2,
        spacing_source=spacing_source if spacing is not None else None,
    )


def _check_inputs(
    probability: np.ndarray, image: np.ndarray, breast_mask: np.ndarray | None, *, threshold: float, x: float,
    intensity_rule: str,
) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        described = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"Expected the 8-bit image np.uint8[H, W], got {described}.")
    if probability.shape != image.shape or not np.issubdtype(probability.dtype, np.floating):
        raise InputError(
            f"Probability map must be a float array shaped like the image {image.shape}, "
            f"got {probability.dtype}{list(probability.shape)}."
        )
    if breast_mask is not None and np.shape(breast_mask) != image.shape:
        raise InputError(f"Breast mask shape {np.shape(breast_mask)} differs from the image {image.shape}.")
    if not (math.isfinite(threshold) and math.isfinite(x)):
        raise ParameterError(f"Threshold and X must be finite, got threshold={threshold}, x={x}.")
    if intensity_rule not in (">", ">="):
        raise ParameterError(f"`intensity_rule` must be '>' or '>=', {intensity_rule!r} is given.")


def quantify_prediction(
    prediction: BacPrediction,
    *,
    threshold: float | None = None,
    x: float | None = None,
    intensity_rule: IntensityRule | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    spacing_source: str | None = None,
) -> BacMetrics:
    """:func:`quantify_bac` on an inference result, with its preset's defaults.

    The preset supplies ``threshold``, ``x`` and ``intensity_rule`` when they are
    None; the breast area is the preset's breast mask (``I > 0`` for
    ``published``, the opened mask for ``thesis``).

    Args:
        prediction: a :class:`~medlim.mammography.inference.BacPrediction`.
        threshold: probability cut-off (None: preset's).
        x: intensity threshold (None: preset's).
        intensity_rule: ``">"`` or ``">="`` (None: preset's).
        pixel_spacing_mm: pixel size in mm, if known.
        spacing_source: where the spacing came from.

    Returns:
        :class:`BacMetrics`.
    """
    preset = get_preset(prediction.preset)
    return quantify_bac(
        prediction.probability,
        prediction.preprocessed.grey,
        threshold=preset.threshold if threshold is None else threshold,
        x=preset.intensity_x if x is None else x,
        breast_mask=prediction.preprocessed.breast_mask,
        pixel_spacing_mm=pixel_spacing_mm,
        spacing_source=spacing_source,
        intensity_rule=preset.intensity_rule if intensity_rule is None else intensity_rule,
    )
