"""The mammography acquisition chain of phantom family B, and its vendor looks.

From projected attenuation ``∫μ dz`` to a "For Presentation" image:

1. beam hardening — the effective attenuation ``A / (1 + h·A)`` grows more
   slowly than the path (a polychromatic beam loses its soft photons first);
2. detector blur (the vendor's MTF, a Gaussian) and scatter, a wide blur of
   the primary added at a scatter-to-primary ratio of 0.3–0.5 (Boone & Cooper,
   Med. Phys. 27:1818, 2000, report 0.3–0.6 for 4–6 cm breasts);
3. noise: quantum noise (variance ∝ signal) plus electronic noise (constant),
   mixed by the exposure, shaped by the vendor's noise texture
   (:data:`medlim.phantoms.family_b.fields.NOISE_TEXTURES`);
4. vendor processing on the log image: optional peripheral (thickness)
   equalisation, a percentile window over the breast, unsharp masking, a tone
   curve (logarithmic, sigmoid, power or linear) and a gamma; quantised to the
   vendor's 12 or 14 bits.

Brighter = denser, background exactly 0, breast ≥ :data:`BREAST_FLOOR` (so the
"non-zero" breast-mask rule of the thesis preset finds the breast even after a
16-bit PNG is read back as 8 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from medlim.errors import ParameterError
from medlim.phantoms.family_b.fields import NOISE_TEXTURES, detector_noise, lowpass

__all__ = ["Vendor", "VENDORS", "BREAST_FLOOR", "SMALL_ROWS", "SMALL_COLS", "frame_for", "Acquisition", "acquire",
           "tone_curve"]

#: Smallest presentation value inside the breast.
BREAST_FLOOR = 0.01
#: The "small" size: rows × columns (pixel spacing follows the vendor's field of view).
SMALL_ROWS, SMALL_COLS = 512, 416


@dataclass(frozen=True)
class Vendor:
    """One vendor's detector and display processing.

    Attributes:
        name: vendor name (``metadata.style``).
        spacing_mm: full-size pixel spacing; field_rows_mm: detector height (columns = rows × 416/512).
        bits: stored bits, 12 or 14; photometric: DICOM ``MONOCHROME1`` or ``MONOCHROME2``;
            window: DICOM VOI (``"linear"``, ``"sigmoid"`` or ``"none"``).
        lut: tone curve ``"log"``, ``"sigmoid"``, ``"gamma"`` or ``"linear"``; lut_parameter: its shape.
        unsharp_amount, unsharp_radius_mm: unsharp masking.
        equalisation: peripheral equalisation strength in [0, 1].
        noise_texture: a key of :data:`~medlim.phantoms.family_b.fields.NOISE_TEXTURES`.
        mtf_sigma_mm: detector blur; quanta_per_mm2: quanta at unit exposure; electronic_quanta: electronic noise.
    """

    name: str
    spacing_mm: float
    field_rows_mm: float
    bits: int
    photometric: str
    window: str
    lut: str
    lut_parameter: float
    unsharp_amount: float
    unsharp_radius_mm: float
    equalisation: float
    noise_texture: str
    mtf_sigma_mm: float
    quanta_per_mm2: float
    electronic_quanta: float

    def __post_init__(self) -> None:
        if self.lut not in ("log", "sigmoid", "gamma", "linear"):
            raise ParameterError(f"`lut` must be log, sigmoid, gamma or linear, {self.lut!r} is given.")
        if self.noise_texture not in NOISE_TEXTURES:
            raise ParameterError(f"unknown noise texture {self.noise_texture!r}.")
        if self.bits not in (12, 14):
            raise ParameterError(f"`bits` must be 12 or 14, {self.bits!r} is given.")


#: The vendors an exam is drawn from (uniformly, one per exam).
VENDORS: dict[str, Vendor] = {
    "atlas": Vendor("atlas", 0.07, 232.0, 14, "MONOCHROME2", "linear", "log", 3.0, 0.8, 1.5, 0.0,
                    "fine", 0.045, 1.6e6, 10.0),
    "borealis": Vendor("borealis", 0.1, 240.0, 12, "MONOCHROME1", "sigmoid", "sigmoid", 0.22, 1.6, 0.8, 0.35,
                       "coarse", 0.07, 1.1e6, 14.0),
    "cobalt": Vendor("cobalt", 0.085, 240.0, 14, "MONOCHROME1", "none", "gamma", 1.5, 0.35, 3.0, 0.0,
                     "streaky", 0.05, 1.4e6, 8.0),
    "delta": Vendor("delta", 0.05, 176.0, 12, "MONOCHROME2", "linear", "linear", 0.0, 1.0, 1.2, 0.6,
                    "blue", 0.035, 2.2e6, 12.0),
}


def frame_for(vendor: Vendor, size: str) -> tuple[int, int, float]:
    """``(rows, cols, spacing_mm)`` of an image of ``size`` (``"small"`` or ``"full"``) from ``vendor``."""
    if size == "small":
        return SMALL_ROWS, SMALL_COLS, vendor.field_rows_mm / SMALL_ROWS
    if size == "full":
        rows = int(round(vendor.field_rows_mm / vendor.spacing_mm))
        return rows, int(round(rows * SMALL_COLS / SMALL_ROWS)), vendor.spacing_mm
    raise ParameterError(f"`size` must be 'small' or 'full', {size!r} is given.")


def tone_curve(x: np.ndarray, lut: str, parameter: float) -> np.ndarray:
    """A vendor tone curve on ``x`` in [0, 1] → [0, 1], increasing, ``f(0) = 0``, ``f(1) = 1``."""
    x = np.clip(x, 0.0, 1.0)
    if lut == "log":
        return np.log1p(parameter * x) / math.log1p(parameter)
    if lut == "sigmoid":
        low, high = 1 / (1 + math.exp(0.5 / parameter)), 1 / (1 + math.exp(-0.5 / parameter))
        return (1.0 / (1.0 + np.exp(-(x - 0.5) / parameter)) - low) / (high - low)
    if lut == "gamma":
        return x ** parameter
    return x


@dataclass(frozen=True)
class Acquisition:
    """The chain's output.

    Attributes:
        image: ``np.ndarray[H, W]`` float32 in [0, 1]; 0 outside the breast.
        gamma: the per-image display gamma; noise_sigma: log-signal noise std at the median breast signal;
        blur_sigma_px: detector blur in pixels.
    """

    image: np.ndarray
    gamma: float
    noise_sigma: float
    blur_sigma_px: float


def _masked_lowpass(values: np.ndarray, weight: np.ndarray, sigma_px: float) -> np.ndarray:
    """Normalised convolution: the low-pass of ``values`` over the pixels where ``weight`` is 1."""
    return lowpass(values * weight, sigma_px) / np.maximum(lowpass(weight, sigma_px), 1e-3)


def _process(log_signal: np.ndarray, breast: np.ndarray, vendor: Vendor, spacing: float,
             rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Vendor processing of the log image → presentation values in [0, 1] (breast only)."""
    weight = breast.astype(np.float32)
    if vendor.equalisation > 0:
        smooth = _masked_lowpass(log_signal, weight, 6.0 / spacing)
        reference = float(np.percentile(smooth[::4, ::4][breast[::4, ::4]], 50))
        log_signal = log_signal + vendor.equalisation * np.maximum(reference - smooth, 0.0)
    sample = log_signal[::3, ::3][breast[::3, ::3]]
    low, high = np.percentile(sample, (0.5, 99.9)) if sample.size else (0.0, 1.0)
    x = (log_signal - np.float32(low)) / np.float32(max(high - low, 1e-6))
    x = x + vendor.unsharp_amount * (x - _masked_lowpass(x, weight, vendor.unsharp_radius_mm / spacing))
    gamma = float(math.exp(rng.normal(0.0, 0.08)))
    y = tone_curve(x, vendor.lut, vendor.lut_parameter) ** np.float32(gamma)
    return y.astype(np.float32), gamma


