"""Random fields, detector-noise textures and polyline helpers for phantom family B.

Parenchyma is a Gaussian random field with a power-law spectrum
``P(f) ∝ f^−β`` (breast tissue measures β ≈ 3; Burgess, Jacobson & Judy,
Med. Phys. 28:419, 2001). Detector noise is white noise shaped by a small
linear filter whose form is the vendor's "noise texture". Both are drawn from
a caller's :class:`numpy.random.Generator`, so images stay pure functions of
their arguments.
"""

from __future__ import annotations

import cv2
import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "NOISE_TEXTURES",
    "power_law_field",
    "detector_noise",
    "smoothstep",
    "lowpass",
    "resample_polyline",
    "polyline_normals",
]

#: Detector-noise textures: name → what the shaping filter does.
NOISE_TEXTURES: dict[str, str] = {
    "fine": "nearly white (Gaussian σ 0.5 px)",
    "coarse": "blotchy, low-pass (Gaussian σ 1.4 px)",
    "streaky": "row-correlated (σ 2.2 px along rows, 0.4 px across)",
    "blue": "high-pass (white minus 0.85 × Gaussian σ 1.2 px)",
}


def power_law_field(rng: np.random.Generator, shape: tuple[int, int], beta: float, *,
                    low_cut: float = 2.0) -> np.ndarray:
    """A zero-mean, unit-std field with power spectrum ``∝ f^−beta``.

    Args:
        rng: the random stream (draws ``rows × cols`` normals).
        shape: ``(rows, cols)``.
        beta: spectral exponent (≥ 0); 0 is white, 3 is breast-like.
        low_cut: frequencies below this many cycles per field side are held at
            its power, so one huge wave does not dominate.

    Returns:
        ``np.ndarray[rows, cols]`` float32, mean 0, std 1.
    """
    rows, cols = (int(shape[0]), int(shape[1]))
    if rows < 2 or cols < 2 or beta < 0:
        raise ParameterError(f"power_law_field needs shape ≥ 2×2 and beta ≥ 0; {shape}, {beta} given.")
    side = float(max(rows, cols))
    fy = np.fft.fftfreq(rows)[:, None] * side
    fx = np.fft.rfftfreq(cols)[None, :] * side
    radius = np.maximum(np.hypot(fy, fx), low_cut)
    amplitude = radius ** (-0.5 * beta)
    amplitude[0, 0] = 0.0
    spectrum = np.fft.rfft2(rng.standard_normal((rows, cols))) * amplitude
    field = np.fft.irfft2(spectrum, s=(rows, cols))
    field -= field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def _unit_std(field: np.ndarray) -> np.ndarray:
    sample = field[::5, ::5]
    return field / np.float32(sample.std() + 1e-12)


def detector_noise(rng: np.random.Generator, shape: tuple[int, int], texture: str) -> np.ndarray:
    """Unit-variance correlated noise with a vendor's texture (see :data:`NOISE_TEXTURES`).

    Returns:
        ``np.ndarray[shape]`` float32, mean ≈ 0, std ≈ 1.
    """
    if texture not in NOISE_TEXTURES:
        raise ParameterError(f"unknown noise texture {texture!r}; known: {', '.join(NOISE_TEXTURES)}.")
    white = rng.standard_normal(shape, dtype=np.float32)
    if texture == "fine":
        shaped = cv2.GaussianBlur(white, (0, 0), 0.5)
    elif texture == "coarse":
        shaped = cv2.GaussianBlur(white, (0, 0), 1.4)
    elif texture == "streaky":
        shaped = cv2.GaussianBlur(white, (0, 0), sigmaX=2.2, sigmaY=0.4)
    else:
        shaped = white - np.float32(0.85) * cv2.GaussianBlur(white, (0, 0), 1.2)
    return _unit_std(shaped)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step: 0 below ``edge0``, 1 above ``edge1``, ``3t² − 2t³`` between."""
    t = np.clip((np.asarray(x, dtype=np.float32) - edge0) / max(edge1 - edge0, 1e-12), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def lowpass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A Gaussian low-pass of ``sigma_px`` computed on a shrunken copy (fast for wide kernels).

    Args:
        image: ``np.ndarray[H, W]`` float32.
        sigma_px: blur in pixels of ``image``.

    Returns:
        ``np.ndarray[H, W]`` float32.
    """
    if sigma_px <= 0:
        return image.astype(np.float32, copy=True)
    factor = max(1, int(sigma_px // 3))
    if factor == 1:
        return cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma_px)
    rows, cols = image.shape
    small = cv2.resize(image.astype(np.float32), (max(1, cols // factor), max(1, rows // factor)),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor)
    return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)


def resample_polyline(points: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along a polyline (by arc length, both ends kept).

    Args:
        points: ``np.ndarray[N, 2]`` float, N ≥ 2.
        step: spacing (> 0), in the units of ``points``.

    Returns:
        ``np.ndarray[M, 2]`` float64, M ≥ 2.
    """
    points = np.asarray(points, dtype=np.float64)
    seg = np.hypot(*np.diff(points, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    count = max(2, int(np.ceil(arc[-1] / step)) + 1)
    where = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(where, arc, points[:, 0]), np.interp(where, arc, points[:, 1])], axis=1)


def polyline_normals(points: np.ndarray) -> np.ndarray:
    """Unit normals (tangent turned +90°) at each point of a polyline.

    Args:
        points: ``np.ndarray[N, 2]`` as ``(x, y)``.

    Returns:
        ``np.ndarray[N, 2]`` float64; ``(−t_y, t_x)`` for the unit tangent ``t``.
    """
    tangent = np.gradient(np.asarray(points, dtype=np.float64), axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-12)[:, None]
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
