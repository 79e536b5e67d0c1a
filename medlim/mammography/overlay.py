"""The calcification overlay: the mammogram at display size with the BAC mask in magenta (thesis §3.3).

One drawing for every place a person sees where SCU-Net found calcified
arteries: the mammography page's overview (which layers the two images in the
browser) and the PDF report (which needs them composited into one RGB image).
Both shrink the image by an integer factor, the grey image by block averaging
and the probability map by block **maximum**, so a one-pixel artery stays
visible at display size: the displayed mask at cut-off ``t`` is
``block_max(p) > t``, which equals the block maximum of ``p > t``.

Pure numpy: no streamlit, no plotting library. Magenta stands out on grey
tissue for every colour vision (never red on green).
"""

from __future__ import annotations

import numpy as np

from medlim.errors import InputError, ParameterError

__all__ = [
    "OVERLAY_RGB",
    "block_max",
    "block_mean",
    "grey_uint8",
    "overlay_rgb",
    "shrink_factor",
]

#: Mask colour (RGB): magenta.
OVERLAY_RGB = (255, 0, 255)


def shrink_factor(shape: tuple[int, ...], max_side: int) -> int:
    """The smallest integer factor that brings the longest side of ``shape`` to ``<= max_side``.

    Raises:
        ParameterError: ``max_side`` < 1.
    """
    if max_side < 1:
        raise ParameterError(f"max_side must be >= 1; {max_side} is given.")
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


def _blocks(values: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    cropped = np.asarray(values[:rows, :cols], dtype=np.float32)
    return cropped.reshape((rows // factor, factor, cols // factor, factor) + values.shape[2:])


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (``[H, W]`` or ``[H, W, C]``) shrunk by ``factor`` with block averages, float32,
    cropped to whole blocks (``[H // factor, W // factor(, C)]``)."""
    if factor < 1:
        raise ParameterError(f"factor must be >= 1; {factor} is given.")
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    return _blocks(image, factor).mean(axis=(1, 3))


def block_max(values: np.ndarray, factor: int) -> np.ndarray:
    """``values`` (``[H, W]``) shrunk by ``factor`` keeping each block's maximum, float32,
    cropped to whole blocks (``[H // factor, W // factor]``)."""
    if factor < 1:
        raise ParameterError(f"factor must be >= 1; {factor} is given.")
    if factor == 1:
        return np.asarray(values, dtype=np.float32)
    return _blocks(values, factor).max(axis=(1, 3))


def grey_uint8(display: np.ndarray) -> np.ndarray:
    """A display image in [0, 1] as ``np.uint8`` 0..255 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(display, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def overlay_rgb(
    display: np.ndarray,
    probability: np.ndarray,
    *,
    threshold: float,
    opacity: float = 0.6,
    max_side: int = 1024,
) -> np.ndarray:
    """The overview a person sees, composited: grey mammogram, BAC mask blended in magenta.

    Args:
        display: ``np.ndarray[H, W]`` float in [0, 1], the windowed full-resolution
            image (an :class:`~medlim.core.io.record.ImageRecord`'s ``pixels``).
        probability: ``np.ndarray[H, W]`` float, the model output ``p``.
        threshold: probability cut-off ``t`` in [0, 1]: the mask is ``p > t``.
        opacity: mask opacity in [0, 1].
        max_side: longest side of the result in pixels (>= 1).

    Returns:
        ``np.uint8[h, w, 3]`` RGB, ``h, w = H // f, W // f`` for the integer factor
        ``f = shrink_factor((H, W), max_side)``.

    Raises:
        InputError: the two arrays differ in shape.
        ParameterError: ``threshold`` or ``opacity`` outside [0, 1].
    """
    if display.shape[:2] != probability.shape or display.ndim != 2:
        raise InputError(f"probability map {probability.shape} differs from the grey image {display.shape}.")
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"probability cut-off must be in [0, 1]; {threshold} is given.")
    if not 0.0 <= opacity <= 1.0:
        raise ParameterError(f"overlay opacity must be in [0, 1]; {opacity} is given.")
    factor = shrink_factor(probability.shape, max_side)
    grey = block_mean(display, factor)
    mask = block_max(probability, factor) > threshold
    rgb = np.repeat(np.clip(grey, 0.0, 1.0)[..., None] * np.float32(255.0), 3, axis=2)
    colour = np.asarray(OVERLAY_RGB, dtype=np.float32)
    rgb[mask] = (1.0 - opacity) * rgb[mask] + opacity * colour
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