def acquire(attenuation: np.ndarray, breast: np.ndarray, vendor: Vendor, spacing_mm: float, exposure: float,
            rng: np.random.Generator) -> Acquisition:
    """Run the acquisition chain on a projected-attenuation image.

    Args:
        attenuation: ``np.ndarray[H, W]`` float32 ``∫μ dz`` (0 outside the breast).
        breast: ``np.ndarray[H, W]`` bool.
        vendor: detector and processing; spacing_mm: pixel spacing of the image.
        exposure: relative dose (1 = the vendor's nominal).
        rng: the view's acquisition stream.
    """
    effective = attenuation / (1.0 + np.float32(0.03) * attenuation)
    signal = np.exp(-effective)
    blur_px = vendor.mtf_sigma_mm / spacing_mm
    if blur_px >= 0.3:
        signal = cv2.GaussianBlur(signal, (0, 0), blur_px)
    weight = breast.astype(np.float32)
    spr = rng.uniform(0.3, 0.5)
    signal = signal + np.float32(spr) * lowpass(signal * weight, 12.0 / spacing_mm)
    # Quanta per pixel; below 0.2 mm pixels are binned, above it noise stays that of 0.2 mm.
    quanta = vendor.quanta_per_mm2 * exposure * min(spacing_mm, 0.2) ** 2
    sigma = np.sqrt(signal / np.float32(quanta) + np.float32((vendor.electronic_quanta / quanta) ** 2))
    noisy = signal + detector_noise(rng, signal.shape, vendor.noise_texture) * sigma
    log_signal = -np.log(np.maximum(noisy, np.float32(1e-5)))
    presentation, gamma = _process(log_signal, breast, vendor, spacing_mm, rng)
    top = float((1 << vendor.bits) - 1)
    image = np.float32(BREAST_FLOOR) + np.float32(1.0 - BREAST_FLOOR) * np.clip(presentation, 0.0, 1.0)
    image = np.rint(image * np.float32(top)) / np.float32(top)
    image[~breast] = 0.0
    median = float(np.median(signal[::7, ::7][breast[::7, ::7]])) if breast.any() else 1.0
    noise_sigma = math.sqrt(1.0 / (quanta * median) + (vendor.electronic_quanta / quanta / median) ** 2)
    return Acquisition(image.astype(np.float32), gamma, noise_sigma, float(blur_px))
